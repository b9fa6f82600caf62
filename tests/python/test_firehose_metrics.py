"""Firehose's CloudWatch metrics at GET /metrics, read with Prometheus's own
Python parser: Direct PUT puts and their deliveries counted exactly
(IncomingRecords/Bytes, PutRecord(Batch).*, DeliveryToS3.*), a Kinesis
stream source's reads (DataReadFromKinesisStream.*), a failing destination's
attempts and growing DataFreshness, and a deleted delivery stream's series
gone."""

import os
import time
import urllib.error
import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, start_server, stop_server
from test_firehose import ROLE, client, s3_config, wait_for_lines


@pytest.fixture(scope="module")
def fh_server():
    proc, http, data = start_server()
    yield http, os.path.join(data, "d")
    stop_server(proc, data)


def scrape(http):
    """Every sample of GET /metrics: {(name, delivery_stream): value}."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if "le" in s.labels:
                continue
            out[(s.name, s.labels.get("delivery_stream"))] = s.value
    return out


def wait_metric(http, name, stream, want, timeout=30):
    """Polls the metrics (no event reaches a test from outside) until
    `name` of `stream` satisfies `want`; returns the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(http)
        v = m.get((name, stream))
        if v is not None and want(v):
            return m
        if time.monotonic() > deadline:
            pytest.fail(f"{name}{{delivery_stream={stream}}} is {v}")
        time.sleep(0.1)


def test_direct_put_and_delivery_are_counted(fh_server):
    http, data_dir = fh_server
    fh = client(http)
    name, bucket = "m-" + uuid.uuid4().hex[:8], "m-" + uuid.uuid4().hex[:8]
    fh.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
        bucket, BufferingHints={"SizeInMBs": 1, "IntervalInSeconds": 1}))
    one = b"single record\n"
    batch = [f"record {i:03}\n".encode() for i in range(50)]
    fh.put_record(DeliveryStreamName=name, Record={"Data": one})
    fh.put_record_batch(DeliveryStreamName=name, Records=[{"Data": d} for d in batch])
    expected = [one.decode().strip()] + [b.decode().strip() for b in batch]
    wait_for_lines(data_dir, bucket, expected)
    total = len(one) + sum(map(len, batch))
    m = wait_metric(http, "riffle_firehose_delivery_to_s3_records_total", name, lambda v: v == 51)
    s = lambda metric: m[(f"riffle_firehose_{metric}", name)]  # noqa: E731
    assert s("incoming_records_total") == 51
    assert s("incoming_bytes_total") == total
    assert s("incoming_put_requests_total") == 2
    assert s("put_record_requests_total") == 1
    assert s("put_record_bytes_total") == len(one)
    assert s("put_record_batch_requests_total") == 1
    assert s("put_record_batch_records_total") == 50
    assert s("put_record_batch_bytes_total") == sum(map(len, batch))
    assert s("put_record_batch_latency_seconds_count") == 1
    assert s("put_record_latency_seconds_count") == 1
    assert s("delivery_to_s3_bytes_total") == total
    assert s("delivery_to_s3_object_count_total") >= 1
    assert s("delivery_to_s3_success_total") == s("delivery_to_s3_attempts_total") >= 1
    # Everything is delivered: nothing waits (once the checkpoint moved on,
    # just after the object is stored).
    wait_metric(http, "riffle_firehose_delivery_to_s3_data_freshness_seconds", name, lambda v: v == 0)
    # A stream source's metrics are not a Direct PUT stream's.
    assert ("riffle_firehose_data_read_from_kinesis_stream_records_total", name) not in m

    # The same through CloudWatch's API (namespace AWS/Firehose), as boto3 reads it.
    import datetime
    cw = boto3.client("cloudwatch", endpoint_url=f"http://{http}", region_name="us-east-1",
                      aws_access_key_id="AKID", aws_secret_access_key="secret",
                      config=Config(retries={"max_attempts": 1}))
    now = datetime.datetime.now(datetime.timezone.utc)
    dims = [{"Name": "DeliveryStreamName", "Value": name}]

    def summed(metric, statistic="Sum"):
        out = cw.get_metric_statistics(
            Namespace="AWS/Firehose", MetricName=metric, Dimensions=dims,
            StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=2),
            Period=600, Statistics=[statistic])
        return sum(p[statistic] for p in out["Datapoints"])
    assert summed("IncomingRecords") == 51
    assert summed("IncomingBytes") == total
    assert summed("IncomingPutRequests") == 2
    assert summed("PutRecordBatch.Records") == 50
    assert summed("DeliveryToS3.Records") == 51
    assert summed("DeliveryToS3.Success") == summed("DeliveryToS3.Success", "SampleCount") >= 1
    assert summed("PutRecord.Latency", "SampleCount") == 1
    listed = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/Firehose", Dimensions=dims)["Metrics"]}
    assert {"IncomingRecords", "DeliveryToS3.Bytes", "DeliveryToS3.DataFreshness",
            "PutRecordBatch.Latency"} <= listed, listed


def test_stream_source_reads_are_counted(fh_server):
    http, data_dir = fh_server
    fh = client(http)
    kinesis = boto3.client("kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
                           aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                           config=Config(retries={"max_attempts": 1}))
    stream = "msrc-" + uuid.uuid4().hex[:8]
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    name, bucket = "mks-" + uuid.uuid4().hex[:8], "mks-" + uuid.uuid4().hex[:8]
    fh.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": arn, "RoleARN": ROLE},
        ExtendedS3DestinationConfiguration=s3_config(
            bucket, BufferingHints={"SizeInMBs": 1, "IntervalInSeconds": 1}))
    records = [f"from the stream {i}\n".encode() for i in range(20)]
    kinesis.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": "k"} for d in records])
    wait_for_lines(data_dir, bucket, [r.decode().strip() for r in records])
    m = wait_metric(http, "riffle_firehose_delivery_to_s3_records_total", name, lambda v: v == 20)
    assert m[("riffle_firehose_data_read_from_kinesis_stream_records_total", name)] == 20
    assert m[("riffle_firehose_data_read_from_kinesis_stream_bytes_total", name)] == sum(map(len, records))
    assert ("riffle_firehose_kinesis_millis_behind_latest", name) in m
    assert ("riffle_firehose_incoming_records_total", name) not in m


def test_failing_destination_attempts_freshness_and_deletion(fh_server):
    http, _ = fh_server
    fh = client(http)
    name = "mfail-" + uuid.uuid4().hex[:8]
    # Nothing listens there: every request fails and is retried.
    url = f"https://127.0.0.1:{free_port()}/"
    fh.create_delivery_stream(DeliveryStreamName=name, HttpEndpointDestinationConfiguration={
        "EndpointConfiguration": {"Url": url, "Name": "down"},
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
        "RetryOptions": {"DurationInSeconds": 3600},
        "S3Configuration": s3_config("mfail-backup")})
    fh.put_record(DeliveryStreamName=name, Record={"Data": b"waits\n"})
    m = wait_metric(http, "riffle_firehose_delivery_to_http_endpoint_attempts_total", name,
                    lambda v: v >= 2)
    assert m[("riffle_firehose_delivery_to_http_endpoint_success_total", name)] == 0
    assert m[("riffle_firehose_delivery_to_http_endpoint_records_total", name)] == 0
    # The record waits: its age grows.
    first = m[("riffle_firehose_delivery_to_http_endpoint_data_freshness_seconds", name)]
    assert first > 0
    m = wait_metric(http, "riffle_firehose_delivery_to_http_endpoint_data_freshness_seconds", name,
                    lambda v: v > first)
    fh.delete_delivery_stream(DeliveryStreamName=name)
    deadline = time.monotonic() + 30
    while any(stream == name for (_, stream) in scrape(http)):
        assert time.monotonic() < deadline, "a deleted delivery stream's series stay"
        time.sleep(0.1)


def test_only_get_metrics_is_served(fh_server):
    http, _ = fh_server
    req = urllib.request.Request(f"http://{http}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{http}/metrics/firehose", timeout=10)
    assert e.value.code == 404
