"""`riffle apply|diff|delete -f stack.yaml`: CloudFormation-shaped templates
applied to a server over its AWS HTTP API, checked through boto3. Every
supported type made with the template's properties (and the stack's tags);
a second apply changing nothing; a diff naming exactly what the next apply
does (update with the property names, replace for a rename, create, delete)
and changing nothing itself; delete removing everything, the stack's
earlier resources too, and keeping what DeletionPolicy: Retain keeps;
refusals of a template (exit 2, the node's path, nothing made); a name taken
by a resource the stack did not make (exit 1, untouched); a server checking
signatures (credentials from AWS's variables, an IAM deny); JSON templates."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from conftest import BINARY, ROOT, plain_keyring, server_env, start_server, stop_server

REGION = "us-east-1"
ROLE = "arn:aws:iam::000000000000:role/stack"


def unique(prefix="stk"):
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def http():
    proc, http, data = start_server("--kms-keyring", plain_keyring())
    yield http
    stop_server(proc, data)


def clients(http, key="AKIDEXAMPLE", secret="secret"):
    def make(service):
        return boto3.client(service, endpoint_url=f"http://{http}", region_name=REGION,
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            config=Config(retries={"max_attempts": 1}))
    return {s: make(s) for s in ("kinesis", "firehose", "kinesisanalytics", "kinesisvideo")}


@pytest.fixture(scope="module")
def aws(http):
    return clients(http)


def riffle(http, command, path, *args, env=None, json_out=True, json_after=False):
    """Runs `riffle [--json] COMMAND -f PATH --http HTTP ARGS`, without AWS_*
    settings of this environment (plus `env`). With json_out the output is
    parsed (when the command succeeded)."""
    base = {k: v for k, v in server_env().items() if not k.startswith("AWS_")}
    base["HOME"] = tempfile.mkdtemp(prefix="home-", dir=os.path.join(ROOT, "target", "tmp"))
    base.update(env or {})
    argv = [BINARY]
    if json_out and not json_after:
        argv.append("--json")
    argv += [command, "-f", str(path), "--http", http, *args]
    if json_out and json_after:
        argv.append("--json")
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=base)
    finally:
        shutil.rmtree(base["HOME"], ignore_errors=True)
    out.json = json.loads(out.stdout) if json_out and out.returncode == 0 else None
    return out


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def actions(result):
    """{logical id: (action, sorted properties)} of a --json answer; a list of
    them for a logical id with more than one step (a replacement's old
    resource is deleted as a step of its own, after the others)."""
    out = {}
    for c in result["Changes"]:
        step = (c["Action"], sorted(c.get("Properties", [])))
        i = c["LogicalResourceId"]
        out[i] = step if i not in out else (out[i] if isinstance(out[i], list) else [out[i]]) + [step]
    return out


def not_found(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException", e.value.response


def stream_tags(aws, name):
    tags = aws["kinesis"].list_tags_for_stream(StreamName=name)["Tags"]
    return {t["Key"]: t["Value"] for t in tags}


def streams_with_prefix(aws, prefix):
    names = aws["kinesis"].list_streams(Limit=10000)["StreamNames"]
    return [n for n in names if n.startswith(prefix)]


# ---------------------------------------------------------------- every type

FULL = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: every supported type
Parameters:
  Env:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  Shards:
    Type: Number
    Default: 2
Resources:
  Orders:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: !Sub "${AWS::StackName}-orders"
      ShardCount: !Ref Shards
      RetentionPeriodHours: 48
      StreamEncryption: {EncryptionType: KMS, KeyId: alias/aws/kinesis}
      DesiredShardLevelMetrics: [IncomingBytes, OutgoingRecords]
      Tags:
        - {Key: team, Value: data}
  Reader:
    Type: AWS::Kinesis::StreamConsumer
    Properties:
      ConsumerName: reader
      StreamARN: !GetAtt Orders.Arn
  Archive:
    Type: AWS::KinesisFirehose::DeliveryStream
    Properties:
      DeliveryStreamType: KinesisStreamAsSource
      KinesisStreamSourceConfiguration:
        KinesisStreamARN: !GetAtt Orders.Arn
        RoleARN: %(role)s
      ExtendedS3DestinationConfiguration:
        BucketARN: arn:aws:s3:::archive
        RoleARN: %(role)s
        Prefix: !Sub "${Env}/orders/"
        BufferingHints: {SizeInMBs: 1, IntervalInSeconds: 60}
      Tags:
        - {Key: team, Value: data}
  Totals:
    Type: AWS::KinesisAnalytics::Application
    Properties:
      ApplicationName: !Sub "${AWS::StackName}-${Env}-totals"
      ApplicationDescription: totals per ticker
      ApplicationCode: |
        CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (TICKER VARCHAR(4), PRICE REAL);
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM TICKER_SYMBOL, PRICE FROM "SOURCE_SQL_STREAM_001";
      Inputs:
        - NamePrefix: SOURCE_SQL_STREAM
          KinesisStreamsInput:
            ResourceARN: !GetAtt Orders.Arn
            RoleARN: %(role)s
          InputSchema:
            RecordFormat:
              RecordFormatType: JSON
              MappingParameters: {JSONMappingParameters: {RecordRowPath: "$"}}
            RecordColumns:
              - {Name: TICKER_SYMBOL, Mapping: "$.TICKER_SYMBOL", SqlType: VARCHAR(4)}
              - {Name: PRICE, Mapping: "$.PRICE", SqlType: REAL}
  TotalsOut:
    Type: AWS::KinesisAnalytics::ApplicationOutput
    Properties:
      ApplicationName: !Ref Totals
      Output:
        Name: DESTINATION_SQL_STREAM
        KinesisStreamsOutput:
          ResourceARN: !GetAtt Orders.Arn
          RoleARN: %(role)s
        DestinationSchema: {RecordFormatType: JSON}
  Tickers:
    Type: AWS::KinesisAnalytics::ApplicationReferenceDataSource
    Properties:
      ApplicationName: !Ref Totals
      ReferenceDataSource:
        TableName: CompanyName
        S3ReferenceDataSource:
          BucketARN: arn:aws:s3:::refdata
          FileKey: tickers.csv
          ReferenceRoleARN: %(role)s
        ReferenceSchema:
          RecordFormat:
            RecordFormatType: CSV
            MappingParameters:
              CSVMappingParameters: {RecordRowDelimiter: "\\n", RecordColumnDelimiter: ","}
          RecordColumns:
            - {Name: Ticker, SqlType: VARCHAR(4)}
            - {Name: Company, SqlType: VARCHAR(20)}
  Camera:
    Type: AWS::KinesisVideo::Stream
    DeletionPolicy: Retain
    Properties:
      DataRetentionInHours: 24
      MediaType: video/h264
      Tags:
        - {Key: site, Value: door}
Outputs:
  StreamArn:
    Value: !GetAtt Orders.Arn
  Consumer:
    Value: !Ref Reader
  ArchiveArn:
    Value: !GetAtt Archive.Arn
  CameraArn:
    Value: !GetAtt Camera.Arn
  App:
    Value: !Ref Totals
""" % {"role": ROLE}


def test_apply_makes_every_type_a_second_apply_nothing_and_delete_keeps_the_retained(
        http, aws, tmp_path):
    stack = unique()
    # The stack's name is the file's stem.
    path = write(tmp_path, f"{stack}.yaml", FULL)
    out = riffle(http, "apply", path)
    assert out.returncode == 0, out.stderr
    result = out.json
    stream, app, camera, archive = (f"{stack}-orders", f"{stack}-dev-totals", f"{stack}-Camera",
                                    f"{stack}-Archive")
    assert result["StackName"] == stack
    assert result["Changed"] == 7
    assert actions(result) == {i: ("create", []) for i in (
        "Orders", "Reader", "Archive", "Totals", "TotalsOut", "Tickers", "Camera")}
    physical = {c["LogicalResourceId"]: c["PhysicalResourceId"] for c in result["Changes"]}
    assert physical["Orders"] == stream and physical["Camera"] == camera
    assert physical["Archive"] == archive and physical["Totals"] == app

    kinesis, firehose, ka, kv = (aws["kinesis"], aws["firehose"], aws["kinesisanalytics"],
                                 aws["kinesisvideo"])
    # The stream.
    s = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert (s["StreamStatus"], s["OpenShardCount"], s["RetentionPeriodHours"]) == ("ACTIVE", 2, 48)
    assert s["StreamModeDetails"]["StreamMode"] == "PROVISIONED"
    assert s["EncryptionType"] == "KMS" and s["KeyId"] == "alias/aws/kinesis"
    assert sorted(s["EnhancedMonitoring"][0]["ShardLevelMetrics"]) == ["IncomingBytes",
                                                                        "OutgoingRecords"]
    assert stream_tags(aws, stream) == {"team": "data", "riffle/stack": stack,
                                        "riffle/logical-id": "Orders"}
    stream_arn = s["StreamARN"]
    # The consumer.
    c = kinesis.describe_stream_consumer(StreamARN=stream_arn,
                                         ConsumerName="reader")["ConsumerDescription"]
    assert c["ConsumerStatus"] == "ACTIVE"
    # The delivery stream: its source, prefix, tags.
    d = firehose.describe_delivery_stream(DeliveryStreamName=archive)["DeliveryStreamDescription"]
    assert d["DeliveryStreamStatus"] == "ACTIVE"
    assert d["DeliveryStreamType"] == "KinesisStreamAsSource"
    assert d["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"] == stream_arn
    dest = d["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert dest["Prefix"] == "dev/orders/" and dest["BucketARN"] == "arn:aws:s3:::archive"
    assert dest["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 60}
    fh_tags = {t["Key"]: t["Value"] for t in
               firehose.list_tags_for_delivery_stream(DeliveryStreamName=archive)["Tags"]}
    assert fh_tags == {"team": "data", "riffle/stack": stack, "riffle/logical-id": "Archive"}
    # The application, its input, output and reference data source.
    a = ka.describe_application(ApplicationName=app)["ApplicationDetail"]
    assert a["ApplicationCode"].startswith('CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM"')
    assert "SELECT STREAM TICKER_SYMBOL, PRICE FROM" in a["ApplicationCode"]
    assert a["ApplicationDescription"] == "totals per ticker"
    [i] = a["InputDescriptions"]
    assert i["NamePrefix"] == "SOURCE_SQL_STREAM"
    assert i["KinesisStreamsInputDescription"]["ResourceARN"] == stream_arn
    assert [col["Name"] for col in i["InputSchema"]["RecordColumns"]] == ["TICKER_SYMBOL", "PRICE"]
    [o] = a["OutputDescriptions"]
    assert o["Name"] == "DESTINATION_SQL_STREAM"
    assert o["KinesisStreamsOutputDescription"]["ResourceARN"] == stream_arn
    assert o["DestinationSchema"] == {"RecordFormatType": "JSON"}
    [r] = a["ReferenceDataSourceDescriptions"]
    assert r["TableName"] == "CompanyName"
    assert r["S3ReferenceDataSourceDescription"]["FileKey"] == "tickers.csv"
    assert r["S3ReferenceDataSourceDescription"]["BucketARN"] == "arn:aws:s3:::refdata"
    app_tags = {t["Key"]: t["Value"] for t in
                ka.list_tags_for_resource(ResourceARN=a["ApplicationARN"])["Tags"]}
    assert app_tags == {"riffle/stack": stack, "riffle/logical-id": "Totals"}
    # The video stream (unnamed: <stack>-<LogicalId>).
    v = kv.describe_stream(StreamName=camera)["StreamInfo"]
    assert (v["Status"], v["DataRetentionInHours"], v["MediaType"]) == ("ACTIVE", 24, "video/h264")
    video_tags = kv.list_tags_for_stream(StreamARN=v["StreamARN"])["Tags"]
    # DeletionPolicy: Retain is recorded on the resource (kept once it leaves the template too).
    assert video_tags == {"site": "door", "riffle/stack": stack, "riffle/logical-id": "Camera",
                          "riffle/deletion-policy": "Retain"}
    # The outputs: the real ARNs.
    assert result["Outputs"] == {"StreamArn": stream_arn, "Consumer": c["ConsumerARN"],
                                 "ArchiveArn": d["DeliveryStreamARN"],
                                 "CameraArn": v["StreamARN"], "App": app}

    # A second apply (--json after the subcommand): nothing to do, nothing done.
    out = riffle(http, "apply", path, json_after=True)
    assert out.returncode == 0, out.stderr
    assert out.json["Changed"] == 0
    assert {c["Action"] for c in out.json["Changes"]} == {"unchanged"}
    assert len(out.json["Changes"]) == 7
    assert out.json["Outputs"] == result["Outputs"]
    s2 = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert s2["StreamCreationTimestamp"] == s["StreamCreationTimestamp"]
    c2 = kinesis.describe_stream_consumer(StreamARN=stream_arn,
                                          ConsumerName="reader")["ConsumerDescription"]
    assert (c2["ConsumerARN"], c2["ConsumerCreationTimestamp"]) == (
        c["ConsumerARN"], c["ConsumerCreationTimestamp"])
    d2 = firehose.describe_delivery_stream(DeliveryStreamName=archive)["DeliveryStreamDescription"]
    assert (d2["CreateTimestamp"], d2["VersionId"]) == (d["CreateTimestamp"], d["VersionId"])
    a2 = ka.describe_application(ApplicationName=app)["ApplicationDetail"]
    assert (a2["CreateTimestamp"], a2["ApplicationVersionId"]) == (
        a["CreateTimestamp"], a["ApplicationVersionId"])
    v2 = kv.describe_stream(StreamName=camera)["StreamInfo"]
    assert (v2["CreationTime"], v2["Version"]) == (v["CreationTime"], v["Version"])

    # The human diff says the same.
    out = riffle(http, "diff", path, json_out=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert f"unchanged  Orders (AWS::Kinesis::Stream) {stream}" in lines, out.stdout
    assert f"stack {stack}: no changes (7 resources as the template says)" in lines, out.stdout
    assert "Outputs:" in lines and f"  StreamArn = {stream_arn}" in lines, out.stdout

    # Delete: everything but the retained video stream.
    out = riffle(http, "delete", path, json_out=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert f"stack {stack}: 6 deleted, 1 retained" in lines, out.stdout
    assert f"retained   Camera (AWS::KinesisVideo::Stream) {camera}" in lines, out.stdout
    assert f"deleted    Orders (AWS::Kinesis::Stream) {stream}" in lines, out.stdout
    not_found(kinesis.describe_stream_summary, StreamName=stream)
    not_found(kinesis.describe_stream_consumer, ConsumerARN=c["ConsumerARN"])
    not_found(firehose.describe_delivery_stream, DeliveryStreamName=archive)
    not_found(ka.describe_application, ApplicationName=app)
    assert kv.describe_stream(StreamName=camera)["StreamInfo"]["Status"] == "ACTIVE"
    # Kept, and no longer the stack's: only its own tags are left.
    assert kv.list_tags_for_stream(StreamARN=v["StreamARN"])["Tags"] == {"site": "door"}
    kv.delete_stream(StreamARN=v["StreamARN"])


# ---------------------------------------------------------------- diff, then apply

def changing_template(shards, retention, tags, old_name, prefix, price, camera, reader):
    tags_yaml = "\n".join(f"        - {{Key: {k}, Value: {v}}}" for k, v in tags.items())
    text = f"""\
Resources:
  Orders:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: !Sub "${{AWS::StackName}}-orders"
      ShardCount: {shards}
      RetentionPeriodHours: {retention}
      Tags:
{tags_yaml}
  Old:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: {old_name}
  Archive:
    Type: AWS::KinesisFirehose::DeliveryStream
    Properties:
      ExtendedS3DestinationConfiguration:
        BucketARN: arn:aws:s3:::archive
        RoleARN: {ROLE}
        Prefix: {prefix}
  Totals:
    Type: AWS::KinesisAnalytics::Application
    Properties:
      ApplicationCode: |
        CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (TICKER VARCHAR(4), PRICE REAL);
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM TICKER_SYMBOL, {price} FROM "SOURCE_SQL_STREAM_001";
      Inputs:
        - NamePrefix: SOURCE_SQL_STREAM
          KinesisStreamsInput:
            ResourceARN: !GetAtt Orders.Arn
            RoleARN: {ROLE}
          InputSchema:
            RecordFormat:
              RecordFormatType: JSON
              MappingParameters: {{JSONMappingParameters: {{RecordRowPath: "$"}}}}
            RecordColumns:
              - {{Name: TICKER_SYMBOL, Mapping: "$.TICKER_SYMBOL", SqlType: VARCHAR(4)}}
              - {{Name: PRICE, Mapping: "$.PRICE", SqlType: REAL}}
  TotalsOut:
    Type: AWS::KinesisAnalytics::ApplicationOutput
    Properties:
      ApplicationName: !Ref Totals
      Output:
        Name: DESTINATION_SQL_STREAM
        KinesisStreamsOutput:
          ResourceARN: !GetAtt Orders.Arn
          RoleARN: {ROLE}
        DestinationSchema: {{RecordFormatType: JSON}}
"""
    if camera:
        text += """\
  Camera:
    Type: AWS::KinesisVideo::Stream
    Properties:
      DataRetentionInHours: 2
"""
    if reader:
        text += """\
  Reader:
    Type: AWS::Kinesis::StreamConsumer
    Properties:
      ConsumerName: reader
      StreamARN: !GetAtt Orders.Arn
"""
    return text + """\
Outputs:
  Orders:
    Value: !GetAtt Orders.Arn
"""


def state(aws, stack):
    """What the server has of the stack of the diff test."""
    kinesis, firehose, ka, kv = (aws["kinesis"], aws["firehose"], aws["kinesisanalytics"],
                                 aws["kinesisvideo"])
    s = kinesis.describe_stream_summary(StreamName=f"{stack}-orders")["StreamDescriptionSummary"]
    d = firehose.describe_delivery_stream(
        DeliveryStreamName=f"{stack}-Archive")["DeliveryStreamDescription"]
    a = ka.describe_application(ApplicationName=f"{stack}-Totals")["ApplicationDetail"]
    videos = [v["StreamName"] for v in kv.list_streams()["StreamInfoList"]]
    consumers = [c["ConsumerName"] for c in
                 kinesis.list_stream_consumers(StreamARN=s["StreamARN"])["Consumers"]]
    return {
        "shards": s["OpenShardCount"], "retention": s["RetentionPeriodHours"],
        "tags": stream_tags(aws, f"{stack}-orders"),
        "streams": sorted(streams_with_prefix(aws, stack)),
        "prefix": d["Destinations"][0]["ExtendedS3DestinationDescription"]["Prefix"],
        "firehose_version": d["VersionId"],
        "code": a["ApplicationCode"], "app_version": a["ApplicationVersionId"],
        "camera": f"{stack}-Camera" in videos, "consumers": consumers,
    }


def test_diff_shows_what_apply_then_does(http, aws, tmp_path):
    stack = unique()
    v1 = write(tmp_path, "v1.yaml", changing_template(
        1, 24, {"team": "data", "tier": "gold"}, f"{stack}-old", "v1/", "PRICE",
        camera=True, reader=False))
    v2 = write(tmp_path, "v2.yaml", changing_template(
        2, 48, {"team": "platform", "owner": "me"}, f"{stack}-new", "v2/", "PRICE * 2",
        camera=False, reader=True))
    out = riffle(http, "apply", v1, "--stack-name", stack)
    assert out.returncode == 0, out.stderr
    assert out.json["Changed"] == 6
    before = state(aws, stack)
    assert (before["shards"], before["retention"], before["prefix"], before["camera"]) == (
        1, 24, "v1/", True)
    assert before["streams"] == [f"{stack}-old", f"{stack}-orders"]

    out = riffle(http, "diff", v2, "--stack-name", stack)
    assert out.returncode == 0, out.stderr
    assert actions(out.json) == {
        "Orders": ("update", ["RetentionPeriodHours", "ShardCount", "Tags"]),
        "Old": [("replace", ["Name"]), ("delete", [])],
        "Archive": ("update", ["ExtendedS3DestinationConfiguration"]),
        "Totals": ("update", ["ApplicationCode"]),
        "TotalsOut": ("unchanged", []),
        "Reader": ("create", []),
        "Camera": ("delete", []),
    }
    assert out.json["Changed"] == 7
    physical = [(c["LogicalResourceId"], c["Action"], c["PhysicalResourceId"])
                for c in out.json["Changes"]]
    assert ("Old", "replace", f"{stack}-new") in physical
    assert ("Old", "delete", f"{stack}-old") in physical
    assert ("Camera", "delete", f"{stack}-Camera") in physical
    # The diff changed nothing.
    assert state(aws, stack) == before

    # The apply (human output) does what the diff said.
    out = riffle(http, "apply", v2, "--stack-name", stack, json_out=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    words = {}
    for line in lines:
        m = re.match(r"^(\w+) +(\w+) \((AWS::[\w:]+)\) (.+?)(?:: (.+))?$", line)
        if m:
            props = sorted(m.group(5).split(", ")) if m.group(5) else []
            step = (m.group(1), props)
            i = m.group(2)
            words[i] = step if i not in words else [words[i], step]
    assert words == {
        "Orders": ("updated", ["RetentionPeriodHours", "ShardCount", "Tags"]),
        "Old": [("replaced", ["Name"]), ("deleted", [])],
        "Archive": ("updated", ["ExtendedS3DestinationConfiguration"]),
        "Totals": ("updated", ["ApplicationCode"]),
        "TotalsOut": ("unchanged", []),
        "Reader": ("created", []),
        "Camera": ("deleted", []),
    }, out.stdout
    assert f"stack {stack}: 1 created, 3 updated, 1 replaced, 2 deleted, 1 unchanged" in lines, \
        out.stdout
    stream_arn = f"arn:aws:kinesis:{REGION}:000000000000:stream/{stack}-orders"
    assert lines[-2:] == ["Outputs:", f"  Orders = {stream_arn}"], out.stdout

    after = state(aws, stack)
    assert (after["shards"], after["retention"]) == (2, 48)
    assert after["tags"] == {"team": "platform", "owner": "me", "riffle/stack": stack,
                             "riffle/logical-id": "Orders"}
    assert after["prefix"] == "v2/"
    assert "TICKER_SYMBOL, PRICE * 2 FROM" in after["code"]
    assert after["camera"] is False
    assert after["consumers"] == ["reader"]
    # The renamed stream: the old one gone, the new one the stack's.
    assert after["streams"] == [f"{stack}-new", f"{stack}-orders"]
    assert stream_tags(aws, f"{stack}-new") == {"riffle/stack": stack, "riffle/logical-id": "Old"}
    # Applied: nothing left to do (asserted at the end, after the delete).
    settled = riffle(http, "diff", v2, "--stack-name", stack)

    # Delete with the first template: what it names, and what the stack made
    # since under another name (the renamed stream).
    out = riffle(http, "delete", v1, "--stack-name", stack)
    assert out.returncode == 0, out.stderr
    assert streams_with_prefix(aws, stack) == []
    not_found(aws["firehose"].describe_delivery_stream, DeliveryStreamName=f"{stack}-Archive")
    not_found(aws["kinesisanalytics"].describe_application, ApplicationName=f"{stack}-Totals")
    assert settled.returncode == 0, settled.stderr
    assert settled.json["Changed"] == 0, settled.stdout


# ---------------------------------------------------------------- refusals

GOOD = """\
  Good:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: !Sub "${AWS::StackName}-good"
"""

REFUSED = {
    "unknown_property": (GOOD + """\
  Orders:
    Type: AWS::Kinesis::Stream
    DependsOn: Good
    Properties:
      ShardCunt: 2
""", [], "Resources.Orders.Properties.ShardCunt"),
    "unknown_type": (GOOD + """\
  Orders:
    Type: AWS::Kinesis::Streem
    DependsOn: Good
""", [], "Resources.Orders.Type"),
    "ref_to_nothing": (GOOD + """\
  Orders:
    Type: AWS::Kinesis::Stream
    DependsOn: Good
    Properties:
      Name: !Ref Nothing
""", [], "Resources.Orders.Properties.Name"),
    "circular": (GOOD + """\
  A:
    Type: AWS::Kinesis::Stream
    DependsOn: Good
    Properties:
      Name: !Sub "${B}-a"
  B:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: !Sub "${A}-b"
""", [], "circular"),
    "not_allowed_value": (GOOD + """\
  Orders:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: !Sub "${AWS::StackName}-${Env}"
""", ["-p", "Env=staging"], "Parameters.Env"),
    "no_parameter_value": ("""\
  Shards:
    Type: Number
""", GOOD + """\
  Orders:
    Type: AWS::Kinesis::Stream
    Properties:
      ShardCount: !Ref Shards
""", [], "Parameters.Shards"),
    "nested_firehose_member": (GOOD + f"""\
  Archive:
    Type: AWS::KinesisFirehose::DeliveryStream
    DependsOn: Good
    Properties:
      ExtendedS3DestinationConfiguration:
        BucketARN: arn:aws:s3:::archive
        RoleARN: {ROLE}
        BufferingHints: {{SizeInMB: 1}}
""", [], "Resources.Archive.Properties.ExtendedS3DestinationConfiguration.BufferingHints.SizeInMB"),
    "shard_count_on_demand": (GOOD + """\
  Orders:
    Type: AWS::Kinesis::Stream
    DependsOn: Good
    Properties:
      ShardCount: 2
      StreamModeDetails: {StreamMode: ON_DEMAND}
""", [], "Resources.Orders.Properties"),
    # A value known only once the parameters are: still refused before anything is made.
    "property_refuses_parameter": ("""\
  Hours:
    Type: String
    Default: lots
""", GOOD + """\
  Orders:
    Type: AWS::Kinesis::Stream
    DependsOn: Good
    Properties:
      RetentionPeriodHours: !Ref Hours
""", [], "Resources.Orders.Properties.RetentionPeriodHours"),
    "fn_if": (GOOD + """\
  Orders:
    Type: AWS::Kinesis::Stream
    DependsOn: Good
    Properties:
      Name: !If [IsProd, a, b]
""", [], "Resources.Orders.Properties.Name"),
    # The stack's own tags cannot be set (nor AWS's reserved ones).
    "reserved_tag": (GOOD + """\
  Orders:
    Type: AWS::Kinesis::Stream
    DependsOn: Good
    Properties:
      Tags: [{Key: riffle/stack, Value: other}]
""", [], "Resources.Orders.Properties.Tags"),
    "second_document": (GOOD + """\
---
Resources:
  Orders:
    Type: AWS::Kinesis::Stream
""", [], "line"),
}

PARAMETERS = """\
Parameters:
  Env:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
"""


@pytest.mark.parametrize("case", sorted(REFUSED) + ["malformed_yaml", "conditions"])
def test_a_refused_template_makes_nothing(http, aws, tmp_path, case):
    stack = unique()
    if case == "malformed_yaml":
        text = ("Resources:\n  Good:\n    Type: AWS::Kinesis::Stream\n"
                "    Properties:\n      Name: [unclosed\n      ShardCount: 1\n")
        args, where = [], "line"
    elif case == "conditions":
        text, args, where = ("Conditions:\n  IsProd: !Equals [a, b]\nResources:\n" + GOOD), [], \
            "Conditions"
    else:
        entry = REFUSED[case]
        extra, (body, args, where) = (entry[0], entry[1:]) if len(entry) == 4 else ("", entry)
        text = PARAMETERS + extra + "Resources:\n" + body
    path = write(tmp_path, f"{stack}.yaml", text)
    # Every expectation checked, the ones not met listed together.
    wrong = []

    def expect(ok, what):
        if not ok:
            wrong.append(what)

    out = riffle(http, "apply", path, *args, json_out=False)
    shown = f"exit {out.returncode}, stdout {out.stdout!r}, stderr {out.stderr!r}"
    expect(out.returncode == 2, "apply's exit code is 2")
    # The message starts with the file and, where the case names one, the node's path.
    head = f"riffle: {path}: " + (where if where.startswith(("Resources", "Parameters",
                                                             "Conditions")) else "")
    expect(out.stderr.startswith(head), f"apply's message starts with {head!r}")
    expect(where in out.stderr, f"apply's message names {where!r}")
    if case == "malformed_yaml":
        expect(re.search(r"line \d+", out.stderr), "apply's message gives the line")
    if case == "shard_count_on_demand":
        expect("ShardCount" in out.stderr and "ON_DEMAND" in out.stderr,
               "apply's message names ShardCount and ON_DEMAND")
    if case == "ref_to_nothing":
        expect("Nothing" in out.stderr, "apply's message names the missing resource")
    made = streams_with_prefix(aws, stack) + [
        n for n in aws["firehose"].list_delivery_streams(Limit=10000)["DeliveryStreamNames"]
        if n.startswith(stack)]
    expect(made == [], f"nothing made (made: {made})")
    # diff refuses it the same way.
    d = riffle(http, "diff", path, *args, json_out=False)
    expect(d.returncode == 2 and where in d.stderr,
           f"diff exits 2 naming {where!r} (exit {d.returncode}, stderr {d.stderr!r})")
    assert not wrong, f"{case}: not as expected: {wrong}; apply: {shown}"


# ---------------------------------------------------------------- a name taken

def test_a_stream_the_stack_did_not_make_is_refused_and_untouched(http, aws, tmp_path):
    stack = unique()
    name = f"{stack}-orders"
    kinesis = aws["kinesis"]
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    before = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    path = write(tmp_path, f"{stack}.yaml", f"""\
Resources:
  Orders:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: {name}
      ShardCount: 2
      RetentionPeriodHours: 48
      Tags: [{{Key: team, Value: data}}]
""")
    out = riffle(http, "apply", path, json_out=False)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Resources.Orders" in out.stderr and "not made by this stack" in out.stderr, out.stderr
    # Nor does delete touch it.
    out = riffle(http, "delete", path)
    assert out.returncode == 0, out.stderr
    assert out.json["Changed"] == 0
    after = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    keys = ("StreamARN", "StreamCreationTimestamp", "OpenShardCount", "RetentionPeriodHours",
            "StreamStatus", "EncryptionType")
    assert {k: after.get(k) for k in keys} == {k: before.get(k) for k in keys}
    assert (after["OpenShardCount"], after["RetentionPeriodHours"]) == (1, 24)
    assert stream_tags(aws, name) == {}
    kinesis.delete_stream(StreamName=name)


# ---------------------------------------------------------------- a server checking signatures

def test_apply_signs_with_the_environments_credentials_and_iam_decides(tmp_path):
    conf_dir = tempfile.mkdtemp(prefix="stack-", dir=os.path.join(ROOT, "target", "tmp"))
    policies = {"Users": {
        "admin": {"Policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}]},
        "nocreate": {"Policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "kinesis:CreateStream", "Resource": "*"}]}]},
    }}
    iam = os.path.join(conf_dir, "iam.json")
    with open(iam, "w") as f:
        json.dump(policies, f)
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        f.write('access_keys = [{ id = "AKIDADMIN", secret = "admin-secret", user = "admin" }, '
                '{ id = "AKIDNOCREATE", secret = "nocreate-secret", user = "nocreate" }]\n'
                f'iam_policies = "{iam}"\n')
    proc, http, data = start_server("--config", conf, "--auth", "sigv4")
    try:
        aws = clients(http, "AKIDADMIN", "admin-secret")
        stack = unique()
        template = f"""\
Resources:
  Orders:
    Type: AWS::Kinesis::Stream
    Properties:
      ShardCount: 1
  Reader:
    Type: AWS::Kinesis::StreamConsumer
    Properties:
      ConsumerName: reader
      StreamARN: !GetAtt Orders.Arn
  Archive:
    Type: AWS::KinesisFirehose::DeliveryStream
    Properties:
      ExtendedS3DestinationConfiguration:
        BucketARN: arn:aws:s3:::archive
        RoleARN: {ROLE}
"""
        path = write(tmp_path, f"{stack}.yaml", template)
        admin = {"AWS_ACCESS_KEY_ID": "AKIDADMIN", "AWS_SECRET_ACCESS_KEY": "admin-secret"}
        out = riffle(http, "apply", path, env=admin)
        assert out.returncode == 0, out.stderr
        assert out.json["Changed"] == 3
        s = aws["kinesis"].describe_stream_summary(
            StreamName=f"{stack}-Orders")["StreamDescriptionSummary"]
        assert s["StreamStatus"] == "ACTIVE"
        assert aws["firehose"].describe_delivery_stream(DeliveryStreamName=f"{stack}-Archive")[
            "DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE"
        out = riffle(http, "apply", path, env=admin)
        assert out.returncode == 0 and out.json["Changed"] == 0, (out.stderr, out.stdout)

        # A user denied kinesis:CreateStream: refused in AWS's words, nothing made.
        other = unique()
        path = write(tmp_path, f"{other}.yaml", template)
        out = riffle(http, "apply", path, json_out=False,
                     env={"AWS_ACCESS_KEY_ID": "AKIDNOCREATE",
                          "AWS_SECRET_ACCESS_KEY": "nocreate-secret"})
        assert out.returncode == 1, (out.stdout, out.stderr)
        assert "AccessDeniedException" in out.stderr and "kinesis:CreateStream" in out.stderr, \
            out.stderr
        assert streams_with_prefix(aws, other) == []

        # Without credentials: refused, nothing deleted.
        out = riffle(http, "delete", tmp_path / f"{stack}.yaml", json_out=False)
        assert out.returncode == 1, (out.stdout, out.stderr)
        assert streams_with_prefix(aws, stack) == [f"{stack}-Orders"]
        # Delete with the admin's keys given as options.
        base = {k: v for k, v in server_env().items() if not k.startswith("AWS_")}
        res = subprocess.run([BINARY, "--access-key-id", "AKIDADMIN", "--secret-access-key",
                              "admin-secret", "delete", "-f", str(tmp_path / f"{stack}.yaml"),
                              "--http", http], capture_output=True, text=True, timeout=120,
                             env=base)
        assert res.returncode == 0, res.stderr
        assert f"stack {stack}: 3 deleted, 0 retained" in res.stdout.splitlines(), res.stdout
        assert streams_with_prefix(aws, stack) == []
    finally:
        stop_server(proc, data)
        shutil.rmtree(conf_dir, ignore_errors=True)


# ---------------------------------------------------------------- JSON templates

def test_a_json_template_works_as_yaml(http, aws, tmp_path):
    stack = unique()
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {
            "Zones": {"Type": "CommaDelimitedList", "Default": "a,b,c"},
            "Counts": {"Type": "List<Number>", "Default": "1,3"},
            "Hours": {"Type": "Number", "MinValue": 24, "MaxValue": 168, "Default": 24},
            "Team": {"Type": "String", "AllowedPattern": "[a-z]+", "MinLength": 2,
                     "MaxLength": 8},
        },
        "Resources": {
            "Events": {
                "Type": "AWS::Kinesis::Stream",
                "Properties": {
                    "Name": {"Fn::Join": ["-", [{"Ref": "AWS::StackName"}, "events"]]},
                    "ShardCount": {"Fn::Select": [1, {"Ref": "Counts"}]},
                    "RetentionPeriodHours": {"Ref": "Hours"},
                    "Tags": [
                        {"Key": "zone", "Value": {"Fn::Select": [1, {"Ref": "Zones"}]}},
                        {"Key": "team", "Value": {"Ref": "Team"}},
                        {"Key": "split", "Value": {"Fn::Select": [
                            2, {"Fn::Split": ["/", "x/y/z"]}]}},
                        {"Key": "b64", "Value": {"Fn::Base64": "hi"}},
                        {"Key": "region", "Value": {"Fn::Sub": "${AWS::Region}"}},
                    ],
                },
            },
            "Reader": {
                "Type": "AWS::Kinesis::StreamConsumer",
                "Properties": {"ConsumerName": "r",
                               "StreamARN": {"Fn::GetAtt": ["Events", "Arn"]}},
            },
        },
        "Outputs": {
            "Arn": {"Value": {"Fn::GetAtt": ["Events", "Arn"]}},
            "Consumer": {"Value": {"Ref": "Reader"}},
            "Name": {"Value": {"Ref": "Events"}},
        },
    }
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template, indent=2))
    args = ("--stack-name", stack, "-p", "Team=ops", "-p", "Hours=48")
    out = riffle(http, "apply", path, *args)
    assert out.returncode == 0, out.stderr
    assert out.json["StackName"] == stack and out.json["Changed"] == 2
    name = f"{stack}-events"
    s = aws["kinesis"].describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert (s["OpenShardCount"], s["RetentionPeriodHours"]) == (3, 48)
    assert stream_tags(aws, name) == {"zone": "b", "team": "ops", "split": "z", "b64": "aGk=",
                                      "region": REGION, "riffle/stack": stack,
                                      "riffle/logical-id": "Events"}
    c = aws["kinesis"].describe_stream_consumer(StreamARN=s["StreamARN"],
                                                ConsumerName="r")["ConsumerDescription"]
    assert c["ConsumerStatus"] == "ACTIVE"
    assert out.json["Outputs"] == {"Arn": s["StreamARN"], "Consumer": c["ConsumerARN"],
                                   "Name": name}
    # Applied again: nothing to do (asserted at the end, after the delete).
    again = riffle(http, "apply", path, *args)
    # A parameter's constraint refused, with its path.
    out = riffle(http, "apply", path, "--stack-name", stack, "-p", "Team=OPS", json_out=False)
    assert out.returncode == 2 and "Parameters.Team" in out.stderr, out.stderr
    out = riffle(http, "delete", path, *args)
    assert out.returncode == 0, out.stderr
    assert streams_with_prefix(aws, stack) == []
    assert again.returncode == 0, again.stderr
    assert again.json["Changed"] == 0, again.stdout
    assert {ch["Action"] for ch in again.json["Changes"]} == {"unchanged"}


def test_a_stack_named_by_its_file_leaves_what_its_template_does_not_name(http, aws, tmp_path):
    """Without --stack-name the stack's name is the file's: a resource that
    name's stack made earlier and the template no longer names is left alone
    (another project's stack.yaml may have made it), and said so; named, the
    stack deletes it. DesiredShardLevelMetrics: [ALL] settles (the server
    reports the seven metrics)."""
    folder = tmp_path / unique("proj")
    folder.mkdir()
    stack = unique("stack")
    both = f"""\
Resources:
  Keep:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: {stack}-keep
      DesiredShardLevelMetrics: [ALL]
  Gone:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: {stack}-gone
"""
    path = write(folder, f"{stack}.yaml", both)
    out = riffle(http, "apply", path)
    assert out.returncode == 0, out.stderr
    assert out.json["StackName"] == stack
    metrics = aws["kinesis"].describe_stream_summary(StreamName=f"{stack}-keep")[
        "StreamDescriptionSummary"]["EnhancedMonitoring"][0]["ShardLevelMetrics"]
    assert len(metrics) == 7, metrics
    again = riffle(http, "apply", path)
    assert again.returncode == 0 and again.json["Changed"] == 0, again.stdout + again.stderr

    path.write_text(both.split("  Gone:")[0])
    out = riffle(http, "apply", path, json_out=False)
    assert out.returncode == 0, out.stderr
    assert re.search(rf"^left +Gone \(AWS::Kinesis::Stream\) {stack}-gone: not in the template",
                     out.stdout, re.M), out.stdout
    assert f"give --stack-name {stack} to delete them" in out.stdout, out.stdout
    assert streams_with_prefix(aws, stack) == [f"{stack}-gone", f"{stack}-keep"]

    out = riffle(http, "apply", path, "--stack-name", stack)
    assert out.returncode == 0, out.stderr
    assert actions(out.json) == {"Keep": ("unchanged", []), "Gone": ("delete", [])}
    assert streams_with_prefix(aws, stack) == [f"{stack}-keep"]
    out = riffle(http, "delete", path, "--stack-name", stack)
    assert out.returncode == 0, out.stderr
    assert streams_with_prefix(aws, stack) == []


def test_update_replace_policy_retain_keeps_the_old_resource_unmanaged(http, aws, tmp_path):
    """A rename with UpdateReplacePolicy: Retain makes the new stream and keeps
    the old one without the stack's tags (later applies and the delete leave
    it); a same-name replacement under Retain is refused before anything
    changes, since the old resource would keep the name the new one needs."""
    stack = unique()
    def template(name, policy="Retain", mode="PROVISIONED"):
        return f"""\
Resources:
  Orders:
    Type: AWS::Kinesis::Stream
    UpdateReplacePolicy: {policy}
    Properties:
      Name: {stack}-{name}
      StreamModeDetails: {{StreamMode: {mode}}}
"""
    path = write(tmp_path, "retain.yaml", template("a"))
    assert riffle(http, "apply", path, "--stack-name", stack).returncode == 0
    path.write_text(template("b"))
    out = riffle(http, "apply", path, "--stack-name", stack)
    assert out.returncode == 0, out.stderr
    assert actions(out.json) == {"Orders": [("replace", ["Name"]), ("retain", [])]}
    assert streams_with_prefix(aws, stack) == [f"{stack}-a", f"{stack}-b"]
    assert stream_tags(aws, f"{stack}-a") == {}
    assert stream_tags(aws, f"{stack}-b") == {"riffle/stack": stack, "riffle/logical-id": "Orders"}
    again = riffle(http, "apply", path, "--stack-name", stack)
    assert again.returncode == 0 and again.json["Changed"] == 0, again.stdout + again.stderr

    out = riffle(http, "delete", path, "--stack-name", stack)
    assert out.returncode == 0, out.stderr
    assert streams_with_prefix(aws, stack) == [f"{stack}-a"]
    aws["kinesis"].delete_stream(StreamName=f"{stack}-a")

    # DeletionPolicy: Retain, then the resource leaves the template: kept,
    # without the stack's tags (the policy was recorded on it).
    kept = f"""\
Resources:
  Keep:
    Type: AWS::Kinesis::Stream
    DeletionPolicy: Retain
    Properties: {{Name: {stack}-kept}}
  Other:
    Type: AWS::Kinesis::Stream
    Properties: {{Name: {stack}-other}}
"""
    path = write(tmp_path, "kept.yaml", kept)
    assert riffle(http, "apply", path, "--stack-name", stack).returncode == 0
    path.write_text(kept.split("  Keep:")[0] + "  Other:" + kept.split("  Other:")[1])
    out = riffle(http, "apply", path, "--stack-name", stack)
    assert out.returncode == 0, out.stderr
    assert actions(out.json) == {"Other": ("unchanged", []), "Keep": ("retain", [])}
    assert streams_with_prefix(aws, stack) == [f"{stack}-kept", f"{stack}-other"]
    assert stream_tags(aws, f"{stack}-kept") == {}
    assert riffle(http, "delete", path, "--stack-name", stack).returncode == 0
    assert streams_with_prefix(aws, stack) == [f"{stack}-kept"]
    aws["kinesis"].delete_stream(StreamName=f"{stack}-kept")

    # A video stream's key: replaced under the same name, which Retain forbids.
    def camera(key):
        return f"""\
Resources:
  Camera:
    Type: AWS::KinesisVideo::Stream
    UpdateReplacePolicy: Retain
    Properties:
      Name: {stack}-camera
      KmsKeyId: {key}
"""
    path = write(tmp_path, "camera.yaml", camera("alias/aws/kinesisvideo"))
    out = riffle(http, "apply", path, "--stack-name", stack)
    assert out.returncode == 0, out.stderr
    again = riffle(http, "apply", path, "--stack-name", stack)
    assert again.returncode == 0 and again.json["Changed"] == 0, again.stdout + again.stderr
    arn = aws["kinesisvideo"].describe_stream(StreamName=f"{stack}-camera")["StreamInfo"]["StreamARN"]
    path.write_text(camera("alias/test"))
    # Refused by diff and apply alike, before anything changes.
    for command in ("diff", "apply"):
        out = riffle(http, command, path, "--stack-name", stack)
        assert out.returncode == 1, out.stdout
        assert "its UpdateReplacePolicy: Retain forbids" in out.stderr, out.stderr
    info = aws["kinesisvideo"].describe_stream(StreamName=f"{stack}-camera")["StreamInfo"]
    assert info["StreamARN"] == arn
    assert riffle(http, "delete", path, "--stack-name", stack).returncode == 0
    not_found(aws["kinesisvideo"].describe_stream, StreamName=f"{stack}-camera")
