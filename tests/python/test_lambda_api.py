"""Lambda event-source mappings' API through boto3's `lambda` client and the
AWS CLI against the real binary: the five operations' shapes, status codes,
paging, states and refusals in AWS's words, a stream consumer source."""

import base64
import datetime
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import BINARY, ROOT, _log_tail, _server_logs, free_port, start_server, stop_server

from lambda_env import *  # noqa: F401,F403 (the helpers and fixtures)
from lambda_env import env, named, shared  # noqa: F401 (fixtures)


def test_create_get_list_update_delete_shapes(env, named):
    name, arn = env.stream()
    fn = env.function()
    created = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST")
    m = created["UUID"]
    body = {k: v for k, v in created.items() if k != "ResponseMetadata"}
    assert set(body) == GOLDEN_KEYS
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", m), m
    fn_name = body["FunctionArn"].split(":function:")[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", fn_name), body["FunctionArn"]
    assert body["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn_name}"
    assert isinstance(body.pop("LastModified"), datetime.datetime)
    assert body == {
        "UUID": m, "BatchSize": 100, "MaximumBatchingWindowInSeconds": 0, "ParallelizationFactor": 1,
        "EventSourceArn": arn,
        "EventSourceMappingArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:event-source-mapping:{m}",
        "FunctionArn": body["FunctionArn"], "LastProcessingResult": "No records processed",
        "State": "Creating", "StateTransitionReason": "User action",
        "DestinationConfig": {"OnFailure": {}}, "StartingPosition": "LATEST",
        "MaximumRecordAgeInSeconds": -1, "BisectBatchOnFunctionError": False,
        "MaximumRetryAttempts": -1, "TumblingWindowInSeconds": 0, "FunctionResponseTypes": [],
    }
    # The same URL gives the same ARN.
    assert env.raw_lambda.list_event_source_mappings(FunctionName=fn.url)[
        "EventSourceMappings"][0]["FunctionArn"] == body["FunctionArn"]

    # Get: 200, the same members, Enabled (no state delay); LastModified a JSON number.
    got = env.get(m)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert shown(got) == dict(body, State="Enabled")
    with urllib.request.urlopen(f"{env.endpoint}/2015-03-31/event-source-mappings/{m}") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
        raw = json.loads(r.read())
    assert isinstance(raw["LastModified"], (int, float)) and not isinstance(raw["LastModified"], bool)
    assert abs(raw["LastModified"] - time.time()) < 60

    # List: 200, by EventSourceArn.
    listed = env.aws_lambda.list_event_source_mappings(EventSourceArn=arn)
    assert listed["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [x["UUID"] for x in listed["EventSourceMappings"]] == [m]
    assert "NextMarker" not in listed

    # Update: 202, Updating, members changed, the rest kept.
    dest_name, dest = env.stream()
    updated = env.aws_lambda.update_event_source_mapping(
        UUID=m, BatchSize=7, MaximumBatchingWindowInSeconds=1, ParallelizationFactor=2,
        MaximumRetryAttempts=3, MaximumRecordAgeInSeconds=60, BisectBatchOnFunctionError=True,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        DestinationConfig={"OnFailure": {"Destination": dest}},
        FilterCriteria={"Filters": [{"Pattern": '{"data": {"kind": ["keep"]}}'}]})
    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert updated["State"] == "Updating"
    want = dict(body, BatchSize=7, MaximumBatchingWindowInSeconds=1, ParallelizationFactor=2,
                MaximumRetryAttempts=3, MaximumRecordAgeInSeconds=60, BisectBatchOnFunctionError=True,
                FunctionResponseTypes=["ReportBatchItemFailures"],
                DestinationConfig={"OnFailure": {"Destination": dest}},
                FilterCriteria={"Filters": [{"Pattern": '{"data": {"kind": ["keep"]}}'}]})
    assert shown(updated) == dict(want, State="Updating")
    assert shown(env.get(m)) == dict(want, State="Enabled")

    # A function named through the server's [functions] table.
    billing = env.create(EventSourceArn=arn, FunctionName="billing", StartingPosition="TRIM_HORIZON")
    assert billing["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:billing"
    for f in ("billing", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:billing"):
        assert [x["UUID"] for x in env.aws_lambda.list_event_source_mappings(
            FunctionName=f)["EventSourceMappings"]] == [billing["UUID"]]
    assert [x["UUID"] for x in env.aws_lambda.list_event_source_mappings(
        FunctionName=fn.url)["EventSourceMappings"]] == [m]

    # Delete: 202, Deleting, then 404.
    deleted = env.aws_lambda.delete_event_source_mapping(UUID=m)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert deleted["State"] == "Deleting" and deleted["UUID"] == m
    env.wait_state(m, "ResourceNotFoundException")
    assert [x["UUID"] for x in env.aws_lambda.list_event_source_mappings(
        EventSourceArn=arn)["EventSourceMappings"]] == [billing["UUID"]]


def test_refusals_in_awss_words(env):
    name, arn = env.stream()
    fn = env.function()
    lam = env.aws_lambda
    create = lam.create_event_source_mapping
    ok = dict(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST")
    bad = "InvalidParameterValueException"

    assert refused(create, FunctionName=fn.url, StartingPosition="LATEST") == \
        (bad, "Unrecognized event source.", 400)
    missing = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/no-such-{uuid.uuid4().hex[:6]}"
    assert refused(create, **dict(ok, EventSourceArn=missing)) == (bad, f"Stream not found: {missing}", 400)
    assert refused(create, EventSourceArn=arn, FunctionName=fn.url) == (
        bad, "1 validation error detected: Value null at 'startingPosition' failed to satisfy "
             "constraint: Member must not be null.", 400)
    assert refused(create, **dict(ok, StartingPosition="EARLIEST")) == (
        "ValidationException", "1 validation error detected: Value 'EARLIEST' at 'startingPosition' "
        "failed to satisfy constraint: Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, "
        "TRIM_HORIZON]", 400)
    assert refused(create, **dict(ok, StartingPosition="AT_TIMESTAMP")) == \
        (bad, "Need to specify a timestamp", 400)
    assert refused(create, **ok, MaximumRecordAgeInSeconds=30) == (
        bad, "MaximumRecordAgeInSeconds must be either -1 (forever) or between 60 and 604800 "
             "(inclusive)", 400)
    assert refused(create, **ok, DestinationConfig={"OnSuccess": {"Destination": arn}}) == (
        bad, "Unsupported DestinationConfig parameter for given event source mapping type.", 400)
    code, message, status = refused(create, **ok, Topics=["orders"])
    assert (code, status) == (bad, 400) and "Topics" in message, message
    code, message, status = refused(
        create, **ok, FilterCriteria={"Filters": [{"Pattern": '{"data": "keep"}'}]})
    assert (code, status) == (bad, 400) and message.startswith("Invalid filter pattern definition."), message
    code, message, status = refused(
        create, **ok, FilterCriteria={"Filters": [{"Pattern": "not json"}]})
    assert (code, status) == (bad, 400) and message.startswith("Invalid filter pattern definition."), message
    six = [{"Pattern": json.dumps({"data": {"n": [i]}})} for i in range(6)]
    code, message, status = refused(create, **ok, FilterCriteria={"Filters": six})
    assert (code, status) == (bad, 400) and "filter" in message.lower(), message
    code, message, status = refused(create, **dict(ok, FunctionName="no-such-function"))
    assert (code, status) == (bad, 400) and message.startswith("Function does not exist"), message
    # Tumbling windows (built in 676bc70) cannot go with lanes.
    code, message, status = refused(create, **ok, TumblingWindowInSeconds=60, ParallelizationFactor=2)
    assert (code, status) == (bad, 400) and "TumblingWindowInSeconds" in message, message
    # The model's ranges (botocore checks minimums itself: a client that does not).
    raw = env.raw_lambda.create_event_source_mapping
    for size, constraint in ((0, "greater than or equal to 1"), (10001, "less than or equal to 10000")):
        code, message, status = refused(raw, **ok, BatchSize=size)
        assert (code, status) == ("ValidationException", 400), (code, message)
        assert "batchSize" in message and constraint in message, message
    # Nothing was made by any of these.
    assert env.aws_lambda.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"] == []

    # A second mapping of the pair.
    first = env.create(**ok)
    fn_name = first["FunctionArn"].split(":function:")[1]
    assert refused(create, **dict(ok, StartingPosition="TRIM_HORIZON")) == (
        "ResourceConflictException",
        f'The event source arn (" {arn} ") and function (" {fn_name} ") provided mapping already '
        f"exists. Please update or delete the existing mapping with UUID {first['UUID']}", 409)
    # Update is checked as Create is.
    code, message, _ = refused(lam.update_event_source_mapping, UUID=first["UUID"],
                               MaximumRecordAgeInSeconds=30)
    assert code == bad and "MaximumRecordAgeInSeconds" in message
    code, message, _ = refused(lam.update_event_source_mapping, UUID=first["UUID"],
                               TumblingWindowInSeconds=30, ParallelizationFactor=3)
    assert code == bad and "TumblingWindowInSeconds" in message
    code, message, _ = refused(lam.update_event_source_mapping, UUID=first["UUID"],
                               FunctionName="no-such-function")
    assert code == bad and message.startswith("Function does not exist"), message
    assert env.get(first["UUID"])["MaximumRecordAgeInSeconds"] == -1

    # Unknown UUIDs.
    unknown = str(uuid.uuid4())
    for call in (lam.get_event_source_mapping, lam.delete_event_source_mapping):
        assert refused(call, UUID=unknown) == (
            "ResourceNotFoundException", "The resource you requested does not exist.", 404)
    assert refused(lam.update_event_source_mapping, UUID=unknown, BatchSize=5) == (
        "ResourceNotFoundException", "The resource you requested does not exist.", 404)


def test_paging_and_list_filters(env):
    name, arn = env.stream()
    other_name, other_arn = env.stream()
    # Seven function URLs on one stream (nothing is put: none is invoked).
    made = [env.create(EventSourceArn=arn, FunctionName=f"http://127.0.0.1:9/page/{i}",
                       StartingPosition="LATEST")["UUID"] for i in range(7)]
    elsewhere = env.create(EventSourceArn=other_arn, FunctionName="http://127.0.0.1:9/page/0",
                           StartingPosition="LATEST")["UUID"]
    lam = env.aws_lambda
    pages, marker = [], None
    while True:
        kw = {"Marker": marker} if marker else {}
        page = lam.list_event_source_mappings(EventSourceArn=arn, MaxItems=3, **kw)
        pages.append([x["UUID"] for x in page["EventSourceMappings"]])
        assert all(x["EventSourceArn"] == arn for x in page["EventSourceMappings"])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(sum(pages, [])) == sorted(made)
    paged = lam.get_paginator("list_event_source_mappings").paginate(
        EventSourceArn=arn, PaginationConfig={"PageSize": 3})
    assert sorted(x["UUID"] for p in paged for x in p["EventSourceMappings"]) == sorted(made)
    one = lam.list_event_source_mappings(MaxItems=1, EventSourceArn=arn)
    assert len(one["EventSourceMappings"]) == 1 and one["NextMarker"]
    # By FunctionName (a URL): that URL's mappings on every stream.
    by_url = lam.list_event_source_mappings(FunctionName="http://127.0.0.1:9/page/0")
    assert sorted(x["UUID"] for x in by_url["EventSourceMappings"]) == sorted([made[0], elsewhere])
    both = lam.list_event_source_mappings(FunctionName="http://127.0.0.1:9/page/3", EventSourceArn=arn)
    assert [x["UUID"] for x in both["EventSourceMappings"]] == [made[3]]
    assert lam.list_event_source_mappings(EventSourceArn=other_arn)["EventSourceMappings"][0][
        "UUID"] == elsewhere


def test_states_under_a_state_delay():
    proc, http_addr, data = start_server("--state-delay-ms", "1500")
    fn = Function()
    try:
        env = Env(http_addr)
        name, arn = env.stream()
        lam = env.aws_lambda
        created = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST")
        m = created["UUID"]
        assert created["State"] == "Creating"
        code, message, status = refused(lam.update_event_source_mapping, UUID=m, BatchSize=5)
        assert (code, status) == ("ResourceInUseException", 400) and "Creating" in message, message
        code, _, _ = refused(lam.delete_event_source_mapping, UUID=m)
        assert code == "ResourceInUseException"
        assert env.get(m)["State"] == "Creating"
        # Delivery starts during Creating.
        put = env.put(name, [("k", b"during creating")])
        fn.wait_data([b"during creating"])
        env.wait_state(m, "Enabled")

        disabling = lam.update_event_source_mapping(UUID=m, Enabled=False)
        assert disabling["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert disabling["State"] == "Disabling"
        assert env.get(m)["State"] == "Disabling"
        env.wait_state(m, "Disabled")
        updating = lam.update_event_source_mapping(UUID=m, BatchSize=5)
        assert (updating["State"], updating["BatchSize"]) == ("Updating", 5)
        env.wait_state(m, "Disabled")

        deleting = lam.delete_event_source_mapping(UUID=m)
        assert deleting["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert deleting["State"] == "Deleting"
        assert env.get(m)["State"] == "Deleting"
        assert refused(lam.delete_event_source_mapping, UUID=m)[0] == "ResourceInUseException"
        env.wait_state(m, "ResourceNotFoundException")
        assert refused(lam.get_event_source_mapping, UUID=m) == (
            "ResourceNotFoundException", "The resource you requested does not exist.", 404)
        assert fn.records()[0]["kinesis"]["sequenceNumber"] == put[0]["seq"]
    finally:
        fn.close()
        stop_server(proc, data)


def test_stream_consumer_source_delivers(env):
    name, arn = env.stream()
    consumer = env.kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="esm-efo")["Consumer"]
    fn = env.function()
    m = env.create(EventSourceArn=consumer["ConsumerARN"], FunctionName=fn.url,
                   StartingPosition="LATEST")
    assert m["EventSourceArn"] == consumer["ConsumerARN"]
    put = env.put(name, [("k1", b"via a consumer"), ("k2", b"second")])
    fn.wait_data([b"via a consumer", b"second"])
    assert fn.data() == [b"via a consumer", b"second"]
    assert {r["eventSourceARN"] for r in fn.records()} == {arn}
    bogus = consumer["ConsumerARN"].rsplit(":", 1)[0] + ":1"
    code, message, _ = refused(env.aws_lambda.create_event_source_mapping, EventSourceArn=bogus,
                               FunctionName=fn.url, StartingPosition="LATEST")
    assert code == "InvalidParameterValueException" and bogus in message, message
    assert [r["kinesis"]["sequenceNumber"] for r in fn.records()] == [p["seq"] for p in put]


def test_aws_cli_round_trip(env, tmp_path):
    name, arn = env.stream()
    env.put(name, [("k", b"for the cli")])
    fn = env.function()
    cli = os.path.join(os.path.dirname(sys.executable), "aws")
    # CLI v1 fetches a parameter that is an http:// URL and passes its content
    # unless cli_follow_urlparam is off (v2's default).
    conf = tmp_path / "aws.cfg"
    conf.write_text("[default]\ncli_follow_urlparam = false\n")
    cli_env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
                   AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=str(conf),
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")

    def aws(*args):
        out = subprocess.run([cli, "--endpoint-url", env.endpoint, "--output", "json", "lambda", *args],
                             capture_output=True, text=True, env=cli_env)
        return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr

    code, created, err = aws("create-event-source-mapping", "--function-name", fn.url,
                             "--event-source-arn", arn, "--starting-position", "TRIM_HORIZON",
                             "--batch-size", "5")
    assert code == 0, err
    assert (created["State"], created["BatchSize"], created["EventSourceArn"]) == ("Creating", 5, arn)
    fn.wait_data([b"for the cli"])
    code, got, err = aws("get-event-source-mapping", "--uuid", created["UUID"])
    assert code == 0, err
    assert (got["UUID"], got["State"], got["LastProcessingResult"]) == (created["UUID"], "Enabled", "OK")
    code, deleted, err = aws("delete-event-source-mapping", "--uuid", created["UUID"])
    assert code == 0 and deleted["State"] == "Deleting", err
    code, _, err = aws("get-event-source-mapping", "--uuid", created["UUID"])
    assert code != 0 and "ResourceNotFoundException" in err, err


# ---------------------------------------------------------------- semantics


def test_signed_requests_are_verified_for_lambda():
    """With `--auth sigv4` the mappings' operations take requests signed for
    `lambda` with a configured key and refuse a wrong secret, as AWS does."""
    conf_dir = tempfile.mkdtemp(prefix="esm-auth-", dir=os.path.join(ROOT, "target", "tmp"))
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        f.write('access_keys = [{ id = "AKIDLAMBDA", secret = "right-secret" }]\n')
    proc, http_addr, data = start_server("--auth", "sigv4", "--config", conf)
    try:
        endpoint = f"http://{http_addr}"

        def signed(secret):
            return boto3.client("lambda", endpoint_url=endpoint, region_name=REGION,
                                aws_access_key_id="AKIDLAMBDA", aws_secret_access_key=secret,
                                config=Config(retries={"max_attempts": 1}))

        assert signed("right-secret").list_event_source_mappings()["EventSourceMappings"] == []
        code, _, status = refused(signed("wrong-secret").list_event_source_mappings)
        # The gateway answers 400 for every service (Kinesis's status; Lambda's
        # is 403, which boto3 does not depend on).
        assert (code, status) == ("InvalidSignatureException", 400), (code, status)
    finally:
        stop_server(proc, data)
        shutil.rmtree(conf_dir, ignore_errors=True)


def test_an_on_failure_destination_that_is_the_source_is_refused(env):
    """Each failure record would be delivered to the function again (found
    by review: it looped)."""
    name, arn = env.stream()
    code, message, status = refused(
        env.aws_lambda.create_event_source_mapping, EventSourceArn=arn,
        FunctionName="http://127.0.0.1:9/x", StartingPosition="LATEST",
        DestinationConfig={"OnFailure": {"Destination": arn}})
    assert (code, status) == ("InvalidParameterValueException", 400), (code, message)
    assert "is the event source's stream" in message, message


def test_a_mapping_deleted_can_be_made_again_at_once(env):
    """Delete, then Create of the same stream and function: no conflict with
    the mapping Get already answers 404 for (found by review)."""
    name, arn = env.stream()
    for _ in range(10):
        made = env.aws_lambda.create_event_source_mapping(
            EventSourceArn=arn, FunctionName="http://127.0.0.1:9/again", StartingPosition="LATEST")
        env.aws_lambda.delete_event_source_mapping(UUID=made["UUID"])
        code, _, status = refused(env.aws_lambda.get_event_source_mapping, UUID=made["UUID"])
        assert (code, status) == ("ResourceNotFoundException", 404)
