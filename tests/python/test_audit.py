"""The audit trail: every call of every service as a CloudTrail record, one
JSON line in <data-dir>/audit/*.jsonl, read back here field by field, with
boto3 and the AWS CLI as the callers."""

import datetime
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ROOT, start_server, stop_server

ACCOUNT = "000000000000"
KEYS = {"AKIDALICE": ("alice-secret/key", "alice"), "AKIDBOB": ("bob-secret/key", None)}


def client(service, http, key="AKIDALICE"):
    return boto3.client(service, endpoint_url=f"http://{http}", region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=KEYS[key][0],
                        config=Config(retries={"max_attempts": 1}))


def start(*extra):
    conf_dir = tempfile.mkdtemp(prefix="audit-", dir=os.path.join(ROOT, "target", "tmp"))
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        entries = [f'{{ id = "{k}", secret = "{s}"' + (f', user = "{u}"' if u else "") + " }"
                   for k, (s, u) in KEYS.items()]
        f.write(f"access_keys = [{', '.join(entries)}]\n")
    proc, http, data = start_server("--config", conf, "--auth", "sigv4", *extra)
    return proc, http, data, conf_dir


def records(data):
    out = []
    for path in sorted(glob.glob(os.path.join(data, "d", "audit", "*.jsonl"))):
        with open(path) as f:
            out += [json.loads(line) for line in f]
    return out


def wait_for(data, match, deadline_s=10):
    """The trail's records once one matches (records are on disk within a
    second of their call; the deadline allows for a loaded machine)."""
    deadline = time.monotonic() + deadline_s
    while True:
        got = records(data)
        if any(match(r) for r in got):
            return got
        assert time.monotonic() < deadline, f"no such record in {got}"
        time.sleep(0.05)


def one(got, **fields):
    found = [r for r in got if all(r.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, (fields, got)
    return found[0]


@pytest.fixture(scope="module")
def audited():
    proc, http, data, conf_dir = start()
    yield http, data
    stop_server(proc, data)
    shutil.rmtree(conf_dir, ignore_errors=True)


def test_each_services_calls_are_cloudtrail_records(audited):
    http, data = audited
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    kinesis = client("kinesis", http)
    name = f"au-{uuid.uuid4().hex[:8]}"
    created = kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.describe_stream_summary(StreamName=name)
    with pytest.raises(ClientError) as missing:
        client("kinesis", http, "AKIDBOB").describe_stream(StreamName="no-such-stream")
    kinesis.put_record(StreamName=name, PartitionKey="k", Data=b"secret payload")
    fh = client("firehose", http)
    fh.create_delivery_stream(
        DeliveryStreamName=name,
        HttpEndpointDestinationConfiguration={
            "EndpointConfiguration": {"Url": "https://127.0.0.1:9/x", "Name": "e",
                                      "AccessKey": "do-not-log-this"},
            "S3BackupMode": "FailedDataOnly",
            "S3Configuration": {"RoleARN": f"arn:aws:iam::{ACCOUNT}:role/r",
                                "BucketARN": "arn:aws:s3:::audit-backup"}})
    kvs = client("kinesisvideo", http)
    video = kvs.create_stream(StreamName=name, DataRetentionInHours=1)
    got = wait_for(data, lambda r: r["eventName"] == "CreateStream"
                   and r["eventSource"] == "kinesisvideo.amazonaws.com")

    create = one(got, eventSource="kinesis.amazonaws.com", eventName="CreateStream")
    assert create["requestID"] == created["ResponseMetadata"]["RequestId"]
    assert create["userIdentity"] == {
        "type": "IAMUser", "principalId": "AKIDALICE", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
        "accountId": ACCOUNT, "accessKeyId": "AKIDALICE", "userName": "alice"}
    assert create["requestParameters"] == {"streamName": name, "shardCount": 2}
    assert create["responseElements"] is None
    assert create["eventVersion"] == "1.08" and create["eventType"] == "AwsApiCall"
    assert create["awsRegion"] == "us-east-1" and create["recipientAccountId"] == ACCOUNT
    assert create["sourceIPAddress"] == "127.0.0.1"
    assert create["userAgent"].startswith("Boto3/")
    assert create["readOnly"] is False and create["managementEvent"] is True
    assert create["eventCategory"] == "Management"
    assert "errorCode" not in create
    at = datetime.datetime.strptime(create["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    assert before <= at <= datetime.datetime.now(datetime.timezone.utc)
    assert len({r["eventID"] for r in got}) == len(got)

    summary = one(got, eventName="DescribeStreamSummary")
    assert summary["readOnly"] is True and summary["responseElements"] is None

    # A failure: its code and message; another user, named by its key.
    failed = one(got, eventName="DescribeStream")
    assert failed["errorCode"] == "ResourceNotFoundException"
    assert failed["errorMessage"] == missing.value.response["Error"]["Message"]
    assert failed["requestID"] == missing.value.response["ResponseMetadata"]["RequestId"]
    assert failed["userIdentity"]["userName"] == "AKIDBOB"
    assert failed["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/AKIDBOB"

    # Data events are off by default.
    assert not [r for r in got if r["eventName"] == "PutRecord"]

    # Firehose: its answer's elements, the endpoint's access key blanked.
    delivery = one(got, eventSource="firehose.amazonaws.com", eventName="CreateDeliveryStream")
    config = delivery["requestParameters"]["httpEndpointDestinationConfiguration"]
    assert config["endpointConfiguration"] == {"url": "https://127.0.0.1:9/x", "name": "e",
                                               "accessKey": ""}
    assert delivery["responseElements"] == {"deliveryStreamARN": fh.describe_delivery_stream(
        DeliveryStreamName=name)["DeliveryStreamDescription"]["DeliveryStreamARN"]}
    assert not [line for p in glob.glob(os.path.join(data, "d", "audit", "*.jsonl"))
                for line in open(p) if "do-not-log-this" in line]

    # Kinesis Video (REST): the same shape.
    kv = one(got, eventSource="kinesisvideo.amazonaws.com", eventName="CreateStream")
    assert kv["requestParameters"] == {"streamName": name, "dataRetentionInHours": 1}
    assert kv["responseElements"] == {"streamARN": video["StreamARN"]}


def test_the_aws_cli_is_recorded_with_its_user_agent(audited):
    http, data = audited
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDALICE", AWS_SECRET_ACCESS_KEY=KEYS["AKIDALICE"][0],
               AWS_DEFAULT_REGION="us-east-1")
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    out = subprocess.run([aws, "kinesis", "list-streams", "--endpoint-url", f"http://{http}"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    got = wait_for(data, lambda r: r["eventName"] == "ListStreams"
                   and r["userAgent"].startswith("aws-cli/"))
    assert [r for r in got if r["eventName"] == "ListStreams"][-1]["requestParameters"] is None


def test_data_events_when_asked_without_record_data():
    proc, http, data, conf_dir = start("--audit-data-events")
    try:
        kinesis = client("kinesis", http)
        kinesis.create_stream(StreamName="d", ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(StreamName="d", WaiterConfig={"Delay": 0.1})
        kinesis.put_records(StreamName="d", Records=[{"PartitionKey": "p", "Data": b"payload-1"}])
        got = wait_for(data, lambda r: r["eventName"] == "PutRecords")
        put = one(got, eventName="PutRecords")
        assert put["eventCategory"] == "Data" and put["managementEvent"] is False
        assert put["requestParameters"] == {"streamName": "d", "records": [{"partitionKey": "p"}]}
        # Neither the data nor its base64 anywhere in the trail.
        text = "".join(open(p).read() for p in glob.glob(os.path.join(data, "d", "audit", "*.jsonl")))
        assert "payload-1" not in text and "cGF5bG9hZC0x" not in text
    finally:
        stop_server(proc, data)
        shutil.rmtree(conf_dir, ignore_errors=True)


def test_no_trail_when_turned_off():
    proc, http, data, conf_dir = start("--audit", "off")
    try:
        client("kinesis", http).list_streams()
        assert os.path.isdir(os.path.join(data, "d"))
        assert not os.path.exists(os.path.join(data, "d", "audit"))
    finally:
        stop_server(proc, data)
        shutil.rmtree(conf_dir, ignore_errors=True)


def test_native_calls_are_recorded_as_the_aws_calls_they_are():
    """The native protocol's calls (the riffle CLI, authenticated with an
    access key) are CloudTrail records too: their AWS names and sources, the
    key's user, the peer, `riffle-native` as user agent, data events only
    when asked, refusals with their error code."""
    from conftest import start_server_native
    conf_dir = tempfile.mkdtemp(prefix="audit-", dir=os.path.join(ROOT, "target", "tmp"))
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        entries = [f'{{ id = "{k}", secret = "{s}"' + (f', user = "{u}"' if u else "") + " }"
                   for k, (s, u) in KEYS.items()]
        f.write(f"access_keys = [{', '.join(entries)}]\n")
    proc, native, http, data = start_server_native("--config", conf, "--auth", "sigv4",
                                                   "--audit-data-events")
    try:
        from conftest import BINARY, server_env
        env = {k: v for k, v in server_env().items() if not k.startswith("AWS_")}

        def cli(key, *args):
            return subprocess.run([BINARY, "--server", native, "--access-key-id", key,
                                   "--secret-access-key", KEYS[key][0], *args],
                                  capture_output=True, text=True, timeout=60, env=env)

        stream = f"native-{uuid.uuid4().hex[:6]}"
        assert cli("AKIDALICE", "stream", "create", stream).returncode == 0
        assert cli("AKIDALICE", "put", stream, "--partition-key", "k", "not in the trail").returncode == 0
        assert cli("AKIDALICE", "stream", "delete", "no-such-stream").returncode != 0
        got = wait_for(data, lambda r: r["eventName"] == "DeleteStream")
        native_records = [r for r in got if r["userAgent"] == "riffle-native"]
        created = one(native_records, eventName="CreateStream")
        assert created["eventSource"] == "kinesis.amazonaws.com"
        assert created["userIdentity"]["userName"] == "alice"
        assert created["userIdentity"]["accessKeyId"] == "AKIDALICE"
        assert created["sourceIPAddress"] == "127.0.0.1"
        assert created["requestParameters"] == {"streamName": stream, "shardCount": 1}
        assert created["managementEvent"] is True and "errorCode" not in created
        put = one(native_records, eventName="PutRecord")
        assert put["eventCategory"] == "Data" and put["managementEvent"] is False
        failed = one(native_records, eventName="DeleteStream")
        assert failed["errorCode"] == "ResourceNotFoundException"
        assert "no-such-stream" in failed["errorMessage"]
        text = "".join(open(p).read() for p in glob.glob(os.path.join(data, "d", "audit", "*.jsonl")))
        assert "not in the trail" not in text
    finally:
        stop_server(proc, data)
