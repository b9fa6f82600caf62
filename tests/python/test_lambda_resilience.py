"""Lambda event-source mappings on the paths where delivery meets change
(docs/lambda.md, docs/lambda-design.md §4), against the real binary with a
scripted local function: resharding (children after their parents), the 6 MB
event split, tumbling windows across a restart and past 400 KiB of state, an
OnFailure destination deleted under a mapping, an Update while records flow
and while a shard task is idle,
ParallelizationFactor with ReportBatchItemFailures, and MaximumRecordAgeInSeconds
(records put at the module's start, so its minute of waiting overlaps the
other tests; that test comes last)."""

import base64
import hashlib
import json
import signal
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import start_server, stop_server

from lambda_env import *  # noqa: F401,F403 (the helpers and fixtures)
from lambda_env import env, named, shared  # noqa: F401 (fixtures)

EVENT_BYTES_MAX = 6 * 1024 * 1024
MAX_HASH = 2**128 - 1
MAX_AGE_S = 60


def shard_of(event):
    """The one shard every record of an event comes from."""
    shards = {r["eventID"].split(":")[0] for r in event["Records"]}
    assert len(shards) == 1, shards
    return shards.pop()


def put_hashed(env, stream, items):
    """Puts (explicit hash key, data) pairs in order: {data, seq, shard} each."""
    got = env.kinesis.put_records(StreamName=stream, Records=[
        {"PartitionKey": "k", "ExplicitHashKey": str(h), "Data": d} for h, d in items])
    assert got["FailedRecordCount"] == 0, got
    return [{"data": d, "seq": r["SequenceNumber"], "shard": r["ShardId"]}
            for (_, d), r in zip(items, got["Records"])]


def wait_active(env, stream):
    until(lambda: env.kinesis.describe_stream_summary(StreamName=stream)[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", f"{stream} ACTIVE")


def window_start_of(event):
    return event["window"]["start"]


def wait_for_window_room(window_s, room_s):
    """Waits (on the clock, which tumbling windows are about) until at least
    `room_s` of the current epoch-aligned window is left."""
    left = window_s - time.time() % window_s
    if left < room_s:
        time.sleep(left + 0.05)


# ---------------------------------------------------------------- record age

@pytest.fixture(scope="module", autouse=True)
def aged(shared):
    """Records put at the module's start for the record-age test (last in the
    file): a stream, its (key, data) puts and their put answers."""
    name, arn = shared.stream()
    items = [(f"old-{i}", f"aged-{i}".encode()) for i in range(5)]
    put = shared.put(name, items)
    arrivals = [r["ApproximateArrivalTimestamp"].timestamp() for r in shared.read_all(name)]
    return {"name": name, "arn": arn, "put": put, "last_arrival": max(arrivals)}


# ---------------------------------------------------------------- resharding

def test_children_are_invoked_only_after_their_parents(env):
    """Split then merge under a mapping: every record arrives, in shard order,
    and no invocation of a child starts before its parents' last invocation
    was answered."""
    name, arn = env.stream()
    gate = threading.Event()
    log, lock = [], threading.Lock()

    def respond(event, n):
        shard = shard_of(event)
        with lock:
            log.append(("start", n, shard))
        # The first answer waits until every generation has records, so the
        # children have a backlog while their parent is still being read.
        assert gate.wait(WAIT)
        with lock:
            log.append(("end", n, shard))
        return {}

    fn = env.function(respond)
    env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON", BatchSize=5)
    low, high = [7 + i * 1000 for i in range(12)], [2**127 + 7 + i * 1000 for i in range(12)]
    put = put_hashed(env, name, [(h, f"parent-{i}".encode()) for i, h in enumerate(low + high)])
    fn.wait(lambda f: len(f.calls) >= 1, "the first invocation")
    env.kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                            NewStartingHashKey=str(2**127))
    wait_active(env, name)
    put += put_hashed(env, name, [(h, f"child-{i}".encode()) for i, h in
                                  enumerate(x for pair in zip(low, high) for x in pair)])
    children = sorted({p["shard"] for p in put[24:]})
    assert children == ["shardId-000000000001", "shardId-000000000002"], children
    env.kinesis.merge_shards(StreamName=name, ShardToMerge=children[0], AdjacentShardToMerge=children[1])
    wait_active(env, name)
    put += put_hashed(env, name, [(h, f"merged-{i}".encode()) for i, h in enumerate(low + high)])
    merged = {p["shard"] for p in put[48:]}
    assert merged == {"shardId-000000000003"}, merged
    gate.set()
    fn.wait_data([p["data"] for p in put], timeout=30)

    # Every record, once and in its shard's order.
    assert sorted(fn.data()) == sorted(p["data"] for p in put)
    for shard in {p["shard"] for p in put}:
        got = [r["kinesis"]["sequenceNumber"] for r in fn.records() if r["eventID"].startswith(shard + ":")]
        assert got == [p["seq"] for p in put if p["shard"] == shard], shard
    with lock:
        order = list(log)

    def first_start(shard):
        return min(i for i, (kind, _, s) in enumerate(order) if kind == "start" and s == shard)

    def last_end(shard):
        return max(i for i, (kind, _, s) in enumerate(order) if kind == "end" and s == shard)

    parents = {"shardId-000000000001": ["shardId-000000000000"],
               "shardId-000000000002": ["shardId-000000000000"],
               "shardId-000000000003": ["shardId-000000000001", "shardId-000000000002"]}
    for child, of in parents.items():
        for parent in of:
            assert first_start(child) > last_end(parent), (child, parent, order)
    # The parent's first invocation was held until every generation had
    # records: the children had a backlog while the parent was still read.
    assert order[0] == ("start", 0, "shardId-000000000000"), order[:3]
    assert sum(1 for kind, _, s in order if kind == "start" and s == "shardId-000000000000") >= 5


# ---------------------------------------------------------------- the 6 MB split

def test_large_records_are_split_into_events_under_6_mb(env):
    name, arn = env.stream()
    want = []
    for i in range(10):
        data = bytes([65 + i]) * (900 * 1024)
        env.kinesis.put_record(StreamName=name, PartitionKey=f"big-{i}", Data=data)
        want.append(data)
    fn = env.function()
    env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON", BatchSize=100)
    fn.wait_data(want, timeout=40)
    sizes = [len(c["raw"]) for c in fn.calls]
    assert all(s <= EVENT_BYTES_MAX for s in sizes), sizes
    assert len(sizes) >= 2, sizes  # 10 × 1.2 MB of base64 cannot fit one event
    assert fn.data() == want  # in order, each once


# ---------------------------------------------------------------- tumbling windows

def counting(event, n):
    count = (event.get("state") or {}).get("count", 0) + len(event["Records"])
    return {"state": {"count": count}}


def test_window_state_survives_a_restart():
    """A 60 s window's state is part of the shard's checkpoint: after SIGKILL
    and a restart on the same data directory, the window goes on from the
    state its last durable round gave, and counts every record once."""
    proc, http_addr, data = start_server()
    fn = Function(counting)
    try:
        env = Env(http_addr)
        name, arn = env.stream()
        env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST",
                   TumblingWindowInSeconds=60, BatchSize=10)
        wait_for_window_room(60, 25)
        first = env.put(name, [(f"k{i}", f"tw-a{i}".encode()) for i in range(3)])
        fn.wait_data([p["data"] for p in first])
        # A second round: its invocation shows the first round's checkpoint
        # (state included) was applied before it.
        second = env.put(name, [(f"k{i}", f"tw-b{i}".encode()) for i in range(2)])
        fn.wait_data([p["data"] for p in second])
        before = fn.events()
        carried = [e for e in before if set(batch_data(e)) & {p["data"] for p in second}][-1]
        assert carried["state"] == {"count": 3}, carried["state"]
        window = window_start_of(carried)
        assert {window_start_of(e) for e in before} == {window}
        assert not any(e["isFinalInvokeForWindow"] for e in before)

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        restart_at = len(fn.calls)
        proc, http_addr = start_on(data)
        env = Env(http_addr)
        third = env.put(name, [(f"k{i}", f"tw-c{i}".encode()) for i in range(2)])
        fn.wait_data([p["data"] for p in third], timeout=30)
        after = fn.events()[restart_at:]
        assert after, "no invocation after the restart"
        for e in after:
            assert window_start_of(e) == window, (window, e["window"])
            assert e["isFinalInvokeForWindow"] is False
            # Continues from the durable state (3), never from {}.
            assert e["state"].get("count", 0) >= 3, [x["state"] for x in after]
        last = [e for e in after if e["Records"]][-1]
        assert last["state"]["count"] + len(last["Records"]) == 7, [(x["state"], batch_data(x)) for x in after]
        # Records of the third put are counted once each.
        assert sorted(d for e in after for d in batch_data(e) if d.startswith(b"tw-c")) == \
            sorted(p["data"] for p in third)
    finally:
        fn.close()
        stop_server(proc, data)


def test_window_state_past_400_kib_ends_the_window_early(env):
    name, arn = env.stream()
    big = {"blob": "x" * (420 * 1024)}

    def respond(event, n):
        if event["isFinalInvokeForWindow"]:
            return {}
        if n == 0:
            return {"state": big}
        return counting(event, n)

    fn = env.function(respond)
    env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST",
               TumblingWindowInSeconds=60, BatchSize=1)
    wait_for_window_room(60, 10)
    put = env.put(name, [(f"k{i}", f"early-{i}".encode()) for i in range(3)])
    fn.wait_data([p["data"] for p in put])
    fn.wait(lambda f: len(f.calls) >= 4, "3 invocations and the early final invoke")
    events = fn.events()
    first, final, second, third = events[:4]
    assert batch_data(first) == [b"early-0"] and first["state"] == {}
    assert final["Records"] == []
    assert (final["isFinalInvokeForWindow"], final["isWindowTerminatedEarly"]) == (True, True)
    assert final["state"] == big
    assert window_start_of(final) == window_start_of(first)
    # The same window goes on from {}.
    assert batch_data(second) == [b"early-1"] and second["state"] == {}
    assert (second["isFinalInvokeForWindow"], second["isWindowTerminatedEarly"]) == (False, False)
    assert window_start_of(second) == window_start_of(first)
    assert batch_data(third) == [b"early-2"] and third["state"] == {"count": 1}
    assert window_start_of(third) == window_start_of(first)


# ---------------------------------------------------------------- a deleted destination

def test_a_deleted_on_failure_destination_does_not_stall_the_mapping(env):
    name, arn = env.stream()
    dest_name, dest = env.stream()
    fn = env.function(lambda event, n: (500, {"errorType": "Boom", "errorMessage": "always"}))
    m = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST",
                   MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": dest}})
    env.put(name, [("k", b"to-dest")])
    fn.wait_data([b"to-dest"])
    env.wait_records(dest_name, 1)  # the destination works while it exists

    env.kinesis.delete_stream(StreamName=dest_name)

    def gone():
        try:
            env.kinesis.describe_stream_summary(StreamName=dest_name)
            return False
        except ClientError as e:
            return e.response["Error"]["Code"] == "ResourceNotFoundException"

    until(gone, f"{dest_name} deleted")
    later = []
    for i in range(3):
        later += [p["data"] for p in env.put(name, [(f"k{i}", f"after-delete-{i}".encode())])]
        fn.wait_data(later)
    assert fn.data() == [b"to-dest"] + later  # each invoked once: no retries, no stall
    assert env.get(m["UUID"])["LastProcessingResult"] == PROBLEM
    assert env.get(m["UUID"])["State"] == "Enabled"


# ---------------------------------------------------------------- update while running

class Producer:
    """Puts records to a stream from a thread until stopped (a paced load,
    not a synchronisation)."""

    def __init__(self, env, stream, tag):
        self.put, self.lock, self.stop_ = [], threading.Lock(), threading.Event()
        self.error = None

        def run():
            i = 0
            try:
                while not self.stop_.is_set():
                    got = env.put(stream, [(f"p{i}-{j}", f"{tag}-{i}-{j}".encode()) for j in range(4)])
                    with self.lock:
                        self.put += got
                    i += 1
                    time.sleep(0.01)
            except Exception as e:  # shown by stop()
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.put)

    def stop(self):
        self.stop_.set()
        self.thread.join(WAIT)
        assert self.error is None, self.error
        return list(self.put)


def test_update_function_and_batch_size_while_records_flow(env):
    name, arn = env.stream(shards=2)
    a, b = env.function(), env.function()
    created = env.create(EventSourceArn=arn, FunctionName=a.url, StartingPosition="LATEST", BatchSize=10)
    m = created["UUID"]
    producer = Producer(env, name, "flow")
    try:
        a.wait(lambda f: {shard_of(e) for e in f.events()} == {"shardId-000000000000",
                                                               "shardId-000000000001"},
               "invocations of A from both shards")
        updated = env.aws_lambda.update_event_source_mapping(UUID=m, FunctionName=b.url)
        assert updated["State"] == "Updating"
        assert updated["FunctionArn"] != created["FunctionArn"]

        def both_shards_twice(f):
            shards = [shard_of(e) for e in f.events()]
            return all(shards.count(s) >= 2 for s in ("shardId-000000000000", "shardId-000000000001"))

        b.wait(both_shards_twice, "a few invocations of B from each shard")
        cut = producer.count()
        b.wait(lambda f: len(f.calls) >= 8, "more invocations of B")
    finally:
        put = producer.stop()
    assert len(put) > cut
    b.wait_data([p["data"] for p in put[cut:]])
    union = set(a.data()) | set(b.data())
    missing = [p["data"] for p in put if p["data"] not in union]
    assert not missing, missing[:10]
    late = {p["data"] for p in put[cut:]}
    assert not late & set(a.data()), sorted(late & set(a.data()))[:10]
    # Each function got each shard's records in order (first deliveries).
    for fn in (a, b):
        for shard in ("shardId-000000000000", "shardId-000000000001"):
            got = list(dict.fromkeys(r["kinesis"]["sequenceNumber"] for r in fn.records()
                                     if r["eventID"].startswith(shard + ":")))
            assert got == sorted(got, key=int)

    env.wait_state(m, "Enabled")
    assert env.aws_lambda.update_event_source_mapping(UUID=m, BatchSize=2)["BatchSize"] == 2
    small = env.put(name, [(f"s{i}", f"small-{i}".encode()) for i in range(20)])
    want = {p["data"] for p in small}
    b.wait_data(want)
    carrying = [e for e in b.events() if set(batch_data(e)) & want]
    assert all(len(e["Records"]) <= 2 for e in carrying), [len(e["Records"]) for e in carrying]
    assert env.get(m)["BatchSize"] == 2


def test_an_update_applies_to_records_put_after_its_answer(env):
    """A mapping whose shard-1 task is idle (waiting for records since it
    started; shard 0 takes the warm-up record) updated to another function and
    BatchSize: records put to shard 1 once Get shows Enabled again go to the
    new function, in batches of the new size ("Update keeps checkpoints: a
    changed FunctionName or batching setting applies from the checkpoint on",
    docs/lambda-design.md §4.3)."""
    name, arn = env.stream(shards=2)
    a, b = env.function(), env.function()
    m = env.create(EventSourceArn=arn, FunctionName=a.url, StartingPosition="LATEST", BatchSize=10)["UUID"]
    warm = put_hashed(env, name, [(0, b"warm-up")])
    assert warm[0]["shard"] == "shardId-000000000000"
    a.wait_data([b"warm-up"])
    env.aws_lambda.update_event_source_mapping(UUID=m, FunctionName=b.url, BatchSize=2)
    env.wait_state(m, "Enabled")
    put = put_hashed(env, name, [(2**127 + i, f"after-update-{i}".encode()) for i in range(6)])
    assert {p["shard"] for p in put} == {"shardId-000000000001"}
    want = {p["data"] for p in put}
    until(lambda: want <= set(a.data()) | set(b.data()), "the records at A or B")
    assert a.data() == [b"warm-up"], [batch_data(e) for e in a.events()]
    assert b.data() == [p["data"] for p in put]
    assert [len(e["Records"]) for e in b.events()] == [2, 2, 2]


# ---------------------------------------------------------------- lanes and partial failures

def lane_of(key, lanes):
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big") % lanes


def test_parallel_lanes_with_a_partial_failure_keep_key_order(env):
    name, arn = env.stream()
    keys = [f"user-{i}" for i in range(12)]
    bad_key = keys[0]
    assert {lane_of(k, 3) for k in keys} == {0, 1, 2}
    put = env.put(name, [(k, f"{k}/{n}".encode()) for n in range(5) for k in keys])
    bad = f"{bad_key}/1".encode()
    failed = threading.Event()

    def respond(event, n):
        # The first calls wait (a while) for another lane's call to overlap.
        with fn.cond:
            fn.cond.wait_for(lambda: fn.max_in_flight > 1, 5)
        for r in event["Records"]:
            if base64.b64decode(r["kinesis"]["data"]) == bad and not failed.is_set():
                failed.set()
                return {"batchItemFailures": [{"itemIdentifier": r["kinesis"]["sequenceNumber"]}]}
        return {"batchItemFailures": []}

    fn = env.function(respond)
    env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON",
               BatchSize=10, ParallelizationFactor=3, FunctionResponseTypes=["ReportBatchItemFailures"])
    fn.wait_data([p["data"] for p in put])
    assert failed.is_set()
    assert fn.max_in_flight > 1, fn.max_in_flight  # the lanes ran at once

    def of_key(k):
        return [d.decode() for d in fn.data() if d.decode().split("/")[0] == k]

    # The failed key: its first delivery up to some record, then the retry
    # from the failed record on, in order and each once.
    got = of_key(bad_key)
    retried = [i for i, d in enumerate(got) if d == f"{bad_key}/1"]
    assert len(retried) == 2, got
    assert got[retried[1]:] == [f"{bad_key}/{n}" for n in range(1, 5)], got
    assert got[:retried[1]] == [f"{bad_key}/{n}" for n in range(retried[1])], got
    bad_lane = lane_of(bad_key, 3)
    for k in keys[1:]:
        mine = of_key(k)
        assert list(dict.fromkeys(mine)) == [f"{k}/{n}" for n in range(5)], mine
        if lane_of(k, 3) != bad_lane:
            assert len(mine) == 5, mine  # other lanes: each record once


# ---------------------------------------------------------------- record age (last)

def test_records_older_than_the_maximum_age_go_to_on_failure(env, aged):
    """Records put at the module's start, older than 60 s when the mapping
    (TRIM_HORIZON) is made: discarded before any invocation, as one
    RecordAgeExceeded record in the destination; a fresh record after them
    is invoked."""
    # The clock is the scenario: wait out the records' maximum age.
    time.sleep(max(0.0, aged["last_arrival"] + MAX_AGE_S + 1 - time.time()))
    dest_name, dest = env.stream()
    fn = env.function()
    m = env.create(EventSourceArn=aged["arn"], FunctionName=fn.url, StartingPosition="TRIM_HORIZON",
                   MaximumRecordAgeInSeconds=MAX_AGE_S, DestinationConfig={"OnFailure": {"Destination": dest}})
    fresh = env.put(aged["name"], [("new", b"fresh")])
    fn.wait_data([b"fresh"])
    assert fn.data() == [b"fresh"]  # never the expired records
    records = env.wait_records(dest_name, 1)
    assert len(records) == 1, records
    failure = json.loads(records[0]["Data"])
    put = aged["put"]
    assert records[0]["PartitionKey"] == put[0]["shard"]
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["requestContext"]["functionArn"] == m["FunctionArn"]
    assert "responseContext" not in failure, failure
    info = failure["KinesisBatchInfo"]
    assert info["batchSize"] == len(put)
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (put[0]["seq"], put[-1]["seq"])
    assert (info["shardId"], info["streamArn"]) == (put[0]["shard"], aged["arn"])
    assert fn.records()[0]["kinesis"]["sequenceNumber"] == fresh[0]["seq"]


def test_a_clean_shutdown_keeps_what_was_invoked():
    """SIGTERM: the shard tasks finish and write their checkpoints before
    the engine stops, so after the restart nothing already invoked is
    invoked again (checkpoints are otherwise written every 250 ms)."""
    fn = Function()
    proc, http_addr, data = start_server()
    try:
        env = Env(http_addr)
        name, arn = env.stream()
        env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON")
        first = env.put(name, [(f"k{i}", f"clean-{i}".encode()) for i in range(5)])
        fn.wait_data([p["data"] for p in first])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        proc, http_addr = start_on(data)
        env = Env(http_addr)
        more = env.put(name, [("k", b"clean-after")])
        fn.wait_data([p["data"] for p in more])
        assert sorted(fn.data()) == sorted(p["data"] for p in first + more), fn.data()
    finally:
        stop_server(proc, data)
        fn.close()
