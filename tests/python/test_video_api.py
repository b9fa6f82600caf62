"""Kinesis Video Streams' control plane through boto3's `kinesisvideo` client
and the AWS CLI against the real binary: CreateStream, DescribeStream,
ListStreams (prefix, paging), UpdateStream and UpdateDataRetention with
CurrentVersion, DeleteStream, both tag APIs, GetDataEndpoint; refusals in
AWS's words and statuses; the streams kept across a restart."""

import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import BINARY, ROOT, start_on, start_server, stop_server

REGION, ACCOUNT = "us-east-1", "000000000000"
ARN = re.compile(rf"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/([a-zA-Z0-9_.-]+)/([0-9]+)")


def client(endpoint):
    return boto3.client(
        "kinesisvideo", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def kvs(server):
    return client(server)


def fresh(prefix="cam"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def refused(call, **kw):
    """(error code, message, HTTP status) of a call that must fail."""
    with pytest.raises(ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["Error"]["Code"], r["Error"].get("Message", ""), r["ResponseMetadata"]["HTTPStatusCode"]


def test_create_and_describe_by_name_and_arn(kvs):
    name = fresh()
    before = datetime.datetime.now(datetime.timezone.utc)
    arn = kvs.create_stream(StreamName=name, DeviceName="door-1", MediaType="video/h264",
                            DataRetentionInHours=24, Tags={"site": "lab"})["StreamARN"]
    m = ARN.fullmatch(arn)
    assert m and m.group(1) == name, arn
    by_name = kvs.describe_stream(StreamName=name)["StreamInfo"]
    by_arn = kvs.describe_stream(StreamARN=arn)["StreamInfo"]
    assert by_name == by_arn
    created = by_name.pop("CreationTime")
    assert abs((created - before).total_seconds()) < 5
    # The ARN's last part is the creation time in ms.
    assert int(m.group(2)) == pytest.approx(created.timestamp() * 1000, abs=1)
    version = by_name.pop("Version")
    assert re.fullmatch(r"[a-zA-Z0-9]{1,64}", version)
    assert by_name == {
        "DeviceName": "door-1", "StreamName": name, "StreamARN": arn, "MediaType": "video/h264",
        "KmsKeyId": f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/kinesisvideo", "Status": "ACTIVE",
        "DataRetentionInHours": 24,
    }
    # Defaults: no retention, no device, the default key; a key named is kept
    # (one the server's keyring has: conftest's has alias/test), one it does
    # not have is refused.
    bare = fresh()
    kvs.create_stream(StreamName=bare, KmsKeyId="alias/test")
    info = kvs.describe_stream(StreamName=bare)["StreamInfo"]
    assert info["DataRetentionInHours"] == 0 and info["KmsKeyId"] == "alias/test"
    assert "DeviceName" not in info and "MediaType" not in info
    code, message, status = refused(kvs.create_stream, StreamName=fresh(), KmsKeyId="alias/none")
    assert (code, status) == ("InvalidArgumentException", 400)
    assert "alias/none is not found" in message, message


def test_refusals_in_aws_words(kvs):
    name = fresh()
    kvs.create_stream(StreamName=name)
    code, msg, status = refused(kvs.create_stream, StreamName=name)
    assert (code, status) == ("ResourceInUseException", 400) and name in msg
    code, msg, status = refused(kvs.describe_stream, StreamName="no-such-stream")
    assert (code, status) == ("ResourceNotFoundException", 404) and "no-such-stream" in msg
    arn = f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/no-such-stream/1700000000000"
    code, _, status = refused(kvs.describe_stream, StreamARN=arn)
    assert (code, status) == ("ResourceNotFoundException", 404)
    # The model's constraints are checked before anything runs.
    code, msg, status = refused(kvs.create_stream, StreamName="bad name!")
    assert status == 400 and code == "ValidationException" and "streamName" in msg, msg
    code, msg, status = refused(kvs.describe_stream)
    assert (code, status) == ("InvalidArgumentException", 400) and "StreamName" in msg
    # An ARN of the right name but another creation time is another stream.
    real = kvs.describe_stream(StreamName=name)["StreamInfo"]["StreamARN"]
    stale = real.rsplit("/", 1)[0] + "/1"
    assert refused(kvs.describe_stream, StreamARN=stale)[0] == "ResourceNotFoundException"
    code, _, _ = refused(kvs.describe_stream, StreamName=fresh(), StreamARN=real)
    assert code == "InvalidArgumentException"


def test_list_streams_prefix_and_pages(kvs):
    prefix = f"list{uuid.uuid4().hex[:6]}"
    names = sorted(f"{prefix}-{i}" for i in range(5))
    for n in names:
        kvs.create_stream(StreamName=n)
    cond = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix}
    whole = kvs.list_streams(StreamNameCondition=cond)
    assert [s["StreamName"] for s in whole["StreamInfoList"]] == names
    assert "NextToken" not in whole
    seen, token = [], None
    while True:
        kw = {"StreamNameCondition": cond, "MaxResults": 2}
        if token:
            kw["NextToken"] = token
        page = kvs.list_streams(**kw)
        assert len(page["StreamInfoList"]) <= 2
        seen += [s["StreamName"] for s in page["StreamInfoList"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names
    # Each entry is the stream's description.
    first = whole["StreamInfoList"][0]
    assert first == kvs.describe_stream(StreamName=names[0])["StreamInfo"]
    # The boto3 paginator walks the same pages.
    pages = kvs.get_paginator("list_streams").paginate(
        StreamNameCondition=cond, PaginationConfig={"PageSize": 2})
    assert [s["StreamName"] for p in pages for s in p["StreamInfoList"]] == names
    assert refused(kvs.list_streams, NextToken="not+a+token")[0] == "InvalidArgumentException"


def test_updates_need_the_current_version(kvs):
    name = fresh()
    kvs.create_stream(StreamName=name, MediaType="video/h264", DataRetentionInHours=2)
    v1 = kvs.describe_stream(StreamName=name)["StreamInfo"]["Version"]
    kvs.update_stream(StreamName=name, CurrentVersion=v1, MediaType="video/h265")
    info = kvs.describe_stream(StreamName=name)["StreamInfo"]
    v2 = info["Version"]
    assert v2 != v1 and info["MediaType"] == "video/h265"
    code, _, status = refused(kvs.update_stream, StreamName=name, CurrentVersion=v1, DeviceName="d")
    assert (code, status) == ("VersionMismatchException", 400)
    assert kvs.describe_stream(StreamName=name)["StreamInfo"].get("DeviceName") is None

    kvs.update_data_retention(StreamName=name, CurrentVersion=v2,
                              Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=10)
    info = kvs.describe_stream(StreamName=name)["StreamInfo"]
    assert info["DataRetentionInHours"] == 12
    v3 = info["Version"]
    assert v3 != v2
    kvs.update_data_retention(StreamARN=info["StreamARN"], CurrentVersion=v3,
                              Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=12)
    info = kvs.describe_stream(StreamName=name)["StreamInfo"]
    assert info["DataRetentionInHours"] == 0
    code, _, _ = refused(kvs.update_data_retention, StreamName=name, CurrentVersion=info["Version"],
                         Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=1)
    assert code == "InvalidArgumentException"
    code, _, _ = refused(kvs.update_data_retention, StreamName=name, CurrentVersion=v3,
                         Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=1)
    assert code == "VersionMismatchException"


def test_delete_then_the_name_is_free_again(kvs):
    name = fresh()
    arn = kvs.create_stream(StreamName=name)["StreamARN"]
    code, _, _ = refused(kvs.delete_stream, StreamARN=arn, CurrentVersion="stale")
    assert code == "VersionMismatchException"
    kvs.delete_stream(StreamARN=arn)
    assert refused(kvs.describe_stream, StreamName=name)[0] == "ResourceNotFoundException"
    assert refused(kvs.delete_stream, StreamARN=arn)[0] == "ResourceNotFoundException"
    again = kvs.create_stream(StreamName=name)["StreamARN"]
    assert kvs.describe_stream(StreamName=name)["StreamInfo"]["StreamARN"] == again


def test_tags_in_both_forms(kvs):
    name = fresh()
    arn = kvs.create_stream(StreamName=name, Tags={"a": "1"})["StreamARN"]
    kvs.tag_stream(StreamName=name, Tags={"b": "2", "a": "one"})
    assert kvs.list_tags_for_stream(StreamName=name)["Tags"] == {"a": "one", "b": "2"}
    kvs.untag_stream(StreamARN=arn, TagKeyList=["a", "missing"])
    assert kvs.list_tags_for_stream(StreamARN=arn)["Tags"] == {"b": "2"}
    kvs.tag_resource(ResourceARN=arn, Tags=[{"Key": "c", "Value": "3"}])
    assert kvs.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"b": "2", "c": "3"}
    kvs.untag_resource(ResourceARN=arn, TagKeyList=["b"])
    assert kvs.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"c": "3"}
    # 50 at most, counting the ones it has.
    kvs.tag_stream(StreamName=name, Tags={f"k{i}": "v" for i in range(49)})
    code, _, status = refused(kvs.tag_stream, StreamName=name, Tags={"one-more": "v"})
    assert (code, status) == ("TagsPerResourceExceededLimitException", 400)
    assert len(kvs.list_tags_for_stream(StreamName=name)["Tags"]) == 50
    code, _, status = refused(kvs.list_tags_for_resource,
                              ResourceARN=arn.rsplit("/", 2)[0] + "/nope/1")
    assert (code, status) == ("ResourceNotFoundException", 404)


def test_data_endpoint_is_this_server_for_every_api(kvs, server):
    name = fresh()
    kvs.create_stream(StreamName=name, DataRetentionInHours=1)
    apis = kvs.meta.service_model.shape_for("APIName").enum
    assert len(apis) == 8
    for api in apis:
        got = kvs.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"]
        assert got == server, (api, got)
    assert refused(kvs.get_data_endpoint, StreamName=fresh(), APIName="GET_MEDIA")[0] == \
        "ResourceNotFoundException"


def test_the_aws_cli_creates_and_describes(server):
    if shutil.which("aws") is None:
        pytest.fail("the AWS CLI is missing (tests/python/requirements.txt installs awscli)")
    name = fresh("cli")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION=REGION)
    run = lambda *a: subprocess.run(["aws", "--endpoint-url", server, "kinesisvideo", *a],
                                    env=env, capture_output=True, text=True)
    out = run("create-stream", "--stream-name", name, "--data-retention-in-hours", "3")
    assert out.returncode == 0, out.stderr
    out = run("describe-stream", "--stream-name", name)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["StreamInfo"]["DataRetentionInHours"] == 3
    out = run("describe-stream", "--stream-name", "absent-" + name)
    assert out.returncode == 255 and "ResourceNotFoundException" in out.stderr


def test_streams_survive_a_restart():
    proc, http, data = start_server()
    try:
        kvs = client(f"http://{http}")
        kept = fresh()
        gone = fresh()
        arn = kvs.create_stream(StreamName=kept, DataRetentionInHours=5, Tags={"t": "v"})["StreamARN"]
        kvs.create_stream(StreamName=gone)
        before = kvs.describe_stream(StreamName=kept)["StreamInfo"]
        kvs.delete_stream(StreamARN=kvs.describe_stream(StreamName=gone)["StreamInfo"]["StreamARN"])
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        proc, http = start_on(data)
        kvs = client(f"http://{http}")
        assert kvs.describe_stream(StreamARN=arn)["StreamInfo"] == before
        assert kvs.list_tags_for_stream(StreamName=kept)["Tags"] == {"t": "v"}
        assert refused(kvs.describe_stream, StreamName=gone)[0] == "ResourceNotFoundException"
    finally:
        stop_server(proc, data)


def test_data_endpoint_is_https_on_a_tls_server():
    certs = tempfile.mkdtemp(prefix="tls-", dir=os.path.join(ROOT, "target", "tmp"))
    out = subprocess.run([BINARY, "cert", "--out", certs], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cert, key = os.path.join(certs, "cert.pem"), os.path.join(certs, "key.pem")
    proc, http, data = start_server("--tls-cert", cert, "--tls-key", key)
    try:
        endpoint = f"https://localhost:{http.rsplit(':', 1)[1]}"
        kvs = boto3.client("kinesisvideo", endpoint_url=endpoint, region_name=REGION,
                           aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                           verify=cert, config=Config(retries={"max_attempts": 1}))
        kvs.create_stream(StreamName="tls-cam")
        got = kvs.get_data_endpoint(StreamName="tls-cam", APIName="GET_MEDIA")["DataEndpoint"]
        assert got == endpoint
    finally:
        stop_server(proc, data)
        shutil.rmtree(certs, ignore_errors=True)
