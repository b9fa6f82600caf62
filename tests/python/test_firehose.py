"""Firehose through boto3 and the AWS CLI: delivery streams created, described,
listed, updated, tagged, encrypted and deleted with AWS's answers and errors;
Direct PUT records delivered as objects to the embedded store
(<data-dir>/s3/<bucket>/<key>) and to a real S3 server (SeaweedFS, verifying
SigV4) in AWS's key format, GZIP or not; a missing bucket reported and then
delivered to once it exists; and kill -9 at random points under load, 20
times: every acknowledged record is in the bucket exactly once."""

import base64
import gzip
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile

import boto3
import botocore.exceptions
import cramjam
import pytest
from botocore.config import Config

from conftest import BINARY, ROOT, WEED_KEY, WEED_SECRET, plain_keyring, start_server, stop_server
from conftest import free_port as conftest_free_port

ROLE = "arn:aws:iam::123456789012:role/firehose"
AWS = os.path.join(os.path.dirname(sys.executable), "aws")


def client(http):
    return boto3.client(
        "firehose", endpoint_url=f"http://{http}", region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def fh_server():
    proc, http, data = start_server("--kms-keyring", plain_keyring())
    yield http, os.path.join(data, "d")
    stop_server(proc, data)


@pytest.fixture(scope="module")
def firehose(fh_server):
    return client(fh_server[0])


def code(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def s3_config(bucket="bkt", **extra):
    return {"RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{bucket}", **extra}


def objects(data_dir, bucket):
    """Every object of a bucket of the embedded store: key -> bytes."""
    root = os.path.join(data_dir, "s3", bucket)
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".riffle-tmp"):
                continue
            path = os.path.join(dirpath, f)
            with open(path, "rb") as fd:
                out[os.path.relpath(path, root)] = fd.read()
    return out


def hadoop_snappy(body):
    """Hadoop's block format: [raw len u32 BE][compressed len u32 BE][raw Snappy]..."""
    out, at = b"", 0
    while at < len(body):
        raw, n = int.from_bytes(body[at:at + 4], "big"), int.from_bytes(body[at + 4:at + 8], "big")
        block = bytes(cramjam.snappy.decompress_raw(body[at + 8:at + 8 + n]))
        assert len(block) == raw
        out, at = out + block, at + 8 + n
    return out


def decoded(key, body, compression="UNCOMPRESSED"):
    """An object's records, read with independent decoders (Python's gzip and
    zipfile, cramjam's Snappy)."""
    if compression == "GZIP" or (compression == "UNCOMPRESSED" and key.endswith(".gz")):
        return gzip.decompress(body)
    if compression == "ZIP":
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            [entry] = z.namelist()
            assert key.split("/")[-1] == entry + ".zip"
            return z.read(entry)
    if compression == "Snappy":
        return bytes(cramjam.snappy.decompress(body))
    if compression == "HADOOP_SNAPPY":
        return hadoop_snappy(body)
    return body


def lines_of(objs, compression="UNCOMPRESSED"):
    out = []
    for key, body in objs.items():
        out += decoded(key, body, compression).decode().splitlines()
    return out


def wait_for_lines(data_dir, bucket, expected, timeout=30, compression="UNCOMPRESSED"):
    """Polls the bucket (there is no event to wait on from outside) until it
    holds every expected line; returns its objects."""
    deadline = time.monotonic() + timeout
    while True:
        objs = objects(data_dir, bucket)
        if set(expected) <= set(lines_of(objs, compression)):
            return objs
        if time.monotonic() > deadline:
            missing = set(expected) - set(lines_of(objs, compression))
            pytest.fail(f"{len(missing)} records not delivered, e.g. {sorted(missing)[:3]}")
        time.sleep(0.1)


def test_lifecycle_and_aws_answers(firehose):
    name = "fh-" + uuid.uuid4().hex[:8]
    arn = firehose.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration=s3_config(Prefix="logs/"),
        Tags=[{"Key": "team", "Value": "data"}])["DeliveryStreamARN"]
    assert arn == f"arn:aws:firehose:us-east-1:000000000000:deliverystream/{name}"
    d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert d["DeliveryStreamStatus"] == "ACTIVE"
    assert d["DeliveryStreamType"] == "DirectPut"
    assert d["VersionId"] == "1"
    assert d["DeliveryStreamEncryptionConfiguration"]["Status"] == "DISABLED"
    [dest] = d["Destinations"]
    assert dest["DestinationId"] == "destinationId-000000000001"
    ext = dest["ExtendedS3DestinationDescription"]
    assert ext["BufferingHints"] == {"SizeInMBs": 5, "IntervalInSeconds": 300}
    assert ext["CompressionFormat"] == "UNCOMPRESSED"
    assert ext["Prefix"] == "logs/"
    assert dest["S3DestinationDescription"]["BucketARN"] == "arn:aws:s3:::bkt"
    assert name in firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"]

    # Errors, as AWS names them.
    assert code(firehose.create_delivery_stream, DeliveryStreamName=name,
                ExtendedS3DestinationConfiguration=s3_config())[0] == "ResourceInUseException"
    assert code(firehose.describe_delivery_stream, DeliveryStreamName="nope")[0] \
        == "ResourceNotFoundException"
    assert code(firehose.put_record, DeliveryStreamName="nope", Record={"Data": b"x"})[0] \
        == "ResourceNotFoundException"
    c, m = code(firehose.create_delivery_stream, DeliveryStreamName="bad name",
                ExtendedS3DestinationConfiguration=s3_config())
    assert c == "ValidationException" and "deliveryStreamName" in m, m
    c, m = code(firehose.put_record, DeliveryStreamName=name, Record={"Data": b"x" * 1_024_001})
    assert c == "ValidationException", m
    c, m = code(firehose.create_delivery_stream, DeliveryStreamName="fh-two",
                ExtendedS3DestinationConfiguration=s3_config(),
                HttpEndpointDestinationConfiguration={
                    "EndpointConfiguration": {"Url": "https://example.com"},
                    "S3Configuration": s3_config()})
    assert c == "InvalidArgumentException" and "Only one" in m, m
    c, m = code(firehose.create_delivery_stream, DeliveryStreamName="fh-prefix",
                ExtendedS3DestinationConfiguration=s3_config(Prefix="!{timestamp:yyyy}/"))
    assert c == "InvalidArgumentException" and "ErrorOutputPrefix" in m, m
    c, m = code(firehose.create_delivery_stream, DeliveryStreamName="fh-ks",
                DeliveryStreamType="KinesisStreamAsSource",
                KinesisStreamSourceConfiguration={
                    "KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/no-such-stream",
                    "RoleARN": ROLE},
                ExtendedS3DestinationConfiguration=s3_config())
    assert c == "InvalidArgumentException" and "does not exist" in m, m
    c, _ = code(firehose.put_record_batch, DeliveryStreamName=name,
                Records=[{"Data": b"x" * 1_000_000}] * 5)
    assert c == "InvalidArgumentException"
    # What the fast path cannot take goes the generic way and gets AWS's words.
    c, m = code(firehose.put_record_batch, DeliveryStreamName=name, Records=[{"Data": b"x"}] * 501)
    assert c == "ValidationException" and "records" in m, m
    c, m = code(firehose.put_record_batch, DeliveryStreamName=name,
                Records=[{"Data": b"x"}, {"Data": b"y" * 1_024_001}])
    assert c == "ValidationException" and "records.2.member.data" in m, m
    c, m = code(firehose.put_record_batch, DeliveryStreamName="bad name", Records=[{"Data": b"x"}])
    assert c == "ValidationException" and "deliveryStreamName" in m, m
    assert code(firehose.put_record_batch, DeliveryStreamName="nope", Records=[{"Data": b"x"}])[0] \
        == "ResourceNotFoundException"
    # Keys the embedded store cannot write (a path segment that is empty, `.`
    # or `..`) are refused when configured, not found out at delivery.
    for bad in ("/abs/", "a//b/", "a/../b/", "./a/"):
        c, m = code(firehose.create_delivery_stream, DeliveryStreamName="fh-key",
                    ExtendedS3DestinationConfiguration=s3_config(Prefix=bad))
        assert c == "InvalidArgumentException" and "cannot store" in m, (bad, m)
    # None of the refused creates left anything behind.
    listed = firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"]
    assert not {"fh-two", "fh-prefix", "fh-ks", "fh-key"} & set(listed)
    # The internal stream holding the records is no Kinesis client's to name.
    kinesis = boto3.client("kinesis", endpoint_url=firehose.meta.endpoint_url,
                           region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                           aws_secret_access_key="secret", config=Config(retries={"max_attempts": 1}))
    internal = f"arn:aws:kinesis:us-east-1:000000000000:stream/firehose:{name}"
    for call, kw in ((kinesis.describe_stream_summary, {"StreamARN": internal}),
                     (kinesis.delete_stream, {"StreamARN": internal}),
                     (kinesis.put_record, {"StreamARN": internal, "Data": b"x", "PartitionKey": "k"})):
        assert code(call, **kw)[0] in ("InvalidArgumentException", "ResourceNotFoundException")
    assert not any(n.startswith("firehose:") for n in kinesis.list_streams()["StreamNames"])

    # UpdateDestination: the version grows; a stale one is refused.
    firehose.update_destination(
        DeliveryStreamName=name, CurrentDeliveryStreamVersionId="1",
        DestinationId="destinationId-000000000001",
        ExtendedS3DestinationUpdate={"CompressionFormat": "GZIP"})
    d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert d["VersionId"] == "2"
    assert d["Destinations"][0]["ExtendedS3DestinationDescription"]["CompressionFormat"] == "GZIP"
    assert "LastUpdateTimestamp" in d
    c, m = code(firehose.update_destination, DeliveryStreamName=name,
                CurrentDeliveryStreamVersionId="1", DestinationId="destinationId-000000000001",
                ExtendedS3DestinationUpdate={"CompressionFormat": "UNCOMPRESSED"})
    assert c == "ConcurrentModificationException", m

    # Encryption.
    firehose.start_delivery_stream_encryption(DeliveryStreamName=name)
    d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert d["DeliveryStreamEncryptionConfiguration"] == {"KeyType": "AWS_OWNED_CMK", "Status": "ENABLED"}
    assert firehose.put_record(DeliveryStreamName=name, Record={"Data": b"e"})["Encrypted"] is True
    assert code(firehose.start_delivery_stream_encryption, DeliveryStreamName=name,
                DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK"})[0] \
        == "InvalidArgumentException"
    firehose.stop_delivery_stream_encryption(DeliveryStreamName=name)
    assert firehose.put_record(DeliveryStreamName=name, Record={"Data": b"e"})["Encrypted"] is False

    # Tags.
    firehose.tag_delivery_stream(DeliveryStreamName=name, Tags=[{"Key": "env", "Value": "dev"}])
    tags = firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)
    assert tags["Tags"] == [{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "data"}]
    assert tags["HasMoreTags"] is False
    page = firehose.list_tags_for_delivery_stream(DeliveryStreamName=name, Limit=1)
    assert page["Tags"] == [{"Key": "env", "Value": "dev"}] and page["HasMoreTags"] is True
    firehose.untag_delivery_stream(DeliveryStreamName=name, TagKeys=["env"])
    assert firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)["Tags"] \
        == [{"Key": "team", "Value": "data"}]
    c, _ = code(firehose.tag_delivery_stream, DeliveryStreamName=name,
                Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert c == "LimitExceededException"

    firehose.delete_delivery_stream(DeliveryStreamName=name)
    assert code(firehose.describe_delivery_stream, DeliveryStreamName=name)[0] \
        == "ResourceNotFoundException"
    assert name not in firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"]


def test_direct_put_delivers_objects_in_aws_format(fh_server, firehose):
    http, data_dir = fh_server
    name = "fh-" + uuid.uuid4().hex[:8]
    bucket = "deliver-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration=s3_config(
            bucket, Prefix="app/", BufferingHints={"SizeInMBs": 1, "IntervalInSeconds": 1}))
    expected = [f"{name} record {i}" for i in range(1200)]
    put = firehose.put_record(DeliveryStreamName=name, Record={"Data": (expected[0] + "\n").encode()})
    assert put["RecordId"] and put["Encrypted"] is False
    for start in range(1, 1200, 500):
        batch = [{"Data": (line + "\n").encode()} for line in expected[start:start + 500]]
        out = firehose.put_record_batch(DeliveryStreamName=name, Records=batch)
        assert out["FailedPutCount"] == 0
        assert len(out["RequestResponses"]) == len(batch)
        assert all("RecordId" in r for r in out["RequestResponses"])
    objs = wait_for_lines(data_dir, bucket, expected)
    got = lines_of(objs)
    assert sorted(got) == sorted(expected), "every record once"
    # AWS's key: prefix, UTC yyyy/MM/dd/HH/, name-version-date-time-uuid.
    key_re = re.compile(
        r"^app/\d{4}/\d{2}/\d{2}/\d{2}/" + re.escape(name)
        + r"-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    for key in objs:
        assert key_re.match(key), key

    # GZIP after an update: .gz objects under version 2.
    firehose.update_destination(
        DeliveryStreamName=name, CurrentDeliveryStreamVersionId="1",
        DestinationId="destinationId-000000000001",
        ExtendedS3DestinationUpdate={"CompressionFormat": "GZIP"})
    more = [f"{name} gz {i}" for i in range(50)]
    firehose.put_record_batch(DeliveryStreamName=name,
                              Records=[{"Data": (m + "\n").encode()} for m in more])
    objs = wait_for_lines(data_dir, bucket, more)
    gz = [k for k in objs if k.endswith(".gz")]
    assert gz and all(f"{name}-2-" in k for k in gz)
    assert sorted(lines_of({k: objs[k] for k in gz})) == sorted(more)
    firehose.delete_delivery_stream(DeliveryStreamName=name)


@pytest.mark.parametrize("compression,extension", [
    ("GZIP", ".gz"), ("ZIP", ".zip"), ("Snappy", ".snappy"), ("HADOOP_SNAPPY", ".snappy")])
def test_every_compression_format(fh_server, firehose, compression, extension):
    http, data_dir = fh_server
    name = "fh-" + uuid.uuid4().hex[:8]
    bucket = "cmp-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
            bucket, CompressionFormat=compression,
            BufferingHints={"SizeInMBs": 1, "IntervalInSeconds": 1}))
    # Over 256 KiB, so HADOOP_SNAPPY objects hold several blocks.
    lines = [f"{compression} {i} " + "x" * 100 for i in range(4000)]
    for start in range(0, len(lines), 500):
        firehose.put_record_batch(DeliveryStreamName=name, Records=[
            {"Data": (x + "\n").encode()} for x in lines[start:start + 500]])
    objs = wait_for_lines(data_dir, bucket, lines, compression=compression)
    assert sorted(lines_of(objs, compression)) == sorted(lines)
    assert all(k.endswith(extension) for k in objs), list(objs)
    firehose.delete_delivery_stream(DeliveryStreamName=name)


def test_kinesis_stream_as_source(fh_server, firehose):
    """A delivery stream reading a Kinesis stream: records from its creation
    on (not before), KPL aggregated records split into their user records
    (aws-kinesis-agg writes them), resharding followed parents first, puts
    and encryption refused as AWS refuses them."""
    from aws_kinesis_agg.aggregator import RecordAggregator

    http, data_dir = fh_server
    kinesis = boto3.client("kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
                           aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                           config=Config(retries={"max_attempts": 1}))
    stream = "src-" + uuid.uuid4().hex[:8]
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    kinesis.put_record(StreamName=stream, Data=b"before\n", PartitionKey="k")
    name, bucket = "ks-" + uuid.uuid4().hex[:8], "ks-" + uuid.uuid4().hex[:8]
    source = {"KinesisStreamARN": arn, "RoleARN": ROLE}
    c, m = code(firehose.create_delivery_stream, DeliveryStreamName=name,
                DeliveryStreamType="KinesisStreamAsSource",
                KinesisStreamSourceConfiguration={**source, "KinesisStreamARN": arn + "-nope"},
                ExtendedS3DestinationConfiguration=s3_config(bucket))
    assert c == "InvalidArgumentException" and "does not exist" in m, m
    firehose.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration=source,
        ExtendedS3DestinationConfiguration=s3_config(
            bucket, BufferingHints={"SizeInMBs": 1, "IntervalInSeconds": 1}))
    d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    assert d["DeliveryStreamType"] == "KinesisStreamAsSource"
    src = d["Source"]["KinesisStreamSourceDescription"]
    assert src["KinesisStreamARN"] == arn and src["RoleARN"] == ROLE
    assert "DeliveryStartTimestamp" in src
    c, m = code(firehose.put_record, DeliveryStreamName=name, Record={"Data": b"x"})
    assert c == "InvalidArgumentException"
    assert m == "This operation is not permitted on KinesisStreamAsSource delivery stream type."
    assert code(firehose.start_delivery_stream_encryption, DeliveryStreamName=name)[0] \
        == "InvalidArgumentException"

    plain = [f"plain {i}" for i in range(200)]
    kinesis.put_records(StreamName=stream, Records=[
        {"Data": (x + "\n").encode(), "PartitionKey": f"p{i}"} for i, x in enumerate(plain)])
    users = [f"user {i}" for i in range(300)]
    agg = RecordAggregator()
    aggregated = 0
    for i, u in enumerate(users):
        full = agg.add_user_record(f"u{i}", (u + "\n").encode())
        if full:
            pk, ehk, data = full.get_contents()
            kinesis.put_record(StreamName=stream, Data=data, PartitionKey=pk)
            aggregated += 1
    pk, ehk, data = agg.clear_and_get().get_contents()
    kinesis.put_record(StreamName=stream, Data=data, PartitionKey=pk)
    aggregated += 1
    wait_for_lines(data_dir, bucket, plain + users)

    # Resharding: shard 0 splits; records go on to its children, delivered
    # after everything of the parent.
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2 ** 126))
    after = [f"after split {i}" for i in range(200)]
    kinesis.put_records(StreamName=stream, Records=[
        {"Data": (x + "\n").encode(), "PartitionKey": f"s{i}"} for i, x in enumerate(after)])
    objs = wait_for_lines(data_dir, bucket, plain + users + after)
    got = lines_of(objs)
    assert "before" not in got, "records from before the delivery stream are not delivered"
    assert sorted(got) == sorted(plain + users + after), "every record once"
    firehose.delete_delivery_stream(DeliveryStreamName=name)
    # The source stream is the user's: deleting the delivery stream leaves it.
    assert kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    kinesis.delete_stream(StreamName=stream)


class Function:
    """An HTTP function speaking the Lambda transformation contract: data
    upper-cased; records holding "drop" Dropped, "fail" ProcessingFailed;
    mode "garbage" answers non-JSON, "error" answers 500. Counts invocations."""

    def __init__(self, mode="ok"):
        import http.server

        self.mode, self.invocations, self.events = mode, 0, []
        fn = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fn.invocations += 1
                fn.events.append(event)
                if fn.mode == "garbage":
                    body, status = b"this is not json", 200
                elif fn.mode == "error":
                    body, status = b"boom", 500
                else:
                    out = []
                    for r in event["records"]:
                        data = base64.b64decode(r["data"])
                        if b"drop" in data:
                            out.append({"recordId": r["recordId"], "result": "Dropped"})
                        elif b"fail" in data:
                            out.append({"recordId": r["recordId"], "result": "ProcessingFailed"})
                        else:
                            out.append({"recordId": r["recordId"], "result": "Ok",
                                        "data": base64.b64encode(data.upper()).decode()})
                    body, status = json.dumps({"records": out}).encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/2015-03-31/functions/function/invocations"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_lambda_transformation():
    """Records go through an HTTP function with the Lambda contract (named in
    the server's [functions] table, or by URL): Ok records are delivered
    transformed with a delimiter appended, Dropped ones are not, failed ones
    (ProcessingFailed, a garbage answer, a function that keeps failing) land
    under the error prefix as AWS's JSON lines."""
    upper, garbage = Function(), Function("garbage")
    down_port = conftest_free_port()
    config = os.path.join(ROOT, "target", "tmp", f"functions-{uuid.uuid4().hex[:8]}.toml")
    with open(config, "w") as f:
        f.write(f'[functions]\nupper = "{upper.url}"\n')
    proc, http, data = start_server("--config", config)
    try:
        fh = client(http)
        data_dir = os.path.join(data, "d")

        def processing(arn, retries="0"):
            return {"Enabled": True, "Processors": [
                {"Type": "Lambda", "Parameters": [
                    {"ParameterName": "LambdaArn", "ParameterValue": arn},
                    {"ParameterName": "NumberOfRetries", "ParameterValue": retries}]},
                {"Type": "AppendDelimiterToRecord", "Parameters": [
                    {"ParameterName": "Delimiter", "ParameterValue": "\\n"}]}]}

        hints = {"SizeInMBs": 1, "IntervalInSeconds": 1}
        cases = {
            "upper": processing("arn:aws:lambda:us-east-1:123456789012:function:upper"),
            "garbage": processing(garbage.url),
            "down": processing(f"http://127.0.0.1:{down_port}/f", retries="1"),
        }
        for name, p in cases.items():
            fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
                name, BufferingHints=hints, ProcessingConfiguration=p,
                ErrorOutputPrefix="errors/!{firehose:error-output-type}/"))
        # A function name the server does not map is refused when configured.
        c, m = code(fh.create_delivery_stream, DeliveryStreamName="unmapped",
                    ExtendedS3DestinationConfiguration=s3_config(
                        "unmapped", ProcessingConfiguration=processing("nobody")))
        assert c == "InvalidArgumentException" and "[functions]" in m, m

        records = ["alpha", "please drop", "please fail", "omega"]
        for name in cases:
            fh.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r.encode()} for r in records])

        def wait_objects(bucket, count):
            deadline = time.monotonic() + 30
            while len(objs := objects(data_dir, bucket)) < count:
                assert time.monotonic() < deadline, objs
                time.sleep(0.1)
            return objs

        objs = wait_objects("upper", 2)
        main = [v for k, v in objs.items() if not k.startswith("errors/")]
        errors = {k: v for k, v in objs.items() if k.startswith("errors/processing-failed/")}
        assert main == [b"ALPHA\nOMEGA\n"], objs
        [line] = [json.loads(x) for v in errors.values() for x in v.decode().splitlines()]
        assert base64.b64decode(line["rawData"]) == b"please fail"
        assert line["errorCode"] == "Lambda.ProcessingFailed"
        assert line["lambdaArn"] == "arn:aws:lambda:us-east-1:123456789012:function:upper"
        assert line["attemptsMade"] == 1 and "arrivalTimestamp" in line
        event = upper.events[0]
        assert event["deliveryStreamArn"].endswith(":deliverystream/upper")
        assert [base64.b64decode(r["data"]) for r in event["records"]] == [r.encode() for r in records]
        assert all("recordId" in r and "approximateArrivalTimestamp" in r for r in event["records"])

        for name, code_, attempts in (("garbage", "Lambda.JsonProcessingException", 1),
                                       ("down", "Lambda.FunctionError", 2)):
            objs = wait_objects(name, 1)
            assert all(k.startswith("errors/processing-failed/") for k in objs), objs
            lines = [json.loads(x) for v in objs.values() for x in v.decode().splitlines()]
            assert sorted(base64.b64decode(x["rawData"]).decode() for x in lines) == sorted(records)
            assert {x["errorCode"] for x in lines} == {code_}
            assert {x["attemptsMade"] for x in lines} == {attempts}
        assert garbage.invocations == 1
    finally:
        stop_server(proc, data)
        upper.close()
        garbage.close()


class Endpoint:
    """An HTTPS endpoint checking AWS's HTTP endpoint delivery spec (v1.0):
    the headers, the gzip body, the request id in body and header; answers
    with the request id. `fail_first` requests are answered 500 first; mode
    "always500" and "413" never succeed."""

    def __init__(self, cert, key, mode="ok", fail_first=0):
        import http.server
        import ssl

        self.mode, self.fail_first = mode, fail_first
        self.requests, self.records = [], []
        ep = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                body = json.loads(raw)
                rid = self.headers["X-Amz-Firehose-Request-Id"]
                assert body["requestId"] == rid
                ep.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if ep.mode == "413":
                    status = 413
                elif ep.mode == "always500" or ep.fail_first > 0:
                    ep.fail_first -= 1
                    status = 500
                else:
                    status = 200
                    if rid not in {r for r, _ in ep.records}:
                        ep.records += [(rid, base64.b64decode(r["data"])) for r in body["records"]]
                answer = json.dumps({"requestId": rid, "timestamp": int(time.time() * 1000),
                                     **({"errorMessage": "try again"} if status != 200 else {})}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/ingest"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_http_endpoint_destination():
    """Delivery to HTTPS endpoints by AWS's spec: headers (protocol version,
    request id, source ARN, access key, common attributes), gzip bodies,
    retries with the same request id, records backed up under
    http-endpoint-failed/ when retries run out (not for a 413), AllData
    backups, and a description without the access key."""
    certs = os.path.join(ROOT, "target", "tmp", "certs-" + uuid.uuid4().hex[:8])
    subprocess.run([BINARY, "cert", "--out", certs], check=True, capture_output=True)
    cert, key = os.path.join(certs, "cert.pem"), os.path.join(certs, "key.pem")
    ok, flaky = Endpoint(cert, key), Endpoint(cert, key, fail_first=2)
    down, too_large = Endpoint(cert, key, "always500"), Endpoint(cert, key, "413")
    proc, http, data = start_server("--ca-file", cert)
    try:
        fh = client(http)
        data_dir = os.path.join(data, "d")

        def create(name, endpoint, retry_s=60, **extra):
            fh.create_delivery_stream(DeliveryStreamName=name, HttpEndpointDestinationConfiguration={
                "EndpointConfiguration": {"Url": endpoint.url, "Name": "test", "AccessKey": "s3cret"},
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
                "RequestConfiguration": {"ContentEncoding": "GZIP", "CommonAttributes": [
                    {"AttributeName": "env", "AttributeValue": "test"}]},
                "RetryOptions": {"DurationInSeconds": retry_s},
                "S3Configuration": s3_config(f"backup-{name}"), **extra})

        create("ok", ok, S3BackupMode="AllData")
        create("flaky", flaky)
        create("down", down, retry_s=2)
        create("big", too_large, retry_s=2)
        d = fh.describe_delivery_stream(DeliveryStreamName="ok")["DeliveryStreamDescription"]
        desc = d["Destinations"][0]["HttpEndpointDestinationDescription"]
        assert desc["EndpointConfiguration"] == {"Url": ok.url, "Name": "test"}
        assert desc["S3BackupMode"] == "AllData"
        assert desc["S3DestinationDescription"]["BucketARN"] == "arn:aws:s3:::backup-ok"
        # AWS's model allows https endpoints only.
        assert code(fh.create_delivery_stream, DeliveryStreamName="plain",
                    HttpEndpointDestinationConfiguration={
                        "EndpointConfiguration": {"Url": "http://127.0.0.1:1/x"},
                        "S3Configuration": s3_config("b-plain")})[0] == "ValidationException"

        records = [f"event {i}" for i in range(300)]
        for name in ("ok", "flaky", "down", "big"):
            fh.put_record_batch(DeliveryStreamName=name,
                                Records=[{"Data": (r + "\n").encode()} for r in records])

        def wait(check, what):
            deadline = time.monotonic() + 60
            while not check():
                assert time.monotonic() < deadline, what
                time.sleep(0.1)

        for ep in (ok, flaky):
            wait(lambda: sorted(r.decode() for _, r in ep.records) == sorted(r + "\n" for r in records),
                 "delivered")
        headers, body = ok.requests[0]
        # (Header names are case-insensitive; hyper sends them in lower case.)
        assert headers["x-amz-firehose-protocol-version"] == "1.0"
        assert headers["x-amz-firehose-access-key"] == "s3cret"
        assert json.loads(headers["x-amz-firehose-common-attributes"]) == {"commonAttributes": {"env": "test"}}
        assert headers["x-amz-firehose-source-arn"].endswith(":deliverystream/ok")
        assert headers["content-type"] == "application/json"
        assert headers["content-encoding"] == "gzip"
        # Retried with the same request id.
        ids = [b["requestId"] for _, b in flaky.requests]
        assert len(ids) >= 3 and len(set(ids[:3])) == 1, ids
        # AllData: the records are in the backup bucket too.
        wait(lambda: sorted(lines_of(objects(data_dir, "backup-ok"))) == sorted(records), "backed up")
        # Retries ran out: every record under http-endpoint-failed/, AWS's lines.
        def failed_lines():
            objs = objects(data_dir, "backup-down")
            return [json.loads(x) for k, v in objs.items() if "http-endpoint-failed/" in k
                    for x in v.decode().splitlines()]
        wait(lambda: len(failed_lines()) == len(records), "backed up after retries")
        lines = failed_lines()
        assert sorted(base64.b64decode(x["rawData"]).decode() for x in lines) == sorted(r + "\n" for r in records)
        assert {x["errorCode"] for x in lines} == {"HttpEndpoint.DestinationException"}
        assert all(x["attemptsMade"] >= 2 and "try again" in x["errorMessage"] for x in lines)
        assert all(x["subsequenceNumber"] == 0 for x in lines)
        assert len({x["dataId"] for x in lines}) == len(lines)
        d = fh.describe_delivery_stream(DeliveryStreamName="down")["DeliveryStreamDescription"]
        assert "FailureDescription" in d or len(failed_lines()) == len(records)
        # 413: permanent, and not backed up (AWS's rule).
        wait(lambda: len(too_large.requests) >= 1, "413 requested")
        assert not objects(data_dir, "backup-big")
    finally:
        stop_server(proc, data)
        for ep in (ok, flaky, down, too_large):
            ep.close()


def aws(http, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    out = subprocess.run([AWS, "--endpoint-url", f"http://{http}", "--output", "json",
                          "firehose", *args], capture_output=True, text=True, env=env)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr


def test_aws_cli_first_session(fh_server):
    http, data_dir = fh_server
    name = "cli-" + uuid.uuid4().hex[:8]
    config = json.dumps(s3_config("cli-bucket", BufferingHints={"SizeInMBs": 1, "IntervalInSeconds": 1}))
    rc, out, err = aws(http, "create-delivery-stream", "--delivery-stream-name", name,
                       "--extended-s3-destination-configuration", config)
    assert rc == 0, err
    assert out["DeliveryStreamARN"].endswith(f":deliverystream/{name}")
    # AWS CLI v1 takes a blob as its text (v2 wants --cli-binary-format raw-in-base64-out).
    rc, out, err = aws(http, "put-record", "--delivery-stream-name", name,
                       "--record", json.dumps({"Data": "hello from the cli\n"}))
    assert rc == 0, err
    assert out["RecordId"]
    rc, out, err = aws(http, "describe-delivery-stream", "--delivery-stream-name", name)
    assert rc == 0 and out["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE", err
    rc, out, _ = aws(http, "list-delivery-streams")
    assert name in out["DeliveryStreamNames"]
    wait_for_lines(data_dir, "cli-bucket", ["hello from the cli"])
    rc, _, err = aws(http, "delete-delivery-stream", "--delivery-stream-name", name)
    assert rc == 0, err
    rc, _, err = aws(http, "describe-delivery-stream", "--delivery-stream-name", name)
    assert rc != 0 and "ResourceNotFoundException" in err


def test_riffle_firehose_cli(fh_server):
    """`riffle firehose create|list|describe|delete|put` through the HTTP API."""
    http, data_dir = fh_server

    def riffle(*args, stdin=None):
        out = subprocess.run([BINARY, "firehose", "--http", http, *args], input=stdin,
                             capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if not k.startswith("RIFFLE_")})
        return out.returncode, out.stdout, out.stderr

    name, bucket = "cli2-" + uuid.uuid4().hex[:8], "cli2-" + uuid.uuid4().hex[:8]
    rc, out, err = riffle("create", name, "--bucket", bucket, "--compression", "GZIP",
                          "--buffer-mb", "1", "--buffer-seconds", "1")
    assert rc == 0 and name in out, err
    rc, out, _ = riffle("list")
    assert name in out.split()
    rc, out, _ = riffle("--json", "describe", name)
    d = json.loads(out)
    assert d["DeliveryStreamStatus"] == "ACTIVE"
    assert d["Destinations"][0]["ExtendedS3DestinationDescription"]["CompressionFormat"] == "GZIP"
    rc, out, err = riffle("put", name, stdin="one\ntwo\nthree\n")
    assert rc == 0 and "put 3 records" in out, err
    rc, _, err = riffle("put", name, "four\n")
    assert rc == 0, err
    wait_for_lines(data_dir, bucket, ["one", "two", "three", "four"], compression="GZIP")
    rc, out, _ = riffle("delete", name)
    assert rc == 0
    rc, _, err = riffle("describe", name)
    assert rc == 1 and "ResourceNotFoundException" in err, err
    rc, _, err = riffle("create", "x", "--bucket", "b", "--compression", "LZ4")
    assert rc == 1 and "ValidationException" in err, err
    out = subprocess.run([BINARY, "firehose", "--http", f"127.0.0.1:{conftest_free_port()}", "list"],
                         capture_output=True, text=True)
    assert out.returncode == 3 and "cannot reach" in out.stderr


def spawn(data_dir):
    """`riffle server` on an existing data directory; (process, host:port)."""
    proc = subprocess.Popen(
        [BINARY, "server", "--data-dir", data_dir, "--listen", "127.0.0.1:0",
         "--http", "127.0.0.1:0", "--no-pin"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("RIFFLE_")})
    for line in proc.stdout:
        if line.startswith("riffle http listening on "):
            return proc, line.split()[-1]
    proc.kill()
    pytest.fail("the server did not start")


def test_kill_9_under_direct_put_loses_and_duplicates_nothing():
    rounds = 20
    data_dir = os.path.join(ROOT, "target", "tmp", "fh-crash-" + uuid.uuid4().hex[:8])
    os.makedirs(data_dir)
    proc, http = spawn(data_dir)
    client(http).create_delivery_stream(
        DeliveryStreamName="crash",
        ExtendedS3DestinationConfiguration=s3_config(
            "crash", BufferingHints={"SizeInMBs": 1, "IntervalInSeconds": 1}))
    acked = set()
    rng = random.Random(11)
    for r in range(rounds):
        fh = client(http)
        stop = threading.Event()

        def produce():
            n = 0
            while not stop.is_set():
                batch = [f"r{r}-{n}-{i}" for i in range(20)]
                n += 1
                try:
                    out = fh.put_record_batch(DeliveryStreamName="crash",
                                              Records=[{"Data": (b + "\n").encode()} for b in batch])
                except Exception:
                    return
                for b, resp in zip(batch, out["RequestResponses"]):
                    if "RecordId" in resp:
                        acked.add(b)

        writer = threading.Thread(target=produce)
        writer.start()
        # The kill point: somewhere in the first 1.5 s of load, with
        # deliveries every second.
        time.sleep(rng.uniform(0.05, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        writer.join()
        proc, http = spawn(data_dir)
    try:
        objs = wait_for_lines(data_dir, "crash", acked, timeout=60)
        got = lines_of(objs)
        dupes = {line for line in got if got.count(line) > 1} if len(got) != len(set(got)) else set()
        assert not dupes, f"{len(dupes)} records delivered twice, e.g. {sorted(dupes)[:3]}"
        assert acked <= set(got)
        assert len(acked) > 1000, len(acked)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_delivery_to_an_s3_server(seaweedfs):
    """Riffle started with --s3-endpoint delivers to SeaweedFS (path-style,
    SigV4-signed: SeaweedFS refuses a bad signature); a bucket that does not
    exist yet is a reported failure, retried, and nothing is lost once the
    bucket is made."""
    s3 = boto3.client("s3", endpoint_url=seaweedfs, region_name="us-east-1",
                      aws_access_key_id=WEED_KEY, aws_secret_access_key=WEED_SECRET)
    present, later = "fh-" + uuid.uuid4().hex[:8], "fh-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=present)
    proc, http, data = start_server("--s3-endpoint", seaweedfs, "--s3-access-key", WEED_KEY,
                                    "--s3-secret-key", WEED_SECRET)
    try:
        fh = client(http)
        hints = {"SizeInMBs": 1, "IntervalInSeconds": 1}
        fh.create_delivery_stream(DeliveryStreamName="to-weed", ExtendedS3DestinationConfiguration=s3_config(
            present, Prefix="p/!{timestamp:yyyy}/r=!{firehose:random-string}/",
            ErrorOutputPrefix="e/!{firehose:error-output-type}/", BufferingHints=hints,
            CompressionFormat="GZIP"))
        fh.create_delivery_stream(DeliveryStreamName="to-later",
                                  ExtendedS3DestinationConfiguration=s3_config(later, BufferingHints=hints))
        lines = [f"weed {i}" for i in range(300)]
        fh.put_record_batch(DeliveryStreamName="to-weed",
                            Records=[{"Data": (x + "\n").encode()} for x in lines])
        fh.put_record(DeliveryStreamName="to-later", Record={"Data": b"waited\n"})

        def bucket_lines(bucket):
            out = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for o in page.get("Contents", []):
                    out[o["Key"]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            return out

        deadline = time.monotonic() + 30
        while sorted(lines_of(objs := bucket_lines(present))) != sorted(lines):
            assert time.monotonic() < deadline, f"delivered: {len(lines_of(objs))} of {len(lines)}"
            time.sleep(0.2)
        for key in objs:
            assert re.match(r"^p/\d{4}/r=[a-z0-9]{11}/to-weed-1-.*\.gz$", key), key

        # The missing bucket: reported (S3's own words), nothing delivered elsewhere.
        deadline = time.monotonic() + 30
        while True:
            d = fh.describe_delivery_stream(DeliveryStreamName="to-later")["DeliveryStreamDescription"]
            if "FailureDescription" in d:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert d["FailureDescription"]["Type"] == "UNKNOWN_ERROR"
        assert "NoSuchBucket" in d["FailureDescription"]["Details"]
        # Once the bucket exists, the record arrives and the failure clears.
        s3.create_bucket(Bucket=later)
        deadline = time.monotonic() + 60
        while lines_of(bucket_lines(later)) != ["waited"]:
            assert time.monotonic() < deadline, "not delivered after the bucket was made"
            time.sleep(0.2)
        d = fh.describe_delivery_stream(DeliveryStreamName="to-later")["DeliveryStreamDescription"]
        assert "FailureDescription" not in d
    finally:
        stop_server(proc, data)
