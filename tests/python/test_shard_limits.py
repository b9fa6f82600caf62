"""AWS's per-shard throughput limits (`riffle server --shard-limits aws`)
through boto3: a burst of PutRecords past a shard's 1 MiB a second gets
per-record ProvisionedThroughputExceededException entries in AWS's words
(records for other shards still land), PutRecord raises it while the shard is
in debt, quick GetRecords calls past 5 a second raise it, and GET /metrics
counts both per stream (WriteProvisionedThroughputExceeded in records,
ReadProvisionedThroughputExceeded in calls)."""

import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from conftest import start_server, stop_server

ACCOUNT = "000000000000"
# ExplicitHashKeys in the first and the second half of the key space: shards 0
# and 1 of a two-shard stream.
SHARD_0, SHARD_1 = "0", str(2**127)


@pytest.fixture(scope="module")
def limited():
    proc, http, data = start_server("--shard-limits", "aws")
    client = boto3.client(
        "kinesis",
        endpoint_url=f"http://{http}",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        # One attempt: botocore retries throttling errors, which would count twice.
        config=Config(retries={"total_max_attempts": 1}),
    )
    yield client, http
    stop_server(proc, data)


def new_stream(client, shards):
    name = f"limits-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    return name


def scrape(http):
    """{(sample name, stream): value} of GET /metrics."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, s.labels.get("stream")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_puts_past_a_shards_write_rate_are_refused_per_record(limited):
    client, http = limited
    name = new_stream(client, 2)
    refusal = f"Rate exceeded for shard shardId-000000000000 in stream {name} under account {ACCOUNT}."
    # 1.5 MiB into shard 0 at once: an idle shard takes it, then owes 1.5 s
    # of writes (it takes more once it owes less than a second).
    big = [{"Data": bytes([i]) * (512 << 10), "PartitionKey": "k", "ExplicitHashKey": SHARD_0}
           for i in range(3)]
    out = client.put_records(StreamName=name, Records=big)
    assert out["FailedRecordCount"] == 0
    # The burst goes on: shard 0's records are refused, each with AWS's code
    # and message; shard 1's land.
    mixed = [{"Data": b"to-0", "PartitionKey": "k", "ExplicitHashKey": SHARD_0},
             {"Data": b"to-1", "PartitionKey": "k", "ExplicitHashKey": SHARD_1},
             {"Data": b"to-0-again", "PartitionKey": "k", "ExplicitHashKey": SHARD_0}]
    out = client.put_records(StreamName=name, Records=mixed)
    assert out["FailedRecordCount"] == 2
    refused = [out["Records"][0], out["Records"][2]]
    for r in refused:
        assert r == {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": refusal}
    assert out["Records"][1]["ShardId"] == "shardId-000000000001"
    assert "SequenceNumber" in out["Records"][1]
    # PutRecord raises it while the shard is in debt.
    with pytest.raises(ClientError) as e:
        client.put_record(StreamName=name, Data=b"one", PartitionKey="k", ExplicitHashKey=SHARD_0)
    assert e.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert e.value.response["Error"]["Message"] == refusal
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Nothing refused was stored.
    it = client.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = client.get_records(ShardIterator=it)["Records"]
    assert [r["Data"] for r in got] == [r["Data"] for r in big]
    # Counted in records, per stream.
    m = scrape(http)
    assert m[("riffle_kinesis_write_provisioned_throughput_exceeded_total", name)] == 3
    assert m[("riffle_kinesis_read_provisioned_throughput_exceeded_total", name)] == 0


def test_get_records_past_five_calls_a_second_is_refused(limited):
    client, http = limited
    name = new_stream(client, 1)
    it = client.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    # An idle shard takes five calls at once; quick calls after those (the
    # 6th, or one soon after) are refused.
    for _ in range(5):
        client.get_records(ShardIterator=it)
    refused = None
    for _ in range(10):
        try:
            client.get_records(ShardIterator=it)
        except ClientError as e:
            refused = e
            break
    assert refused is not None, "no GetRecords call was refused"
    err = refused.response["Error"]
    assert err["Code"] == "ProvisionedThroughputExceededException"
    assert err["Message"] == f"Rate exceeded for Shard - {ACCOUNT}/{name}/shardId-000000000000"
    m = scrape(http)
    assert m[("riffle_kinesis_read_provisioned_throughput_exceeded_total", name)] == 1
    assert m[("riffle_kinesis_write_provisioned_throughput_exceeded_total", name)] == 0
