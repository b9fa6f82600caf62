"""SubscribeToShard through boto3: an AWS event stream (botocore checks every
message's CRCs and needs `initial-response` first), records pushed as they
commit, ContinuationSequenceNumber to resume from, ChildShards at the end of a
resharded shard, AWS's errors, the subscription ending after its time, and the
same stream over CBOR and HTTP/2."""

import struct
import threading
import time
import zlib

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from conftest import start_server, stop_server


def consumer(kinesis, stream, shards=1, name="efo"):
    kinesis.create_stream(StreamName=stream, ShardCount=shards)
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    c = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=name)["Consumer"]
    return c["ConsumerARN"]


def events(response):
    """Yields the SubscribeToShardEvent payloads of a subscription."""
    for event in response["EventStream"]:
        yield event["SubscribeToShardEvent"]


def test_records_are_pushed_as_they_commit(kinesis):
    arn = consumer(kinesis, "sub-push")
    before = [kinesis.put_record(StreamName="sub-push", Data=f"b{i}".encode(), PartitionKey="k")
              for i in range(3)]
    sub = kinesis.subscribe_to_shard(
        ConsumerARN=arn, ShardId="shardId-000000000000",
        StartingPosition={"Type": "TRIM_HORIZON"})
    it = events(sub)
    first = next(it)
    assert [r["Data"] for r in first["Records"]] == [b"b0", b"b1", b"b2"]
    assert [r["SequenceNumber"] for r in first["Records"]] == [p["SequenceNumber"] for p in before]
    assert first["ContinuationSequenceNumber"] == before[-1]["SequenceNumber"]
    assert first["MillisBehindLatest"] == 0
    assert "ApproximateArrivalTimestamp" in first["Records"][0]

    # A record put while subscribed arrives in a later event, without a poll.
    put = threading.Thread(target=lambda: kinesis.put_record(
        StreamName="sub-push", Data=b"live", PartitionKey="k"))
    put.start()
    got = []
    for event in it:
        got += [r["Data"] for r in event["Records"]]
        if got:
            break
    put.join()
    assert got == [b"live"]
    sub["EventStream"].close()

    # Like AWS, the same consumer cannot subscribe to the shard again within 5 s.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kinesis.subscribe_to_shard(ConsumerARN=arn, ShardId="shardId-000000000000",
                                   StartingPosition={"Type": "LATEST"})
    assert e.value.response["Error"]["Code"] == "ResourceInUseException"
    # Resuming AFTER the continuation number reads only what came after it
    # (another consumer, so as not to wait).
    stream_arn = arn.split("/consumer/")[0]
    other = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="efo2")["Consumer"]
    resume = kinesis.subscribe_to_shard(
        ConsumerARN=other["ConsumerARN"], ShardId="shardId-000000000000",
        StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER",
                          "SequenceNumber": first["ContinuationSequenceNumber"]})
    assert [r["Data"] for r in next(events(resume))["Records"]] == [b"live"]
    resume["EventStream"].close()


def test_subscription_errors_are_aws_exceptions(kinesis):
    arn = consumer(kinesis, "sub-errors")

    def code(**kw):
        args = dict(ConsumerARN=arn, ShardId="shardId-000000000000",
                    StartingPosition={"Type": "LATEST"})
        args.update(kw)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            kinesis.subscribe_to_shard(**args)
        return e.value.response["Error"]["Code"]

    assert code(ShardId="shardId-000000000009") == "ResourceNotFoundException"
    assert code(ConsumerARN=arn.replace("consumer/efo", "consumer/nope")) == "ResourceNotFoundException"
    # The ARN of an earlier registration (another creation time) is not this one.
    assert code(ConsumerARN=arn.rsplit(":", 1)[0] + ":1") == "ResourceNotFoundException"
    assert code(StartingPosition={"Type": "AT_SEQUENCE_NUMBER"}) == "InvalidArgumentException"
    assert code(StartingPosition={"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "12"}) \
        == "InvalidArgumentException"
    assert code(StartingPosition={"Type": "SOMEWHERE"}) == "ValidationException"
    # A number of this shard index but from a shard opened at another time
    # (another incarnation of the stream): refused, as GetShardIterator does.
    seq = int(kinesis.put_record(StreamName="sub-errors", Data=b"x", PartitionKey="k")["SequenceNumber"])
    elsewhere = str(seq + (5 << 148))  # created_s is the 36 bits from bit 148
    for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        assert code(StartingPosition={"Type": kind, "SequenceNumber": elsewhere}) \
            == "InvalidArgumentException"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            kinesis.get_shard_iterator(StreamName="sub-errors", ShardId="shardId-000000000000",
                                       ShardIteratorType=kind, StartingSequenceNumber=elsewhere)
        assert "did not come from this stream" in e.value.response["Error"]["Message"]
    # The number itself still works.
    sub = kinesis.subscribe_to_shard(
        ConsumerARN=arn, ShardId="shardId-000000000000",
        StartingPosition={"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": str(seq)})
    assert [r["Data"] for r in next(events(sub))["Records"]] == [b"x"]
    sub["EventStream"].close()


def test_a_closed_shard_ends_with_its_children(kinesis):
    arn = consumer(kinesis, "sub-split")
    kinesis.put_record(StreamName="sub-split", Data=b"old", PartitionKey="k")
    kinesis.split_shard(StreamName="sub-split", ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2 ** 127))
    sub = kinesis.subscribe_to_shard(
        ConsumerARN=arn, ShardId="shardId-000000000000",
        StartingPosition={"Type": "TRIM_HORIZON"})
    got = list(events(sub))  # the stream ends by itself at the shard's end
    assert [r["Data"] for e in got for r in e["Records"]] == [b"old"]
    last = got[-1]
    assert sorted(c["ShardId"] for c in last["ChildShards"]) == \
        ["shardId-000000000001", "shardId-000000000002"]
    assert all(c["ParentShards"] == ["shardId-000000000000"] for c in last["ChildShards"])
    assert last.get("ContinuationSequenceNumber") is None


def test_deleting_the_stream_ends_the_subscription_with_an_exception(kinesis):
    arn = consumer(kinesis, "sub-delete")
    sub = kinesis.subscribe_to_shard(
        ConsumerARN=arn, ShardId="shardId-000000000000",
        StartingPosition={"Type": "LATEST"})
    kinesis.delete_stream(StreamName="sub-delete")
    with pytest.raises(botocore.exceptions.EventStreamError) as e:
        for _ in events(sub):
            pass
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_subscription_ends_after_its_time():
    proc, http, data = start_server("--subscription-ms", "300")
    try:
        kinesis = boto3.client(
            "kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
            aws_access_key_id="a", aws_secret_access_key="b",
            config=Config(retries={"max_attempts": 1}))
        arn = consumer(kinesis, "short")
        start = time.monotonic()
        sub = kinesis.subscribe_to_shard(
            ConsumerARN=arn, ShardId="shardId-000000000000",
            StartingPosition={"Type": "LATEST"})
        got = list(events(sub))
        elapsed = time.monotonic() - start
        assert 0.25 <= elapsed < 5, elapsed
        assert got and all(e["Records"] == [] for e in got)
        # Nothing read yet: the continuation is the shard's starting number
        # (before every record), so resuming AFTER it, or AT it, starts at the
        # first record.
        continuation = got[-1]["ContinuationSequenceNumber"]
        put = kinesis.put_record(StreamName="short", Data=b"first", PartitionKey="k")
        stream_arn = arn.split("/consumer/")[0]
        other = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="again")["Consumer"]
        again = kinesis.subscribe_to_shard(
            ConsumerARN=other["ConsumerARN"], ShardId="shardId-000000000000",
            StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation})
        first = next(events(again))["Records"]
        assert [(r["Data"], r["SequenceNumber"]) for r in first] == [(b"first", put["SequenceNumber"])]
        again["EventStream"].close()
        start = kinesis.describe_stream(StreamName="short")["StreamDescription"]["Shards"][0]
        assert continuation == start["SequenceNumberRange"]["StartingSequenceNumber"]
        it = kinesis.get_shard_iterator(StreamName="short", ShardId="shardId-000000000000",
                                        ShardIteratorType="AT_SEQUENCE_NUMBER",
                                        StartingSequenceNumber=continuation)["ShardIterator"]
        assert [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]] == [b"first"]
    finally:
        stop_server(proc, data)


def decode_messages(body):
    """Splits an event stream into (headers, payload) pairs, checking both CRCs."""
    out = []
    while body:
        total, headers_len, prelude_crc = struct.unpack(">III", body[:12])
        assert prelude_crc == zlib.crc32(body[:8])
        assert struct.unpack(">I", body[total - 4:total])[0] == zlib.crc32(body[:total - 4])
        headers, at = {}, 12
        while at < 12 + headers_len:
            n = body[at]
            name = body[at + 1:at + 1 + n].decode()
            at += 1 + n
            assert body[at] == 7
            (vlen,) = struct.unpack(">H", body[at + 1:at + 3])
            headers[name] = body[at + 3:at + 3 + vlen].decode()
            at += 3 + vlen
        out.append((headers, body[12 + headers_len:total - 4]))
        body = body[total:]
    return out


def test_cbor_event_stream_over_http2():
    """The Java SDK subscribes over HTTP/2 with CBOR: events in CBOR, Data a
    byte string, timestamps tag 1. curl speaks h2c with prior knowledge."""
    import subprocess

    import cbor2

    proc, http, data = start_server("--subscription-ms", "300")
    try:
        kinesis = boto3.client(
            "kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
            aws_access_key_id="a", aws_secret_access_key="b")
        arn = consumer(kinesis, "h2")
        kinesis.put_record(StreamName="h2", Data=b"\x00bin\xff", PartitionKey="k")
        body = cbor2.dumps({"ConsumerARN": arn, "ShardId": "shardId-000000000000",
                            "StartingPosition": {"Type": "TRIM_HORIZON"}})
        out = subprocess.run(
            ["curl", "-s", "--http2-prior-knowledge", "-X", "POST", f"http://{http}/",
             "-H", "X-Amz-Target: Kinesis_20131202.SubscribeToShard",
             "-H", "Content-Type: application/x-amz-cbor-1.1", "--data-binary", "@-",
             "-D", "/dev/stderr"],
            input=body, capture_output=True, timeout=30)
        assert out.returncode == 0, out
        assert b"HTTP/2 200" in out.stderr
        assert b"application/vnd.amazon.eventstream" in out.stderr
        messages = decode_messages(out.stdout)
        assert messages[0][0][":event-type"] == "initial-response"
        assert all(h[":content-type"] == "application/x-amz-cbor-1.1" for h, _ in messages)
        first = cbor2.loads(messages[1][1])
        assert messages[1][0][":event-type"] == "SubscribeToShardEvent"
        assert first["Records"][0]["Data"] == b"\x00bin\xff"
        assert first["Records"][0]["ApproximateArrivalTimestamp"].year >= 2026
    finally:
        stop_server(proc, data)
