"""Consumer groups through the real binary: three `riffle consume --exec` worker
processes share an 8-shard stream while a producer writes; one worker is killed
with SIGKILL mid-run, a shard is split and two are merged mid-run. Checked on the
log the workers' commands write (one line per record, in processing order):
every acknowledged record processed at least once; each shard processed by one
worker at a time (a shard's next holder starts right after the last record its
previous holder acknowledged, or earlier only after that holder was killed);
each key's records first processed in order; a child shard only after its
parents' last records."""

import base64
import json
import os
import signal
import subprocess
import threading
import time

import boto3
import pytest
from botocore.config import Config

from conftest import BINARY, start_server_native, stop_server

# Each record: the worker's id and the record's JSON line, appended to $LOG,
# then one acknowledgement line.
EXEC = 'while IFS= read -r line; do printf "%s %s\\n" "$WORKER" "$line" >> "$LOG"; echo ok; done'
FAILOVER_MS = 3000


@pytest.fixture(scope="module")
def riffle():
    proc, native, http, data = start_server_native()
    kinesis = boto3.client(
        "kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}))
    yield native, kinesis, data
    stop_server(proc, data)


def wait_active(kinesis, name):
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})


def start_worker(native, stream, worker, log):
    env = dict(os.environ, WORKER=worker, LOG=log, RUST_LOG="warn")
    return subprocess.Popen(
        [BINARY, "--server", native, "consume", stream, "--group", "g",
         "--worker-id", worker, "--initial", "trim-horizon",
         "--failover-ms", str(FAILOVER_MS), "--exec", EXEC],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_log(path):
    """(worker, shard index, (seq, sub), key, data) per line, in log order."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                # A worker's append still under way, seen half-written by
                # this read: it is read whole on the next poll.
                break
            worker, record = line[:-1].split(" ", 1)
            r = json.loads(record)
            shard = int(r["shard_id"].rsplit("-", 1)[1])
            at = (int(r["sequence_number"]), r.get("sub_sequence_number", -1))
            out.append((worker, shard, at, r["partition_key"], base64.b64decode(r["data"])))
    return out


class Producer(threading.Thread):
    """Puts records with 50 keys until stopped; `acked` holds what was stored."""

    def __init__(self, kinesis, stream):
        super().__init__(daemon=True)
        self.kinesis, self.stream = kinesis, stream
        self.stop = threading.Event()
        self.acked = []
        self.counter = {}
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                batch = []
                for i in range(100):
                    key = f"k{i % 50}"
                    n = self.counter.get(key, 0)
                    batch.append((key, f"{key}:{n:08d}".encode()))
                    self.counter[key] = n + 1
                answer = self.kinesis.put_records(
                    StreamName=self.stream,
                    Records=[{"PartitionKey": k, "Data": d} for k, d in batch])
                for (k, d), r in zip(batch, answer["Records"]):
                    # A record refused is not acknowledged (and would break the
                    # per-key order the test checks): stop on any.
                    assert "ErrorCode" not in r, r
                    self.acked.append((k, d))
                time.sleep(0.02)
        except Exception as e:  # reported by the test
            self.error = e


def wait_until(what, cond, timeout=60, workers=()):
    deadline = time.monotonic() + timeout
    while not cond():
        for w in workers:
            if w.poll() is not None:
                pytest.fail(f"a worker exited ({w.returncode}): {w.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.1)


def test_three_workers_a_kill_and_a_reshard(riffle, tmp_path):
    native, kinesis, _ = riffle
    stream = "groups-e2e"
    kinesis.create_stream(StreamName=stream, ShardCount=8)
    wait_active(kinesis, stream)
    log = str(tmp_path / "processed.log")
    producer = Producer(kinesis, stream)
    producer.start()
    workers = {w: start_worker(native, stream, w, log) for w in ("w1", "w2", "w3")}
    try:
        live = lambda: [p for p in workers.values() if p.poll() is None]
        # Every worker processes some shards.
        wait_until("every worker at work",
                   lambda: {r[0] for r in read_log(log)} == {"w1", "w2", "w3"}, workers=live())
        killed_at = len(read_log(log))
        workers["w2"].send_signal(signal.SIGKILL)
        workers["w2"].wait()
        # Its shards go to the others after the failover time.
        wait_until("w2's shards taken over", lambda: len({
            r[1] for r in read_log(log)[killed_at:] if r[0] != "w2"}) == 8,
            workers=[workers["w1"], workers["w3"]])
        # A split and a merge while records keep coming.
        shards = kinesis.list_shards(StreamName=stream)["Shards"]
        s0 = shards[0]["HashKeyRange"]
        middle = (int(s0["StartingHashKey"]) + int(s0["EndingHashKey"])) // 2
        kinesis.split_shard(StreamName=stream, ShardToSplit=shards[0]["ShardId"],
                            NewStartingHashKey=str(middle))
        wait_active(kinesis, stream)
        kinesis.merge_shards(StreamName=stream, ShardToMerge=shards[6]["ShardId"],
                             AdjacentShardToMerge=shards[7]["ShardId"])
        wait_active(kinesis, stream)
        time.sleep(1.0)  # records keep arriving on the children meanwhile
        producer.stop.set()
        producer.join()
        assert producer.error is None, producer.error
        acked = set(producer.acked)
        wait_until("every acknowledged record processed",
                   lambda: acked <= {(r[3], r[4]) for r in read_log(log)},
                   workers=[workers["w1"], workers["w3"]])
    finally:
        producer.stop.set()
        for p in workers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in workers.values():
            p.wait(timeout=30)
    assert workers["w1"].returncode == 0 and workers["w3"].returncode == 0

    records = read_log(log)
    # Each key's records are first processed in put order.
    first_seen = {}
    for i, (_, _, _, key, data) in enumerate(records):
        first_seen.setdefault((key, data), i)
    for key in {k for k, _ in acked}:
        mine = sorted((d, first_seen[(key, d)]) for k, d in acked if k == key)
        order = [i for _, i in mine]
        assert order == sorted(order), f"key {key} first processed out of order"
    # One worker at a time per shard: a holder starts right after the last
    # record its predecessor processed; before it only when the predecessor
    # was the killed worker.
    by_shard = {}
    for worker, shard, at, _, _ in records:
        by_shard.setdefault(shard, []).append((worker, at))
    handovers = 0
    for shard, seen in by_shard.items():
        positions = sorted({at for _, at in seen})
        rank = {at: i for i, at in enumerate(positions)}
        prev_worker, prev_rank = None, -1
        for worker, at in seen:
            r = rank[at]
            if worker == prev_worker:
                assert r == prev_rank + 1, f"shard {shard}: {worker} skipped or went back"
            elif prev_worker is not None:
                handovers += 1
                if prev_worker == "w2":
                    assert r <= prev_rank + 1, f"shard {shard}: a gap after w2 was killed"
                else:
                    assert r == prev_rank + 1, \
                        f"shard {shard}: {worker} started at {r}, {prev_worker} stopped at {prev_rank}"
            prev_worker, prev_rank = worker, r
        assert prev_rank == len(positions) - 1
    assert handovers >= 1
    # Children after their parents' last records.
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    index = lambda shard_id: int(shard_id.rsplit("-", 1)[1])
    position = {}
    for i, (_, shard, _, _, _) in enumerate(records):
        position.setdefault(shard, [i, i])[1] = i
    children = 0
    for s in shards:
        parents = [s.get("ParentShardId"), s.get("AdjacentParentShardId")]
        for p in filter(None, parents):
            if index(s["ShardId"]) in position and index(p) in position:
                children += 1
                assert position[index(s["ShardId"])][0] > position[index(p)][1], \
                    f"{s['ShardId']} processed before its parent {p} ended"
    assert children >= 3
    # The lease table as `riffle group describe` shows it: nobody holds a
    # lease after the workers left; the split and merged parents ended.
    out = subprocess.run([BINARY, "--server", native, "--json", "group", "describe", stream, "g"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    table = json.loads(out.stdout)
    assert table["workers"] == []
    assert all(l["owner"] is None for l in table["leases"])
    ended = {l["shard_id"] for l in table["leases"] if l["checkpoint"] == "SHARD_END"}
    parents = {p for s in shards for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p}
    assert ended == parents
    assert all(l["checkpoint"].startswith("after ") for l in table["leases"]
               if l["shard_id"] not in parents)
