"""Firehose's processors and S3 options through boto3 against the real
binary and its embedded store: dynamic partitioning by a jq query
(MetadataExtraction) and by a function's partition keys, JSON and KPL
de-aggregation, CloudWatch Logs decompression and message extraction,
source-record backup (S3BackupMode Enabled), CustomTimeZone, the
refusals of configurations AWS refuses, and multipart uploads of large
objects to a real S3 server (SeaweedFS)."""

import base64
import gzip
import http.server
import json
import os
import threading
import time
import uuid

import aws_kinesis_agg.aggregator
import pytest

from conftest import start_server, stop_server
from test_firehose import client, code, objects, s3_config

HINTS = {"SizeInMBs": 1, "IntervalInSeconds": 1}
ERRORS = "errors/!{firehose:error-output-type}/"


@pytest.fixture(scope="module")
def fh_http():
    proc, http_addr, data = start_server()
    yield http_addr, os.path.join(data, "d")
    stop_server(proc, data)


@pytest.fixture(scope="module")
def fh(fh_http):
    return client(fh_http[0]), fh_http[1]


def processors(*ps):
    return {"Enabled": True, "Processors": [
        {"Type": t, "Parameters": [{"ParameterName": k, "ParameterValue": v} for k, v in params.items()]}
        for t, params in ps]}


NEWLINE = ("AppendDelimiterToRecord", {"Delimiter": "\\n"})


def query(q):
    return ("MetadataExtraction", {"MetadataExtractionQuery": q, "JsonParsingEngine": "JQ-1.6"})


def wait_until(data_dir, bucket, done, timeout=30):
    """Polls the bucket (there is no event to wait on from outside) until
    `done(objects)` holds; returns the objects."""
    deadline = time.monotonic() + timeout
    while True:
        objs = objects(data_dir, bucket)
        if done(objs):
            return objs
        assert time.monotonic() < deadline, sorted(objs)
        time.sleep(0.1)


def error_lines(objs, kind):
    return [json.loads(line) for k, v in objs.items() if k.startswith(f"errors/{kind}/")
            for line in v.decode().splitlines()]


def by_dir(objs):
    """Objects' records by the key's directory (the evaluated prefix)."""
    out = {}
    for k, v in objs.items():
        out.setdefault(k.rsplit("/", 1)[0], []).extend(v.decode().splitlines())
    return out


def test_dynamic_partitioning_by_query(fh):
    """AWS's example: `{customer_id: .customer_id}` puts each customer's
    records under its own prefix; records the query cannot key (not JSON, no
    such field) go to the error prefix with their data."""
    firehose, data_dir = fh
    name = "dp-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
            name, BufferingHints=HINTS,
            Prefix="customer_id=!{partitionKeyFromQuery:customer_id}/!{timestamp:yyyy}/",
            ErrorOutputPrefix=ERRORS,
            DynamicPartitioningConfiguration={"Enabled": True, "RetryOptions": {"DurationInSeconds": 300}},
            ProcessingConfiguration=processors(query("{customer_id: .customer_id}"), NEWLINE)))
    records = [{"customer_id": "a", "n": 1}, {"customer_id": "b", "n": 2}, {"customer_id": "a", "n": 3},
               {"customer_id": 7, "n": 4}]
    bad = [b"not json", json.dumps({"n": 5}).encode()]
    firehose.put_record_batch(DeliveryStreamName=name, Records=[
        {"Data": json.dumps(r).encode()} for r in records] + [{"Data": b} for b in bad])
    objs = wait_until(data_dir, name, lambda o: len(o) >= 4)
    year = time.strftime("%Y", time.gmtime())
    dirs = {k: [json.loads(x) for x in v] for k, v in by_dir(objs).items() if not k.startswith("errors")}
    assert dirs == {
        f"customer_id=a/{year}": [records[0], records[2]],
        f"customer_id=b/{year}": [records[1]],
        f"customer_id=7/{year}": [records[3]],
    }
    lines = error_lines(objs, "partitioning-failed")
    assert sorted(base64.b64decode(x["rawData"]) for x in lines) == sorted(bad)
    assert {x["errorCode"] for x in lines} == {"DynamicPartitioning.MetadataExtractionFailed"}
    assert all("errorMessage" in x and "arrivalTimestamp" in x for x in lines)
    d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    ext = d["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert ext["DynamicPartitioningConfiguration"]["Enabled"] is True
    # Partitioning cannot be turned off.
    c, m = code(firehose.update_destination, DeliveryStreamName=name,
                CurrentDeliveryStreamVersionId=d["VersionId"], DestinationId="destinationId-000000000001",
                ExtendedS3DestinationUpdate={"DynamicPartitioningConfiguration": {"Enabled": False}})
    assert c == "InvalidArgumentException" and "Dynamic partitioning" in m, m


class KeyingFunction:
    """A Lambda-contract function that keeps each record and gives it the
    partition key `kind` (the record's first word)."""

    def __init__(self):
        fn = self
        self.events = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fn.events.append(event)
                out = [{"recordId": r["recordId"], "result": "Ok", "data": r["data"],
                        "metadata": {"partitionKeys": {
                            "kind": base64.b64decode(r["data"]).decode().split()[0]}}}
                       for r in event["records"]]
                body = json.dumps({"records": out}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/2015-03-31/functions/function/invocations"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_partition_keys_from_the_function_and_source_backup(fh):
    """`partitionKeyFromLambda` keys come from the function's
    `metadata.partitionKeys`; with S3BackupMode Enabled the source records
    (before the function and the delimiter) go to the backup bucket under
    its prefix and compression."""
    firehose, data_dir = fh
    fn = KeyingFunction()
    try:
        name = "dpl-" + uuid.uuid4().hex[:8]
        firehose.create_delivery_stream(
            DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
                name, BufferingHints=HINTS, Prefix="kind=!{partitionKeyFromLambda:kind}/",
                ErrorOutputPrefix=ERRORS, DynamicPartitioningConfiguration={"Enabled": True},
                ProcessingConfiguration=processors(("Lambda", {"LambdaArn": fn.url}), NEWLINE),
                S3BackupMode="Enabled",
                S3BackupConfiguration=s3_config(name + "-src", Prefix="source/", CompressionFormat="GZIP")))
        records = ["click a", "view b", "click c"]
        firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r.encode()} for r in records])
        objs = wait_until(data_dir, name, lambda o: len(o) >= 2)
        assert by_dir(objs) == {"kind=click": ["click a", "click c"], "kind=view": ["view b"]}
        backup = wait_until(data_dir, name + "-src", lambda o: len(o) >= 1)
        [(key, body)] = backup.items()
        assert key.startswith("source/") and key.endswith(".gz"), key
        assert gzip.decompress(body) == "".join(records).encode()
        d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        ext = d["Destinations"][0]["ExtendedS3DestinationDescription"]
        assert ext["S3BackupMode"] == "Enabled"
        assert ext["S3BackupDescription"]["BucketARN"] == f"arn:aws:s3:::{name}-src"
        c, m = code(firehose.update_destination, DeliveryStreamName=name,
                    CurrentDeliveryStreamVersionId=d["VersionId"], DestinationId="destinationId-000000000001",
                    ExtendedS3DestinationUpdate={"S3BackupMode": "Disabled"})
        assert c == "InvalidArgumentException" and "S3BackupMode" in m, m
    finally:
        fn.close()


def test_stream_sources_give_the_function_kinesis_record_metadata(fh_http):
    """For a Kinesis stream source the invocation event carries each record's
    `kinesisRecordMetadata` (shard, partition key, sequence number,
    subsequence number: a KPL user record's index) and `sourceKinesisStreamArn`."""
    import boto3
    from botocore.config import Config

    http_addr, data_dir = fh_http
    kinesis = boto3.client("kinesis", endpoint_url=f"http://{http_addr}", region_name="us-east-1",
                           aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                           config=Config(retries={"max_attempts": 1}))
    firehose = client(http_addr)
    stream = "meta-" + uuid.uuid4().hex[:8]
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    fn = KeyingFunction()
    try:
        name = "km-" + uuid.uuid4().hex[:8]
        firehose.create_delivery_stream(
            DeliveryStreamName=name, DeliveryStreamType="KinesisStreamAsSource",
            KinesisStreamSourceConfiguration={"KinesisStreamARN": arn, "RoleARN": "arn:aws:iam::123456789012:role/r"},
            ExtendedS3DestinationConfiguration=s3_config(
                name, BufferingHints=HINTS,
                ProcessingConfiguration=processors(("Lambda", {"LambdaArn": fn.url}), NEWLINE)))
        put = kinesis.put_record(StreamName=stream, Data=b"plain one", PartitionKey="pk-plain")
        agg = aws_kinesis_agg.aggregator.RecordAggregator()
        agg.add_user_record("pk-a", b"user zero")
        agg.add_user_record("pk-b", b"user one")
        pk, _, data = agg.clear_and_get().get_contents()
        aggregated = kinesis.put_record(StreamName=stream, Data=data, PartitionKey=pk)
        wait_until(data_dir, name, lambda o: len(o) >= 1)
        records = [r for e in fn.events for r in e["records"]]
        assert {e["sourceKinesisStreamArn"] for e in fn.events} == {arn}
        meta = [r["kinesisRecordMetadata"] for r in records]
        assert [(m["partitionKey"], m["sequenceNumber"], m["subsequenceNumber"]) for m in meta] == [
            ("pk-plain", put["SequenceNumber"], 0),
            ("pk-a", aggregated["SequenceNumber"], 0),
            ("pk-b", aggregated["SequenceNumber"], 1),
        ]
        assert {m["shardId"] for m in meta} == {put["ShardId"]}
        assert all(m["approximateArrivalTimestamp"] == r["approximateArrivalTimestamp"]
                   for m, r in zip(meta, records))
    finally:
        fn.close()
        kinesis.delete_stream(StreamName=stream)


def test_json_and_kpl_deaggregation(fh):
    """RecordDeAggregation JSON splits `{"a":1}{"a":2}` and JSON lines into
    records before partitioning; KPL aggregated records (made by
    aws-kinesis-agg) are split into their user records first."""
    firehose, data_dir = fh
    name = "agg-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
            name, BufferingHints=HINTS, Prefix="t=!{partitionKeyFromQuery:t}/", ErrorOutputPrefix=ERRORS,
            DynamicPartitioningConfiguration={"Enabled": True},
            ProcessingConfiguration=processors(("RecordDeAggregation", {"SubRecordType": "JSON"}),
                                               query("{t: .t}"), NEWLINE)))
    agg = aws_kinesis_agg.aggregator.RecordAggregator()
    for i in range(3):
        agg.add_user_record("pk", json.dumps({"t": "kpl", "i": i}).encode())
    _, _, kpl_record = agg.clear_and_get().get_contents()
    firehose.put_record_batch(DeliveryStreamName=name, Records=[
        {"Data": b'{"t":"x","i":0}{"t":"y","i":1}'},
        {"Data": b'{"t":"x","i":2}\n{"t":"x","i":3}\n'},
        {"Data": kpl_record},
        {"Data": b'[{"t":"x"}]'},
    ])
    objs = wait_until(data_dir, name, lambda o: len(o) >= 4)
    dirs = {k: [json.loads(x)["i"] for x in v] for k, v in by_dir(objs).items() if not k.startswith("errors")}
    assert dirs == {"t=x": [0, 2, 3], "t=y": [1], "t=kpl": [0, 1, 2]}
    [line] = error_lines(objs, "processing-failed")
    assert line["errorCode"] == "DeAggregation.InvalidJson"
    assert base64.b64decode(line["rawData"]) == b'[{"t":"x"}]'


def test_cloudwatch_logs_payloads(fh):
    """Decompression + CloudWatchLogProcessing with DataMessageExtraction:
    each log event's message is a record; control messages are dropped;
    data that is not gzip fails to the error prefix."""
    firehose, data_dir = fh
    name = "cwl-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
            name, BufferingHints=HINTS, ErrorOutputPrefix=ERRORS, Prefix="logs/",
            ProcessingConfiguration=processors(("Decompression", {"CompressionFormat": "GZIP"}),
                                               ("CloudWatchLogProcessing", {"DataMessageExtraction": "true"}),
                                               NEWLINE)))
    data = {"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "g", "logStream": "s",
            "subscriptionFilters": ["f"], "logEvents": [
                {"id": "1", "timestamp": 1, "message": "GET /index 200"},
                {"id": "2", "timestamp": 2, "message": "GET /missing 404"}]}
    control = {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
               "subscriptionFilters": [], "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE"}]}
    firehose.put_record_batch(DeliveryStreamName=name, Records=[
        {"Data": gzip.compress(json.dumps(data).encode())},
        {"Data": gzip.compress(json.dumps(control).encode())},
        {"Data": b"plain"},
    ])
    objs = wait_until(data_dir, name, lambda o: len(o) >= 2)
    main = [v for k, v in objs.items() if k.startswith("logs/")]
    assert main == [b"GET /index 200\nGET /missing 404\n"]
    [line] = error_lines(objs, "processing-failed")
    assert line["errorCode"] == "Decompression.InvalidData"
    assert base64.b64decode(line["rawData"]) == b"plain"


def test_custom_time_zone_names_objects(fh):
    """CustomTimeZone moves the prefix's and the name's times to the zone's
    wall clock (Asia/Kolkata is UTC+05:30, without daylight saving)."""
    firehose, data_dir = fh
    name = "tz-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
            name, BufferingHints=HINTS, CustomTimeZone="Asia/Kolkata"))
    before = time.time()
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b"hello"})
    objs = wait_until(data_dir, name, lambda o: len(o) >= 1)
    [key] = objs
    # yyyy/MM/dd/HH/NAME-1-yyyy-MM-dd-HH-mm-ss-uuid
    stamp = key.split("/")[-1][len(name) + 3:len(name) + 3 + 19]
    local = time.strptime(stamp, "%Y-%m-%d-%H-%M-%S")
    shifted = time.mktime(local) - time.mktime(time.gmtime(0))
    assert abs(shifted - (before + 5.5 * 3600)) < 30, (key, stamp)
    assert key.startswith(time.strftime("%Y/%m/%d/%H/", local)), key
    c, m = code(firehose.create_delivery_stream, DeliveryStreamName=name + "x",
                ExtendedS3DestinationConfiguration=s3_config(name, CustomTimeZone="Mars/Olympus"))
    assert c == "InvalidArgumentException" and "Mars/Olympus" in m, m


def test_refused_processing_configurations(fh):
    firehose, _ = fh
    name = "bad-" + uuid.uuid4().hex[:8]
    for config, says in [
        (s3_config(name, ProcessingConfiguration=processors(query("{c: .c}"))), "dynamic partitioning"),
        (s3_config(name, ErrorOutputPrefix=ERRORS, Prefix="c=!{partitionKeyFromQuery:c}/",
                   DynamicPartitioningConfiguration={"Enabled": True},
                   ProcessingConfiguration=processors(query("{c: .c"))), "does not parse"),
        (s3_config(name, ProcessingConfiguration=processors(("RecordDeAggregation", {"SubRecordType": "XML"}))),
         "SubRecordType"),
        (s3_config(name, ProcessingConfiguration=processors(
            ("CloudWatchLogProcessing", {"DataMessageExtraction": "true"}))), "Decompression"),
        (s3_config(name, Prefix="c=!{partitionKeyFromQuery:c}/", ErrorOutputPrefix=ERRORS), "dynamic partitioning"),
    ]:
        c, m = code(firehose.create_delivery_stream, DeliveryStreamName=name,
                    ExtendedS3DestinationConfiguration=config)
        assert c == "InvalidArgumentException" and says in m, (says, m)


def test_large_objects_go_up_in_parts(seaweedfs):
    """An object of 16 MiB or more goes to the S3 server as a multipart
    upload (parts in parallel): SeaweedFS holds exactly the records put, in
    one object whose ETag is a multipart one, and no unfinished upload is
    left behind."""
    import boto3
    from conftest import WEED_KEY, WEED_SECRET

    s3 = boto3.client("s3", endpoint_url=seaweedfs, region_name="us-east-1",
                      aws_access_key_id=WEED_KEY, aws_secret_access_key=WEED_SECRET)
    bucket = "mp-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    proc, http_addr, data = start_server("--s3-endpoint", seaweedfs, "--s3-access-key", WEED_KEY,
                                         "--s3-secret-key", WEED_SECRET)
    try:
        fh = client(http_addr)
        fh.create_delivery_stream(DeliveryStreamName="big", ExtendedS3DestinationConfiguration=s3_config(
            bucket, BufferingHints={"SizeInMBs": 17, "IntervalInSeconds": 15}))
        # 40 batches of 500 x 2 KiB: about 40 MiB, about 20 MiB for each of the
        # internal stream's two shards: each gives a 17 MiB object (the size
        # hint, reached within the interval even on a busy machine) and the rest.
        records = []
        for b in range(40):
            batch = [(f"{b:02d}-{i:03d} ".encode() + os.urandom(1020).hex().encode())[:2047] + b"\n"
                     for i in range(500)]
            fh.put_record_batch(DeliveryStreamName="big", Records=[{"Data": r} for r in batch])
            records += batch
        deadline = time.monotonic() + 90
        while True:
            listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
            if sum(o["Size"] for o in listed) >= sum(map(len, records)):
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
        got = b"".join(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed)
        assert sorted(got.splitlines(keepends=True)) == sorted(records)
        big = [o for o in listed if o["Size"] >= 16 << 20]
        assert big, [o["Size"] for o in listed]
        assert all("-" in o["ETag"] for o in big), [o["ETag"] for o in big]
        assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    finally:
        stop_server(proc, data)
