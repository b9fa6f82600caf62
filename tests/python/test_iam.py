"""IAM policies decide signed calls (`--auth sigv4 --iam-policies FILE`):
the IAM documentation's Kinesis examples (read-only on one stream, write to
every stream, full access) as boto3 calls of several users, an explicit
deny, a resource policy that grants another account's user, AWS's
AccessDeniedException words, the denial in the audit trail, and a
malformed identities file refused at start."""

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import BINARY, ROOT, start_server, stop_server

ACCOUNT, OTHER = "000000000000", "444455556666"
KEYS = {"AKIDALICE": "alice", "AKIDBOB": "bob", "AKIDCAROL": "carol", "AKIDADMIN": "admin",
        "AKIDDORA": "dora"}


def arn(name):
    return f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}"


def identities(stream1):
    return {
        "Users": {
            # Read-only on one stream (controlling-access.md's first example).
            "alice": {"Policies": [{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["kinesis:Get*", "kinesis:DescribeStreamSummary"],
                 "Resource": [arn(stream1)]},
                {"Effect": "Allow", "Action": ["kinesis:ListStreams"], "Resource": ["*"]}]}]},
            # Write to every stream of the account (the second).
            "bob": {"Policies": [{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["kinesis:PutRecord"],
                 "Resource": [f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/*"]}]}]},
            # Another account's user, allowed reads by its own policy.
            "carol": {"Account": OTHER, "Policies": [{"Statement": [
                {"Effect": "Allow", "Action": "kinesis:Get*", "Resource": "*"}]}]},
            "admin": {"Groups": ["admins"]},
            # The other services' resources, by name pattern.
            "dora": {"Policies": [{"Statement": [
                {"Effect": "Allow", "Action": "firehose:*",
                 "Resource": f"arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/d1-*"},
                {"Effect": "Allow", "Action": "kinesisvideo:*",
                 "Resource": f"arn:aws:kinesisvideo:us-east-1:{ACCOUNT}:stream/v1-*/*"},
                {"Effect": "Allow", "Action": "kinesisanalytics:*",
                 "Resource": f"arn:aws:kinesisanalytics:us-east-1:{ACCOUNT}:application/a1-*"}]}]},
        },
        "Groups": {"admins": {"Policies": [{"Statement": [
            {"Effect": "Allow", "Action": ["kinesis:*", "firehose:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": "kinesis:DeleteStream", "Resource": arn("keep-*")}]}]}},
    }


def client(service, http, key):
    return boto3.client(service, endpoint_url=f"http://{http}", region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=f"{key}-secret",
                        config=Config(retries={"max_attempts": 1}))


def write_config(dirname, policies):
    conf = os.path.join(dirname, "riffle.toml")
    keys = ", ".join(f'{{ id = "{k}", secret = "{k}-secret", user = "{u}" }}' for k, u in KEYS.items())
    iam = os.path.join(dirname, "iam.json")
    with open(iam, "w") as f:
        f.write(policies if isinstance(policies, str) else json.dumps(policies))
    with open(conf, "w") as f:
        f.write(f"access_keys = [{keys}]\niam_policies = \"{iam}\"\n")
    return conf


def denied(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException", e.value.response
    return e.value.response["Error"]["Message"]


def test_policies_decide_each_users_calls():
    conf_dir = tempfile.mkdtemp(prefix="iam-", dir=os.path.join(ROOT, "target", "tmp"))
    stream1, stream2, keep = (f"{p}-{uuid.uuid4().hex[:6]}" for p in ("s1", "s2", "keep"))
    proc, http, data = start_server("--config", write_config(conf_dir, identities(stream1)),
                                    "--auth", "sigv4")
    try:
        admin = client("kinesis", http, "AKIDADMIN")
        for s in (stream1, stream2, keep):
            admin.create_stream(StreamName=s, ShardCount=1)
            admin.get_waiter("stream_exists").wait(StreamName=s, WaiterConfig={"Delay": 0.1})
        # An explicit deny wins over the group's allow.
        msg = denied(admin.delete_stream, StreamName=keep)
        assert msg == (f"User: arn:aws:iam::{ACCOUNT}:user/admin is not authorized to perform: "
                       f"kinesis:DeleteStream on resource: {arn(keep)} with an explicit deny in an "
                       "identity-based policy")

        bob = client("kinesis", http, "AKIDBOB")
        bob.put_record(StreamName=stream1, PartitionKey="k", Data=b"from bob")
        bob.put_record(StreamARN=arn(stream2), PartitionKey="k", Data=b"to two")
        denied(bob.put_records, StreamName=stream1, Records=[{"PartitionKey": "k", "Data": b"x"}])
        denied(bob.list_streams)

        alice = client("kinesis", http, "AKIDALICE")
        assert stream1 in alice.list_streams()["StreamNames"]
        alice.describe_stream_summary(StreamName=stream1)
        it = alice.get_shard_iterator(StreamName=stream1, ShardId="shardId-000000000000",
                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        # GetRecords' resource is the stream its iterator reads.
        assert [r["Data"] for r in alice.get_records(ShardIterator=it)["Records"]] == [b"from bob"]
        msg = denied(alice.put_record, StreamName=stream1, PartitionKey="k", Data=b"x")
        assert msg == (f"User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: "
                       f"kinesis:PutRecord on resource: {arn(stream1)} because no identity-based "
                       "policy allows the kinesis:PutRecord action")
        denied(alice.describe_stream_summary, StreamName=stream2)
        # An iterator of a stream alice may not read is refused too.
        it2 = admin.get_shard_iterator(StreamName=stream2, ShardId="shardId-000000000000",
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        denied(alice.get_records, ShardIterator=it2)
        # A call naming two streams is decided on both (the service reads
        # one of them): naming an allowed one beside does not help.
        denied(alice.describe_stream_summary, StreamName=stream2, StreamARN=arn(stream1))
        denied(alice.get_records, ShardIterator=it2, StreamARN=arn(stream1))
        # A resource policy this server cannot enforce is refused when put.
        with pytest.raises(ClientError) as e:
            admin.put_resource_policy(ResourceARN=arn(stream1), Policy=json.dumps({"Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "kinesis:GetRecords"}]}))
        assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
        assert "only AWS principals" in e.value.response["Error"]["Message"]
        # Another service's actions: firehose:* for the admin only.
        client("firehose", http, "AKIDADMIN").list_delivery_streams()
        denied(client("firehose", http, "AKIDALICE").list_delivery_streams)

        # The other services are decided on the resource named: allowed ones
        # reach the service (which does not find them), the others do not.
        dora = {s: client(s, http, "AKIDDORA") for s in ("firehose", "kinesisvideo", "kinesisanalytics")}
        with pytest.raises(ClientError) as e:
            dora["firehose"].describe_delivery_stream(DeliveryStreamName="d1-x")
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
        msg = denied(dora["firehose"].describe_delivery_stream, DeliveryStreamName="d2-x")
        assert f"on resource: arn:aws:firehose:us-east-1:{ACCOUNT}:deliverystream/d2-x because" in msg
        with pytest.raises(ClientError) as e:
            dora["kinesisvideo"].describe_stream(StreamName="v1-x")
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
        denied(dora["kinesisvideo"].describe_stream, StreamName="v2-x")
        with pytest.raises(ClientError) as e:
            dora["kinesisanalytics"].describe_application(ApplicationName="a1-x")
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
        denied(dora["kinesisanalytics"].describe_application, ApplicationName="a2-x")

        # Another account's user: its own allow is not enough without the
        # stream's resource policy, which then grants it.
        carol = client("kinesis", http, "AKIDCAROL")
        read = dict(StreamName=stream2, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")
        denied(carol.get_shard_iterator, **read)
        admin.put_resource_policy(ResourceARN=arn(stream2), Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Sid": "shareWithCarol", "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{OTHER}:user/carol"},
                "Action": ["kinesis:GetShardIterator", "kinesis:GetRecords"], "Resource": arn(stream2)}]}))
        it = carol.get_shard_iterator(**read)["ShardIterator"]
        assert [r["Data"] for r in carol.get_records(ShardIterator=it)["Records"]] == [b"to two"]
        # Still not what the resource policy leaves out.
        denied(carol.describe_stream_summary, StreamName=stream2)

        # The denials are in the audit trail (on disk within a second), with
        # who asked.
        deadline = time.monotonic() + 10
        while True:
            records = [json.loads(line) for p in sorted(glob.glob(os.path.join(data, "d", "audit", "*.jsonl")))
                       for line in open(p)]
            put = [r for r in records if r["eventName"] == "DescribeStreamSummary" and r.get("errorCode")]
            if len(put) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [r["errorCode"] for r in put] == ["AccessDeniedException"] * 3
        assert [r["userIdentity"]["userName"] for r in put] == ["alice", "alice", "carol"]
        assert put[2]["userIdentity"]["arn"] == f"arn:aws:iam::{OTHER}:user/carol"
    finally:
        stop_server(proc, data)
        shutil.rmtree(conf_dir, ignore_errors=True)


def test_a_malformed_identities_file_stops_the_server():
    conf_dir = tempfile.mkdtemp(prefix="iam-", dir=os.path.join(ROOT, "target", "tmp"))
    try:
        conf = write_config(conf_dir, json.dumps({"Users": {"alice": {"Policies": [
            {"Statement": {"Effect": "Allow", "Action": "PutRecord", "Resource": "*"}}]}}}))
        data = os.path.join(conf_dir, "d")
        out = subprocess.run([BINARY, "server", "--config", conf, "--auth", "sigv4", "--data-dir", data,
                              "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--no-pin"],
                             capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if not k.startswith("RIFFLE_")})
        assert out.returncode != 0
        assert "$.Users.alice.Policies[0]" in out.stderr and "Action[0]" in out.stderr, out.stderr
    finally:
        shutil.rmtree(conf_dir, ignore_errors=True)


def test_request_tags_and_tag_keys_are_conditions():
    """aws:RequestTag/<key> and aws:TagKeys: a user may create streams only
    tagged team=data, tag them only with the keys team and env, and create
    delivery streams (Firehose's list form of tags) only tagged team=data."""
    conf_dir = tempfile.mkdtemp(prefix="iam-", dir=os.path.join(ROOT, "target", "tmp"))
    policies = {"Users": {
        "alice": {"Policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kinesis:CreateStream", "kinesis:AddTagsToStream",
                                           "firehose:CreateDeliveryStream"],
             "Resource": "*",
             "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}},
            {"Effect": "Deny", "Action": ["kinesis:CreateStream", "firehose:CreateDeliveryStream"],
             "Resource": "*",
             "Condition": {"StringNotEquals": {"aws:RequestTag/team": "data"}}},
            {"Effect": "Allow", "Action": "kinesis:Describe*", "Resource": "*"}]}]},
    }}
    proc, http, data = start_server("--config", write_config(conf_dir, policies),
                                    "--auth", "sigv4")
    try:
        alice = client("kinesis", http, "AKIDALICE")
        alice.create_stream(StreamName="tagged", ShardCount=1, Tags={"team": "data", "env": "dev"})
        msg = denied(alice.create_stream, StreamName="other-team", ShardCount=1,
                     Tags={"team": "ops"})
        assert "kinesis:CreateStream" in msg and "explicit deny" in msg, msg
        # No tags: no team=data (StringNotEquals on a missing key matches).
        denied(alice.create_stream, StreamName="untagged", ShardCount=1)
        alice.get_waiter("stream_exists").wait(StreamName="tagged", WaiterConfig={"Delay": 0.1})
        alice.add_tags_to_stream(StreamName="tagged", Tags={"env": "prod"})
        msg = denied(alice.add_tags_to_stream, StreamName="tagged", Tags={"owner": "me"})
        assert "kinesis:AddTagsToStream" in msg, msg
        firehose = client("firehose", http, "AKIDALICE")
        destination = {"RoleARN": "arn:aws:iam::123456789012:role/f",
                       "BucketARN": "arn:aws:s3:::tagged-bucket"}
        firehose.create_delivery_stream(DeliveryStreamName="fh-data",
                                        ExtendedS3DestinationConfiguration=destination,
                                        Tags=[{"Key": "team", "Value": "data"}])
        denied(firehose.create_delivery_stream, DeliveryStreamName="fh-ops",
               ExtendedS3DestinationConfiguration=destination,
               Tags=[{"Key": "team", "Value": "ops"}])
    finally:
        stop_server(proc, data)


def test_what_a_call_makes_a_service_do_is_decided_as_the_caller():
    """A user may not read or write a stream through a service it may use:
    a delivery stream's Kinesis source, an application's input and output,
    and a Lambda mapping's event source need the caller's own
    kinesis:GetRecords / kinesis:PutRecords on them (AWS mediates these with
    the service's IAM role)."""
    conf_dir = tempfile.mkdtemp(prefix="iam-", dir=os.path.join(ROOT, "target", "tmp"))
    policies = {"Users": {
        "admin": {"Policies": [{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}]},
        "alice": {"Policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["firehose:*", "kinesisanalytics:*", "lambda:*"],
             "Resource": "*"},
            {"Effect": "Allow", "Action": ["kinesis:GetRecords", "kinesis:PutRecords",
                                           "kinesis:Describe*"],
             "Resource": arn("open-*")},
            {"Effect": "Deny", "Action": "kinesis:GetRecords", "Resource": "*",
             "Condition": {"StringEquals": {"aws:ResourceTag/secret": "true"}}}]}]},
    }}
    proc, http, data = start_server("--config", write_config(conf_dir, policies),
                                    "--auth", "sigv4")
    try:
        admin = client("kinesis", http, "AKIDADMIN")
        admin.create_stream(StreamName="open-tagged", ShardCount=1, Tags={"secret": "true"})
        for s in ("open-in", "open-out", "secret"):
            admin.create_stream(StreamName=s, ShardCount=1)
            admin.get_waiter("stream_exists").wait(StreamName=s, WaiterConfig={"Delay": 0.1})
        role = "arn:aws:iam::123456789012:role/r"
        firehose = client("firehose", http, "AKIDALICE")
        dest = {"RoleARN": role, "BucketARN": "arn:aws:s3:::deputy-bucket"}
        msg = denied(firehose.create_delivery_stream, DeliveryStreamName="steal",
                     DeliveryStreamType="KinesisStreamAsSource",
                     KinesisStreamSourceConfiguration={"KinesisStreamARN": arn("secret"),
                                                       "RoleARN": role},
                     ExtendedS3DestinationConfiguration=dest)
        assert f"kinesis:GetRecords on resource: {arn('secret')}" in msg, msg
        # The source's own tags count: a deny on them holds through a service.
        msg = denied(firehose.create_delivery_stream, DeliveryStreamName="tagged",
                     DeliveryStreamType="KinesisStreamAsSource",
                     KinesisStreamSourceConfiguration={"KinesisStreamARN": arn("open-tagged"),
                                                       "RoleARN": role},
                     ExtendedS3DestinationConfiguration=dest)
        assert "explicit deny" in msg, msg
        firehose.create_delivery_stream(
            DeliveryStreamName="fine", DeliveryStreamType="KinesisStreamAsSource",
            KinesisStreamSourceConfiguration={"KinesisStreamARN": arn("open-in"), "RoleARN": role},
            ExtendedS3DestinationConfiguration=dest)
        analytics = client("kinesisanalytics", http, "AKIDALICE")
        schema = {"RecordFormat": {"RecordFormatType": "JSON",
                                   "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
                  "RecordColumns": [{"Name": "n", "SqlType": "INTEGER", "Mapping": "$.n"}]}

        def app(name, source, sink):
            return dict(ApplicationName=name, Inputs=[{
                "NamePrefix": "SOURCE_SQL_STREAM", "InputSchema": schema,
                "KinesisStreamsInput": {"ResourceARN": arn(source), "RoleARN": role}}],
                Outputs=[{"Name": "DEST", "DestinationSchema": {"RecordFormatType": "JSON"},
                          "KinesisStreamsOutput": {"ResourceARN": arn(sink), "RoleARN": role}}])

        msg = denied(analytics.create_application, **app("read-secret", "secret", "open-out"))
        assert "kinesis:GetRecords" in msg and arn("secret") in msg, msg
        msg = denied(analytics.create_application, **app("write-secret", "open-in", "secret"))
        assert "kinesis:PutRecords" in msg and arn("secret") in msg, msg
        analytics.create_application(**app("allowed", "open-in", "open-out"))
    finally:
        stop_server(proc, data)
