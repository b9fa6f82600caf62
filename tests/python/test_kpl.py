"""KPL aggregated records between implementations, through the real binary:
records aggregated by `aws-kinesis-agg` (AWS's library, PyPI) and put with boto3
are read back as their user records by Riffle's Rust client (`riffle get`, and
`riffle consume`, whose consumer group worker reads with the `Consumer`);
records aggregated by Riffle's Rust `Producer` (`riffle put --aggregate`) are
de-aggregated by `aws-kinesis-agg` after a boto3 GetRecords."""

import base64
import json
import signal
import subprocess
import threading

import boto3
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from botocore.config import Config

from conftest import BINARY, start_server_native, stop_server


@pytest.fixture(scope="module")
def riffle():
    proc, native, http, data = start_server_native()
    client = boto3.client(
        "kinesis",
        endpoint_url=f"http://{http}",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )
    yield native, client
    stop_server(proc, data)


def cli(native, *args, stdin=None):
    out = subprocess.run(
        [BINARY, "--server", native, *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def create(kinesis, name, shards=1):
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})


def get_json(native, stream, *extra):
    out = cli(native, "--json", "get", stream, "--shard", "0", *extra)
    return [json.loads(line) for line in out.splitlines()]


def test_records_aggregated_by_aws_kinesis_agg_come_back_as_user_records(riffle):
    native, kinesis = riffle
    create(kinesis, "agg-in")
    expected = []  # (partition key, data) of every user record, in put order
    puts = 0

    def put(agg_record):
        nonlocal puts
        pk, ehk, data = agg_record.get_contents()
        args = {"StreamName": "agg-in", "Data": data, "PartitionKey": pk}
        if ehk:
            args["ExplicitHashKey"] = ehk
        kinesis.put_record(**args)
        puts += 1

    # Small aggregates (4 KiB) so that several are put; some user records with
    # an explicit hash key, some not; unicode keys and binary data.
    aggregator = RecordAggregator(max_size=4096)
    for i in range(300):
        key = f"key-{i % 7}-ü"
        data = bytes([i % 256]) * (i % 50) + f"user-{i}".encode()
        ehk = str(i * 1_000_003) if i % 5 == 0 else None
        full = aggregator.add_user_record(key, data, ehk)
        if full is not None:
            put(full)
        expected.append((key, data))
    put(aggregator.clear_and_get())
    # A plain record after them is delivered as it is.
    kinesis.put_record(StreamName="agg-in", Data=b"not aggregated", PartitionKey="plain")
    expected.append(("plain", b"not aggregated"))
    assert puts >= 3

    users = get_json(native, "agg-in")
    got = [(u["partition_key"], base64.b64decode(u["data"])) for u in users]
    assert got == expected
    # Sub-sequence numbers count 0, 1, ... within each aggregated record; the
    # plain record has none.
    by_seq = {}
    for u in users[:-1]:
        by_seq.setdefault(u["sequence_number"], []).append(u["sub_sequence_number"])
    assert len(by_seq) == puts
    assert all(subs == list(range(len(subs))) for subs in by_seq.values())
    assert "sub_sequence_number" not in users[-1]
    # --raw shows the records as stored: the aggregates and the plain one.
    stored = get_json(native, "agg-in", "--raw")
    assert len(stored) == puts + 1
    assert base64.b64decode(stored[0]["data"])[:4] == b"\xf3\x89\x9a\xc2"
    # --limit counts user records.
    assert len(get_json(native, "agg-in", "--limit", "5")) == 5

    # A consumer group worker (the Rust Consumer) hands out the user records
    # too, one JSON line each on stdout.
    worker = subprocess.Popen(
        [BINARY, "--server", native, "consume", "agg-in", "--group", "kpl",
         "--initial", "trim-horizon", "--failover-ms", "3000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Never hang on a worker that hands out too little: killed after 30 s.
    guard = threading.Timer(30, worker.kill)
    guard.start()
    try:
        lines = []
        for line in worker.stdout:
            lines.append(json.loads(line))
            if len(lines) == len(expected):
                break
    finally:
        guard.cancel()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, worker.stderr.read()
    consumed = [(u["partition_key"], base64.b64decode(u["data"])) for u in lines]
    assert consumed == expected
    assert [u.get("sub_sequence_number") for u in lines] == \
        [u.get("sub_sequence_number") for u in users]


def test_records_aggregated_by_the_rust_producer_are_read_by_aws_kinesis_agg(riffle):
    native, kinesis = riffle
    create(kinesis, "agg-out")
    lines = [f"line {i} " + "x" * (i % 100) for i in range(2000)]
    out = cli(native, "--json", "put", "agg-out", "--partition-key", "pk", "--aggregate",
              stdin="\n".join(lines) + "\n")
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == len(lines)

    it = kinesis.get_shard_iterator(
        StreamName="agg-out", ShardId="shardId-000000000000",
        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    stored = []
    while True:
        page = kinesis.get_records(ShardIterator=it, Limit=10000)
        stored.extend(page["Records"])
        if not page["Records"] or page["MillisBehindLatest"] == 0:
            break
        it = page["NextShardIterator"]
    # Aggregated: far fewer Kinesis records than lines, each under the KPL's
    # default 51,200 bytes.
    assert 1 < len(stored) < 100
    assert all(len(r["Data"]) <= 51200 for r in stored)

    users = list(iter_deaggregate_records(stored, data_format="Boto3"))
    assert [base64.b64decode(u["kinesis"]["data"]).decode() for u in users] == lines
    assert all(u["kinesis"]["partitionKey"] == "pk" for u in users)
    # The producer's results name each user record's place (which stored
    # record, which user record in it) as the library reads it back. The
    # native protocol writes sequence numbers in its own 39-digit form and the
    # HTTP API in AWS's, so records are compared by their rank in the shard.
    def places(seqs_and_subs):
        ranks = {}
        return [(ranks.setdefault(seq, len(ranks)), sub) for seq, sub in seqs_and_subs]

    read_back = places((u["kinesis"]["sequenceNumber"], u["kinesis"]["subSequenceNumber"])
                       for u in users)
    reported = places((r["sequence_number"], r["sub_sequence_number"]) for r in results)
    assert read_back == reported
    assert len({rank for rank, _ in reported}) == len(stored)


def test_a_lone_record_put_with_aggregate_is_stored_plain(riffle):
    native, kinesis = riffle
    create(kinesis, "agg-one")
    out = json.loads(cli(native, "--json", "put", "agg-one", "--partition-key", "k",
                         "--aggregate", "only one"))
    assert "sub_sequence_number" not in out
    stored = get_json(native, "agg-one", "--raw")
    assert [base64.b64decode(r["data"]) for r in stored] == [b"only one"]
