"""Resharding through boto3, as an application written for AWS would use it:
SplitShard, MergeShards, UpdateShardCount (UNIFORM_SCALING), ListShards'
ShardFilter, shard lineage in DescribeStream, GetRecords' ChildShards at the end
of a closed shard, AWS's errors, and a KCL-style walk of the shard tree."""

import datetime
import time

import pytest
from botocore.exceptions import ClientError

from test_boto3 import cbor_call, fresh

MAX = 2**128 - 1


def sid(i):
    return f"shardId-{i:012d}"


def even_starts(n):
    """AWS's even split of the hash-key space: shard i starts at floor(i * 2^128 / n)."""
    return [i * 2**128 // n for i in range(n)]


def ranges(shards):
    return [(int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
            for s in shards]


def even_ranges(n):
    starts = even_starts(n)
    return list(zip(starts, [s - 1 for s in starts[1:]] + [MAX]))


def list_filtered(kinesis, name, **shard_filter):
    return kinesis.list_shards(StreamName=name, ShardFilter=shard_filter)["Shards"]


def ids(shards):
    return [s["ShardId"] for s in shards]


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def iterator(kinesis, name, shard, kind="TRIM_HORIZON"):
    return kinesis.get_shard_iterator(StreamName=name, ShardId=shard,
                                      ShardIteratorType=kind)["ShardIterator"]


def drain_closed(kinesis, it, limit=None):
    """Reads a closed shard to its end: (records, ChildShards). Every response
    before the end has a NextShardIterator and no ChildShards."""
    records = []
    for _ in range(1000):
        out = kinesis.get_records(ShardIterator=it, **({"Limit": limit} if limit else {}))
        records += out["Records"]
        it = out.get("NextShardIterator")
        if it is None:
            assert "ChildShards" in out, out
            return records, out["ChildShards"]
        assert "ChildShards" not in out, out
    pytest.fail("the closed shard never ended")


def drain_open(kinesis, it):
    """Reads an open shard up to its tip: the records."""
    records = []
    for _ in range(1000):
        out = kinesis.get_records(ShardIterator=it)
        assert out.get("NextShardIterator") is not None and "ChildShards" not in out, out
        records += out["Records"]
        it = out["NextShardIterator"]
        if not out["Records"] and out["MillisBehindLatest"] == 0:
            return records
    pytest.fail("the open shard never reached its tip")


def put(kinesis, name, hash_key, data):
    out = kinesis.put_record(StreamName=name, PartitionKey="p", Data=data,
                             ExplicitHashKey=str(hash_key))
    return out["ShardId"], out["SequenceNumber"]


def test_split_shard(kinesis):
    name = fresh(kinesis, shards=1)
    before = [put(kinesis, name, h, f"before-{i}".encode())
              for i, h in enumerate([0, 2**127, MAX, 12345])]
    assert {s for s, _ in before} == {sid(0)}
    assert kinesis.split_shard(StreamName=name, ShardToSplit=sid(0),
                               NewStartingHashKey=str(2**127))["ResponseMetadata"][
        "HTTPStatusCode"] == 200

    shards = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    assert ids(shards) == [sid(0), sid(1), sid(2)]
    parent, low, high = shards
    assert ranges(shards) == [(0, MAX), (0, 2**127 - 1), (2**127, MAX)]
    assert "ParentShardId" not in parent
    # As on AWS, a closed shard's ending number comes after its last record's.
    assert int(parent["SequenceNumberRange"]["EndingSequenceNumber"]) > int(before[-1][1])
    for child in (low, high):
        assert child["ParentShardId"] == sid(0)
        assert "AdjacentParentShardId" not in child
        assert "EndingSequenceNumber" not in child["SequenceNumberRange"]
        assert (int(child["SequenceNumberRange"]["StartingSequenceNumber"])
                > int(parent["SequenceNumberRange"]["EndingSequenceNumber"]))
    assert kinesis.list_shards(StreamName=name)["Shards"] == shards
    assert kinesis.describe_stream_summary(StreamName=name)[
        "StreamDescriptionSummary"]["OpenShardCount"] == 2

    # The parent still serves what was put before the split, then names its children.
    records, children = drain_closed(kinesis, iterator(kinesis, name, sid(0)), limit=3)
    assert [(r["SequenceNumber"], r["Data"]) for r in records] == [
        (seq, f"before-{i}".encode()) for i, (_, seq) in enumerate(before)]
    assert children == [
        {"ShardId": sid(1), "ParentShards": [sid(0)],
         "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**127 - 1)}},
        {"ShardId": sid(2), "ParentShards": [sid(0)],
         "HashKeyRange": {"StartingHashKey": str(2**127), "EndingHashKey": str(MAX)}},
    ]
    # LATEST on the closed parent: nothing more, straight to its children.
    out = kinesis.get_records(ShardIterator=iterator(kinesis, name, sid(0), "LATEST"))
    assert out["Records"] == [] and out.get("NextShardIterator") is None
    assert ids(out["ChildShards"]) == [sid(1), sid(2)]

    # New records go to the child owning their hash key.
    after = {h: put(kinesis, name, h, f"after-{h}".encode())
             for h in [0, 2**127 - 1, 2**127, MAX]}
    assert {h: s for h, (s, _) in after.items()} == {
        0: sid(1), 2**127 - 1: sid(1), 2**127: sid(2), MAX: sid(2)}
    for child, keys in [(sid(1), [0, 2**127 - 1]), (sid(2), [2**127, MAX])]:
        got = drain_open(kinesis, iterator(kinesis, name, child))
        assert [(r["SequenceNumber"], r["Data"]) for r in got] == [
            (after[h][1], f"after-{h}".encode()) for h in keys]
    kinesis.delete_stream(StreamName=name)


def test_split_shard_errors(kinesis):
    name = fresh(kinesis, shards=2)
    # shardId-000000000001 covers [2^127, 2^128 - 1].
    for bad in [2**127, 2**127 + 1, 5, MAX]:
        with pytest.raises(ClientError) as e:
            kinesis.split_shard(StreamName=name, ShardToSplit=sid(1), NewStartingHashKey=str(bad))
        assert error_code(e) == "InvalidArgumentException", bad
    for bad in [0, 1, 2**127 - 1]:
        with pytest.raises(ClientError) as e:
            kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(bad))
        assert error_code(e) == "InvalidArgumentException", bad
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=name, ShardToSplit=sid(9), NewStartingHashKey="1000")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName="py-missing", ShardToSplit=sid(0), NewStartingHashKey="1000")
    assert error_code(e) == "ResourceNotFoundException"
    # The smallest valid split: start + 2.
    kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey="2")
    assert ranges(list_filtered(kinesis, name, Type="AT_LATEST")) == [
        (2**127, MAX), (0, 1), (2, 2**127 - 1)]
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey="1000")
    assert error_code(e) == "ResourceInUseException"
    with pytest.raises(ClientError) as e:
        kinesis.merge_shards(StreamName=name, ShardToMerge=sid(0), AdjacentShardToMerge=sid(1))
    assert error_code(e) == "ResourceInUseException"
    kinesis.delete_stream(StreamName=name)


def test_merge_shards(kinesis):
    name = fresh(kinesis, shards=3)
    starts = even_starts(3)
    seqs = [put(kinesis, name, starts[i], f"r{i}".encode())[1] for i in range(3)]
    kinesis.merge_shards(StreamName=name, ShardToMerge=sid(1), AdjacentShardToMerge=sid(2))
    shards = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    assert ids(shards) == [sid(i) for i in range(4)]
    merged = shards[3]
    assert merged["ParentShardId"] == sid(1) and merged["AdjacentParentShardId"] == sid(2)
    assert ranges([merged]) == [(starts[1], MAX)]
    for parent, seq in [(shards[1], seqs[1]), (shards[2], seqs[2])]:
        assert int(parent["SequenceNumberRange"]["EndingSequenceNumber"]) > int(seq)
    assert "EndingSequenceNumber" not in shards[0]["SequenceNumberRange"]
    assert "EndingSequenceNumber" not in merged["SequenceNumberRange"]
    assert ids(list_filtered(kinesis, name, Type="AT_LATEST")) == [sid(0), sid(3)]
    assert kinesis.describe_stream_summary(StreamName=name)[
        "StreamDescriptionSummary"]["OpenShardCount"] == 2
    # Both parents end in the one merged child.
    for parent, seq, data in [(sid(1), seqs[1], b"r1"), (sid(2), seqs[2], b"r2")]:
        records, children = drain_closed(kinesis, iterator(kinesis, name, parent))
        assert [(r["SequenceNumber"], r["Data"]) for r in records] == [(seq, data)]
        assert len(children) == 1 and children[0]["ShardId"] == sid(3)
        assert sorted(children[0]["ParentShards"]) == [sid(1), sid(2)]
        assert children[0]["HashKeyRange"] == merged["HashKeyRange"]
    assert put(kinesis, name, starts[1], b"m")[0] == sid(3)
    assert put(kinesis, name, MAX, b"m")[0] == sid(3)
    assert put(kinesis, name, starts[1] - 1, b"z")[0] == sid(0)

    # Like AWS, the shard to merge comes first in hash-key order: the pair
    # named the other way round is refused.
    name2 = fresh(kinesis, shards=2)
    with pytest.raises(ClientError) as e:
        kinesis.merge_shards(StreamName=name2, ShardToMerge=sid(1), AdjacentShardToMerge=sid(0))
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert e.value.response["Error"]["Message"] == (
        f"Shards {sid(1)} and {sid(0)} in stream {name2} under account 000000000000 "
        "are not an adjacent pair of shards eligible for merging")
    kinesis.delete_stream(StreamName=name2)
    kinesis.delete_stream(StreamName=name)


def test_merge_shards_errors(kinesis):
    name = fresh(kinesis, shards=3)
    for a, b in [(sid(0), sid(2)), (sid(2), sid(0)), (sid(1), sid(1))]:
        with pytest.raises(ClientError) as e:
            kinesis.merge_shards(StreamName=name, ShardToMerge=a, AdjacentShardToMerge=b)
        assert error_code(e) == "InvalidArgumentException", (a, b)
    with pytest.raises(ClientError) as e:
        kinesis.merge_shards(StreamName=name, ShardToMerge=sid(0), AdjacentShardToMerge=sid(7))
    assert error_code(e) == "ResourceNotFoundException"
    kinesis.merge_shards(StreamName=name, ShardToMerge=sid(0), AdjacentShardToMerge=sid(1))
    with pytest.raises(ClientError) as e:
        kinesis.merge_shards(StreamName=name, ShardToMerge=sid(1), AdjacentShardToMerge=sid(2))
    assert error_code(e) == "ResourceInUseException"
    kinesis.delete_stream(StreamName=name)


def test_update_shard_count(kinesis):
    name = fresh(kinesis, shards=2)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    out = kinesis.update_shard_count(StreamName=name, TargetShardCount=4,
                                     ScalingType="UNIFORM_SCALING")
    out.pop("ResponseMetadata")
    assert out == {"StreamName": name, "StreamARN": arn, "CurrentShardCount": 2,
                   "TargetShardCount": 4}
    assert ranges(sorted(list_filtered(kinesis, name, Type="AT_LATEST"),
                         key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))) == even_ranges(4)
    assert kinesis.describe_stream_summary(StreamName=name)[
        "StreamDescriptionSummary"]["OpenShardCount"] == 4
    # Every open shard takes the records of its range.
    open_shards = list_filtered(kinesis, name, Type="AT_LATEST")
    owner = dict(zip(ids(open_shards), ranges(open_shards)))
    for start, end in even_ranges(4):
        assert owner[put(kinesis, name, start, b"x")[0]] == (start, end)
        assert owner[put(kinesis, name, end, b"x")[0]] == (start, end)

    # Back down to 2 (exactly half), then to 3 and 5: some shards are only steps.
    for current, target in [(4, 2), (2, 3), (3, 5), (5, 3)]:
        out = kinesis.update_shard_count(StreamARN=arn, TargetShardCount=target,
                                         ScalingType="UNIFORM_SCALING")
        assert (out["CurrentShardCount"], out["TargetShardCount"]) == (current, target)
        assert out["StreamName"] == name and out["StreamARN"] == arn
        open_shards = list_filtered(kinesis, name, Type="AT_LATEST")
        assert sorted(ranges(open_shards)) == even_ranges(target), (current, target)
        assert kinesis.describe_stream_summary(StreamName=name)[
            "StreamDescriptionSummary"]["OpenShardCount"] == target
        # Every shard has at most two parents, and new shards take the next ids.
        all_shards = kinesis.list_shards(StreamName=name)["Shards"]
        assert ids(all_shards) == [sid(i) for i in range(len(all_shards))]
        for s in all_shards:
            if "AdjacentParentShardId" in s:
                assert "ParentShardId" in s

    # At most double, at least half.
    for target in [7, 1]:
        with pytest.raises(ClientError) as e:
            kinesis.update_shard_count(StreamName=name, TargetShardCount=target,
                                       ScalingType="UNIFORM_SCALING")
        assert error_code(e) == "LimitExceededException", target
    assert kinesis.describe_stream_summary(StreamName=name)[
        "StreamDescriptionSummary"]["OpenShardCount"] == 3
    with pytest.raises(ClientError) as e:
        kinesis.update_shard_count(StreamName="py-missing", TargetShardCount=2,
                                   ScalingType="UNIFORM_SCALING")
    assert error_code(e) == "ResourceNotFoundException"
    kinesis.delete_stream(StreamName=name)


def test_update_shard_count_limits(kinesis):
    name = fresh(kinesis, shards=2)
    with pytest.raises(ClientError) as e:
        kinesis.update_shard_count(StreamName=name, TargetShardCount=5,
                                   ScalingType="UNIFORM_SCALING")
    assert error_code(e) == "LimitExceededException"
    kinesis.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    with pytest.raises(ClientError) as e:
        kinesis.update_shard_count(StreamName=name, TargetShardCount=1,
                                   ScalingType="UNIFORM_SCALING")
    assert error_code(e) == "LimitExceededException"
    assert len(list_filtered(kinesis, name, Type="AT_LATEST")) == 4
    kinesis.delete_stream(StreamName=name)


def test_shard_filters(kinesis):
    name = fresh(kinesis, shards=2)
    # A young stream: the trim horizon is its creation, where the initial shards were open.
    assert ids(list_filtered(kinesis, name, Type="AT_TRIM_HORIZON")) == [sid(0), sid(1)]
    before = now()
    time.sleep(0.02)
    kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(2**126))
    time.sleep(0.02)
    after = now()
    everything = [sid(i) for i in range(4)]
    assert ids(kinesis.list_shards(StreamName=name)["Shards"]) == everything

    assert ids(list_filtered(kinesis, name, Type="AT_LATEST")) == [sid(1), sid(2), sid(3)]
    assert ids(list_filtered(kinesis, name, Type="AFTER_SHARD_ID", ShardId=sid(0))) == everything[1:]
    assert ids(list_filtered(kinesis, name, Type="AFTER_SHARD_ID", ShardId=sid(2))) == [sid(3)]
    assert ids(list_filtered(kinesis, name, Type="AFTER_SHARD_ID", ShardId=sid(3))) == []
    assert ids(list_filtered(kinesis, name, Type="AT_TRIM_HORIZON")) == [sid(0), sid(1)]
    assert ids(list_filtered(kinesis, name, Type="FROM_TRIM_HORIZON")) == everything
    # At a time before the split: the shards open then; after it: the open ones.
    assert ids(list_filtered(kinesis, name, Type="AT_TIMESTAMP", Timestamp=before)) == [sid(0), sid(1)]
    assert ids(list_filtered(kinesis, name, Type="AT_TIMESTAMP", Timestamp=after)) == everything[1:]
    # From a time: every shard still open at or after it; the split parent closed before `after`.
    assert ids(list_filtered(kinesis, name, Type="FROM_TIMESTAMP", Timestamp=before)) == everything
    assert ids(list_filtered(kinesis, name, Type="FROM_TIMESTAMP", Timestamp=after)) == everything[1:]

    # A second generation: shardId-000000000003 (the upper half of the split) merged
    # with shardId-000000000001.
    time.sleep(0.02)
    kinesis.merge_shards(StreamName=name, ShardToMerge=sid(3), AdjacentShardToMerge=sid(1))
    time.sleep(0.02)
    later = now()
    assert ids(list_filtered(kinesis, name, Type="AT_LATEST")) == [sid(2), sid(4)]
    assert ids(list_filtered(kinesis, name, Type="FROM_TIMESTAMP", Timestamp=after)) == [
        sid(1), sid(2), sid(3), sid(4)]
    assert ids(list_filtered(kinesis, name, Type="FROM_TIMESTAMP", Timestamp=later)) == [sid(2), sid(4)]
    assert ids(list_filtered(kinesis, name, Type="AT_TIMESTAMP", Timestamp=after)) == [
        sid(1), sid(2), sid(3)]
    assert ids(list_filtered(kinesis, name, Type="AT_TIMESTAMP", Timestamp=later)) == [sid(2), sid(4)]
    assert ids(list_filtered(kinesis, name, Type="AT_TRIM_HORIZON")) == [sid(0), sid(1)]
    # Paging a filtered listing.
    page = kinesis.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID",
                                                             "ShardId": sid(0)}, MaxResults=2)
    assert ids(page["Shards"]) == [sid(1), sid(2)]
    kinesis.delete_stream(StreamName=name)


def test_kcl_style_walk_reads_every_record_once(kinesis):
    """Start at TRIM_HORIZON on the shards open at the trim horizon, read each
    shard to its end, and move on to a child once all its parents are done."""
    name = fresh(kinesis, shards=2)
    keys = [0, 2**125, 2**126 + 7, 2**127 - 1, 2**127, 3 * 2**126, MAX - 1, MAX]
    put_log = []  # (hash key, data, shard, sequence number), in put order

    def put_round(tag):
        out = kinesis.put_records(StreamName=name, Records=[
            {"PartitionKey": "p", "ExplicitHashKey": str(h), "Data": f"{tag}/{h}".encode()}
            for h in keys])
        assert out["FailedRecordCount"] == 0
        for h, r in zip(keys, out["Records"]):
            put_log.append((h, f"{tag}/{h}".encode(), r["ShardId"], r["SequenceNumber"]))

    put_round("a")
    kinesis.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(2**126))
    put_round("b")
    # Shard 3 ([2^126, 2^127 - 1]) comes just before shard 1 ([2^127, MAX]):
    # AWS wants them in that order.
    kinesis.merge_shards(StreamName=name, ShardToMerge=sid(3), AdjacentShardToMerge=sid(1))
    put_round("c")
    kinesis.update_shard_count(StreamName=name, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
    put_round("d")
    kinesis.update_shard_count(StreamName=name, TargetShardCount=5, ScalingType="UNIFORM_SCALING")
    put_round("e")

    pending = ids(list_filtered(kinesis, name, Type="AT_TRIM_HORIZON"))
    assert pending == [sid(0), sid(1)]
    parents = {}   # child -> its parents, as ChildShards named them
    done, read = set(), []  # read: (shard, record)
    while pending:
        ready = [s for s in pending if all(p in done for p in parents.get(s, []))]
        assert ready, (pending, parents, done)
        shard = ready[0]
        pending.remove(shard)
        it = iterator(kinesis, name, shard)
        while it is not None:
            out = kinesis.get_records(ShardIterator=it, Limit=5)
            read += [(shard, r) for r in out["Records"]]
            it = out.get("NextShardIterator")
            if it is None:
                for child in out["ChildShards"]:
                    parents[child["ShardId"]] = child["ParentShards"]
                    assert shard in child["ParentShards"]
                    if child["ShardId"] not in pending and child["ShardId"] not in done:
                        pending.append(child["ShardId"])
            elif not out["Records"] and out["MillisBehindLatest"] == 0:
                break  # an open shard, read to its tip
        done.add(shard)

    all_shards = kinesis.list_shards(StreamName=name)["Shards"]
    assert sorted(done) == ids(all_shards)
    got = [(shard, r["SequenceNumber"], r["Data"]) for shard, r in read]
    assert len(got) == len(set(got)) == len(put_log)
    assert sorted(got) == sorted((shard, seq, data) for _, data, shard, seq in put_log)
    # Per hash key, the walk returns records in the order they were put.
    for h in keys:
        assert [r["Data"] for _, r in read if r["Data"].endswith(f"/{h}".encode())] == [
            data for k, data, _, _ in put_log if k == h]
    kinesis.delete_stream(StreamName=name)


def test_raw_cbor_split_shard(server, kinesis):
    name = fresh(kinesis, shards=1)
    seq = put(kinesis, name, 5, b"before")[1]
    status, out = cbor_call(server, "SplitShard", {
        "StreamName": name, "ShardToSplit": sid(0), "NewStartingHashKey": str(2**127)})
    assert (status, out) == (200, None)
    status, out = cbor_call(server, "ListShards", {
        "StreamName": name, "ShardFilter": {"Type": "AT_LATEST"}})
    assert status == 200 and ids(out["Shards"]) == [sid(1), sid(2)]
    assert out["Shards"][0]["ParentShardId"] == sid(0)
    status, out = cbor_call(server, "ListShards", {
        "StreamName": name,
        "ShardFilter": {"Type": "FROM_TIMESTAMP", "Timestamp": datetime.datetime(
            2020, 1, 1, tzinfo=datetime.timezone.utc)}})
    assert status == 200 and ids(out["Shards"]) == [sid(0), sid(1), sid(2)]
    status, it = cbor_call(server, "GetShardIterator", {
        "StreamName": name, "ShardId": sid(0), "ShardIteratorType": "TRIM_HORIZON"})
    assert status == 200
    status, got = cbor_call(server, "GetRecords", {"ShardIterator": it["ShardIterator"]})
    assert status == 200
    assert [(r["SequenceNumber"], r["Data"]) for r in got["Records"]] == [(seq, b"before")]
    assert got.get("NextShardIterator") is None
    assert [(c["ShardId"], c["ParentShards"]) for c in got["ChildShards"]] == [
        (sid(1), [sid(0)]), (sid(2), [sid(0)])]
    status, err = cbor_call(server, "SplitShard", {
        "StreamName": name, "ShardToSplit": sid(0), "NewStartingHashKey": str(2**127)})
    assert status == 400 and err["__type"] == "ResourceInUseException" and err["message"]
    status, err = cbor_call(server, "SplitShard", {
        "StreamName": name, "ShardToSplit": sid(1), "NewStartingHashKey": "1"})
    assert status == 400 and err["__type"] == "InvalidArgumentException"
    kinesis.delete_stream(StreamName=name)
