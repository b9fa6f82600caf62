"""Lambda event-source mappings' delivery (docs/lambda.md) against the real
binary, with a scripted local function: the Kinesis event, starting
positions, batching, order, ParallelizationFactor, ReportBatchItemFailures,
bisection, retries and the OnFailure record, function errors, filters,
disable/enable, a restart after SIGKILL, delete, tumbling windows."""

import base64
import datetime
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import BINARY, ROOT, _log_tail, _server_logs, free_port, start_server, stop_server

from lambda_env import *  # noqa: F401,F403 (the helpers and fixtures)
from lambda_env import env, named, shared  # noqa: F401 (fixtures)


def test_the_event_every_key(env):
    name, arn = env.stream()
    fn = env.function()
    env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST")
    data = json.dumps({"amount": 12}).encode() + b"\x00\xff"
    put = env.kinesis.put_record(StreamName=name, PartitionKey="user-1", Data=data)
    fn.wait(lambda f: len(f.calls) >= 1, "the invocation")
    call = fn.calls[0]
    assert call["path"] == "/2015-03-31/functions/function/invocations"
    assert call["headers"]["content-type"] == "application/json"
    event = call["event"]
    assert list(event) == ["Records"] and len(event["Records"]) == 1
    record = event["Records"][0]
    arrival = record["kinesis"]["approximateArrivalTimestamp"]
    assert isinstance(arrival, (int, float)) and not isinstance(arrival, bool)
    stored = env.read_all(name)[0]
    assert abs(arrival - stored["ApproximateArrivalTimestamp"].timestamp()) < 0.0015
    # Seconds with (at most) millisecond precision, as a JSON number.
    assert re.search(rb'"approximateArrivalTimestamp":\d+(\.\d{1,3})?[,}]', call["raw"]), call["raw"]
    assert record == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "user-1",
            "sequenceNumber": record["kinesis"]["sequenceNumber"],
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": arrival,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{put['ShardId']}:{record['kinesis']['sequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/riffle-event-source-mapping",
        "awsRegion": REGION,
        "eventSourceARN": arn,
    }
    assert put["ShardId"] == "shardId-000000000000"
    # The sequence number is the one PutRecord answered.
    assert record["kinesis"]["sequenceNumber"] == put["SequenceNumber"]
    assert record["eventID"] == f"{put['ShardId']}:{put['SequenceNumber']}"


def test_trim_horizon_latest_and_at_timestamp(env):
    name, arn = env.stream()
    before = env.put(name, [(f"k{i}", f"before-{i}".encode()) for i in range(5)])
    horizon, latest = env.function(), env.function()
    env.create(EventSourceArn=arn, FunctionName=horizon.url, StartingPosition="TRIM_HORIZON")
    env.create(EventSourceArn=arn, FunctionName=latest.url, StartingPosition="LATEST")
    # A timestamp after every `before` record's arrival, and before the next puts.
    arrivals = [r["ApproximateArrivalTimestamp"].timestamp() for r in env.read_all(name)]
    at = max(arrivals) + 0.001
    while time.time() < at + 0.002:  # the clock itself is the state waited on
        time.sleep(0.001)
    after = env.put(name, [(f"k{i}", f"after-{i}".encode()) for i in range(5)])
    stamp = env.function()
    env.create(EventSourceArn=arn, FunctionName=stamp.url, StartingPosition="AT_TIMESTAMP",
               StartingPositionTimestamp=at)
    first = env.function()
    env.create(EventSourceArn=arn, FunctionName=first.url, StartingPosition="AT_TIMESTAMP",
               StartingPositionTimestamp=min(arrivals) - 1)
    b = [p["data"] for p in before]
    a = [p["data"] for p in after]
    for fn, want in ((horizon, b + a), (latest, a), (stamp, a), (first, b + a)):
        fn.wait_data(want)
    # In order, each once; LATEST and the late timestamp never got a `before` record.
    assert horizon.data() == b + a
    assert latest.data() == a
    assert stamp.data() == a
    assert first.data() == b + a
    assert [r["kinesis"]["sequenceNumber"] for r in latest.records()] == \
        [r["kinesis"]["sequenceNumber"] for r in horizon.records()][5:]
    assert [r["kinesis"]["sequenceNumber"] for r in latest.records()] == [p["seq"] for p in after]


def test_batch_size_is_respected(env):
    name, arn = env.stream()
    put = env.put(name, [(f"k{i % 3}", f"r{i:02d}".encode()) for i in range(25)])
    fn = env.function()
    env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON", BatchSize=4)
    want = [p["data"] for p in put]
    fn.wait_data(want)
    sizes = [len(e["Records"]) for e in fn.events()]
    assert max(sizes) <= 4 and len(sizes) >= 7, sizes
    assert fn.data() == want


def test_batching_window_gathers_a_full_batch(env):
    name, arn = env.stream()
    fn = env.function()
    env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST",
               BatchSize=50, MaximumBatchingWindowInSeconds=2)
    want = []
    for i in range(0, 50, 5):  # ten puts in quick succession
        want += [p["data"] for p in env.put(name, [(f"k{j}", f"w{j:02d}".encode()) for j in range(i, i + 5)])]
    fn.wait_data(want)
    assert [batch_data(e) for e in fn.events()] == [want]


def test_per_shard_order(env):
    name, arn = env.stream(shards=2)
    fn = env.function()
    env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST", BatchSize=7)
    put = []
    for round_ in range(4):
        put += env.put(name, [(f"key-{i}", f"o{round_}-{i}".encode()) for i in range(25)])
    fn.wait_data([p["data"] for p in put])
    assert {p["shard"] for p in put} == {"shardId-000000000000", "shardId-000000000001"}
    for e in fn.events():
        assert len(e["Records"]) <= 7
        assert len({r["eventID"].split(":")[0] for r in e["Records"]}) == 1  # one shard per batch
    for shard in ("shardId-000000000000", "shardId-000000000001"):
        mine = [r for r in fn.records() if r["eventID"].startswith(shard + ":")]
        assert [base64.b64decode(r["kinesis"]["data"]) for r in mine] == \
            [p["data"] for p in put if p["shard"] == shard]
        got = [r["kinesis"]["sequenceNumber"] for r in mine]
        assert all(int(x) < int(y) for x, y in zip(got, got[1:]))
        assert all(r["eventID"] == f"{shard}:{r['kinesis']['sequenceNumber']}" for r in mine)
    for shard in ("shardId-000000000000", "shardId-000000000001"):
        got = [r["kinesis"]["sequenceNumber"] for r in fn.records() if r["eventID"].startswith(shard + ":")]
        assert got == [p["seq"] for p in put if p["shard"] == shard]


def test_parallelization_factor_keeps_key_order_and_runs_lanes_at_once(env):
    name, arn = env.stream()
    keys = [f"user-{i}" for i in range(20)]
    put = env.put(name, [(k, f"{k}/{n}".encode()) for n in range(8) for k in keys])

    def slow(event, n):
        time.sleep(0.15)  # the function's own work time
        return {}

    fn = env.function(slow)
    env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON",
               BatchSize=10, ParallelizationFactor=4)
    fn.wait_data([p["data"] for p in put], timeout=40)
    assert fn.max_in_flight > 1, fn.max_in_flight
    assert sorted(fn.data()) == sorted(p["data"] for p in put)
    for k in keys:
        mine = [d.decode() for d in fn.data() if d.decode().split("/")[0] == k]
        assert mine == [f"{k}/{n}" for n in range(8)], mine
    for e in fn.events():
        assert len(e["Records"]) <= 10


def test_report_batch_item_failures_retries_from_the_reported_record(env):
    name, arn = env.stream()
    put = env.put(name, [(f"k{i}", f"item-{i}".encode()) for i in range(10)])

    def respond(event, n):
        if n == 0:
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][2]["kinesis"]["sequenceNumber"]}]}
        return {"batchItemFailures": []}

    fn = env.function(respond)
    m = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON",
                   BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    fn.wait(lambda f: len(f.calls) >= 2, "the retry")
    first, retry = fn.events()[:2]
    assert batch_data(first) == [p["data"] for p in put]
    assert seqs_of(retry)[0] == seqs_of(first)[2]
    assert seqs_of(retry) == seqs_of(first)[2:]
    assert batch_data(retry) == [p["data"] for p in put[2:]]
    # Then nothing more: a later record shows the retry's success moved on.
    more = env.put(name, [("k", b"later")])
    fn.wait_data([b"later"])
    assert [batch_data(e) for e in fn.events()[2:]] == [[b"later"]]
    assert env.get(m["UUID"])["LastProcessingResult"] == "OK"
    assert seqs_of(first) == [p["seq"] for p in put]
    assert seqs_of(retry)[0] == put[2]["seq"]
    assert [seqs_of(e) for e in fn.events()[2:]] == [[more[0]["seq"]]]


def test_bisect_finds_the_poison_record_and_reports_it_on_failure(env):
    name, arn = env.stream()
    dest_name, dest = env.stream()
    items = [(f"k{i}", b"poison" if i == 5 else f"good-{i}".encode()) for i in range(16)]
    put = env.put(name, items)

    def respond(event, n):
        if b"poison" in batch_data(event):
            return 500, {"errorType": "Poison", "errorMessage": "bad record"}
        return {}

    fn = env.function(respond)
    m = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON",
                   BatchSize=16, BisectBatchOnFunctionError=True, MaximumRetryAttempts=0,
                   DestinationConfig={"OnFailure": {"Destination": dest}})
    good = [p["data"] for p in put if p["data"] != b"poison"]
    fn.wait(lambda f: set(good) <= {d for e in f.events() if b"poison" not in batch_data(e)
                                    for d in batch_data(e)}, "every good record delivered")
    assert len(fn.events()[0]["Records"]) == 16
    assert [batch_data(e) for e in fn.events() if b"poison" in batch_data(e)][-1] == [b"poison"]
    records = env.wait_records(dest_name, 1)
    assert len(records) == 1, records
    failure = json.loads(records[0]["Data"])
    poison = put[5]
    assert records[0]["PartitionKey"] == poison["shard"]
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["functionArn"] == m["FunctionArn"]
    assert failure["KinesisBatchInfo"]["batchSize"] == 1
    seen = [r["kinesis"]["sequenceNumber"] for r in fn.records() if r["kinesis"]["partitionKey"] == "k5"]
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == seen[-1]
    assert failure["KinesisBatchInfo"]["endSequenceNumber"] == seen[-1]
    assert failure["KinesisBatchInfo"]["shardId"] == poison["shard"]
    assert failure["KinesisBatchInfo"]["streamArn"] == arn
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert failure["responseContext"]["statusCode"] == 500
    # Later records still flow, and no second failure record appears.
    env.put(name, [("k", b"after-poison")])
    fn.wait_data([b"after-poison"])
    assert len(env.read_all(dest_name)) == 1
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == poison["seq"]
    assert failure["KinesisBatchInfo"]["endSequenceNumber"] == poison["seq"]


def test_retries_run_out_into_an_on_failure_record(env):
    name, arn = env.stream()
    dest_name, dest = env.stream()
    fn = env.function(lambda event, n: (500, b"boom"))
    m = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST",
                   BatchSize=10, MaximumRetryAttempts=2,
                   DestinationConfig={"OnFailure": {"Destination": dest}})
    put = env.put(name, [("a", b"fail-1"), ("b", b"fail-2"), ("c", b"fail-3")])
    records = env.wait_records(dest_name, 1)
    assert [batch_data(e) for e in fn.events()] == [[b"fail-1", b"fail-2", b"fail-3"]] * 3
    failure = json.loads(records[0]["Data"])
    assert set(failure) == {"requestContext", "responseContext", "version", "timestamp", "KinesisBatchInfo"}
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestContext"]["functionArn"] == m["FunctionArn"]
    assert re.fullmatch(r"[0-9a-f-]{36}", failure["requestContext"]["requestId"])
    assert failure["responseContext"] == {"statusCode": 500, "executedVersion": "$LATEST",
                                          "functionError": "Unhandled"}
    assert failure["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", failure["timestamp"])
    info = failure["KinesisBatchInfo"]
    seen = seqs_of(fn.events()[0])
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == \
        (seen[0], seen[2], 3)
    assert (info["shardId"], info["streamArn"]) == ("shardId-000000000000", arn)
    for k in ("approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", info[k]), info
    assert env.get(m["UUID"])["LastProcessingResult"] == PROBLEM
    assert len(fn.calls) == 3
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (put[0]["seq"], put[2]["seq"])


@pytest.mark.parametrize("kind", ["http-500", "error-shape", "x-amz-function-error"])
def test_function_errors_are_retried(env, kind):
    """HTTP 500, 200 with the emulator's handler-exception body, and 200 with
    X-Amz-Function-Error each fail the batch: it is sent again until the
    function succeeds. LastProcessingResult shows the failure meanwhile."""
    name, arn = env.stream()
    release = threading.Event()
    failures = {
        "http-500": (500, {"message": "internal"}),
        "error-shape": (200, {"errorMessage": "division by zero", "errorType": "ZeroDivisionError",
                              "requestId": "x", "stackTrace": []}),
        "x-amz-function-error": (200, "\"oops\"", {"X-Amz-Function-Error": "Handled"}),
    }

    def respond(event, n):
        if n < 2:
            return failures[kind]
        assert release.wait(WAIT)
        return {}

    fn = env.function(respond)
    m = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST")
    env.put(name, [("k", b"retry-me"), ("k", b"and-me")])
    fn.wait(lambda f: len(f.calls) >= 3, "two retries")
    assert env.get(m["UUID"])["LastProcessingResult"] == PROBLEM
    release.set()
    until(lambda: env.get(m["UUID"])["LastProcessingResult"] == "OK", "LastProcessingResult OK")
    assert [batch_data(e) for e in fn.events()] == [[b"retry-me", b"and-me"]] * 3


def test_connection_refused_is_a_function_error(env):
    name, arn = env.stream()
    dest_name, dest = env.stream()
    url = f"http://127.0.0.1:{free_port()}/2015-03-31/functions/function/invocations"
    m = env.create(EventSourceArn=arn, FunctionName=url, StartingPosition="LATEST",
                   MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": dest}})
    put = env.put(name, [("k", b"nobody-home")])
    failure = json.loads(env.wait_records(dest_name, 1)[0]["Data"])
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                          "functionError": "Unhandled"}
    assert failure["KinesisBatchInfo"]["batchSize"] == 1
    assert env.get(m["UUID"])["LastProcessingResult"] == PROBLEM
    assert failure["KinesisBatchInfo"]["startSequenceNumber"] == put[0]["seq"]


def test_filter_criteria(env):
    name, arn = env.stream()
    fn = env.function()
    pattern = json.dumps({"data": {"kind": ["keep"]}})
    m = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST",
                   FilterCriteria={"Filters": [{"Pattern": pattern}]})
    assert m["FilterCriteria"] == {"Filters": [{"Pattern": pattern}]}
    rec = lambda kind, n: json.dumps({"kind": kind, "n": n}).encode()  # noqa: E731
    items = [rec("keep", 1), rec("drop", 2), b"not json at all", rec("KEEP", 3), b"\xff\xfe",
             json.dumps({"other": 1}).encode(), rec("keep", 4), json.dumps([1, 2]).encode(),
             rec("keep", 5)]
    env.put(name, [(f"k{i}", d) for i, d in enumerate(items)])
    want = [rec("keep", 1), rec("keep", 4), rec("keep", 5)]
    fn.wait_data(want)
    # Per-shard order: the dropped records came before the last kept one.
    assert fn.data() == want
    # data stays the base64 of the original bytes.
    assert fn.records()[0]["kinesis"]["data"] == base64.b64encode(rec("keep", 1)).decode()


def test_disable_then_enable_resumes_without_loss(env):
    name, arn = env.stream()
    fn, witness = env.function(), env.function()
    m = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST")["UUID"]
    env.create(EventSourceArn=arn, FunctionName=witness.url, StartingPosition="LATEST")
    first = [p["data"] for p in env.put(name, [("k", f"on-{i}".encode()) for i in range(5)])]
    fn.wait_data(first)
    env.aws_lambda.update_event_source_mapping(UUID=m, Enabled=False)
    env.wait_state(m, "Disabled")
    assert env.get(m)["State"] == "Disabled"
    off = [p["data"] for p in env.put(name, [(f"k{i}", f"off-{i}".encode()) for i in range(7)])]
    witness.wait_data(first + off)
    assert fn.data() == first  # nothing while disabled
    enabled = env.aws_lambda.update_event_source_mapping(UUID=m, Enabled=True)
    assert enabled["State"] == "Enabling"
    env.wait_state(m, "Enabled")
    fn.wait_data(off)
    after = [p["data"] for p in env.put(name, [("k", b"after-enable")])]
    fn.wait_data(after)
    assert fn.data() == first + off + after


def test_delete_stops_invocations(env):
    name, arn = env.stream()
    fn, witness = env.function(), env.function()
    m = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST")["UUID"]
    env.create(EventSourceArn=arn, FunctionName=witness.url, StartingPosition="LATEST")
    env.put(name, [("k", b"before-delete")])
    fn.wait_data([b"before-delete"])
    env.aws_lambda.delete_event_source_mapping(UUID=m)
    env.wait_state(m, "ResourceNotFoundException")
    env.put(name, [("k", f"gone-{i}".encode()) for i in range(5)])
    witness.wait_data([f"gone-{i}".encode() for i in range(5)])
    assert fn.data() == [b"before-delete"]


def test_restart_after_sigkill_resumes_without_skipping():
    proc, http_addr, data = start_server()
    fn = Function()
    try:
        env = Env(http_addr)
        name, arn = env.stream(shards=2)
        env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON", BatchSize=10)
        put = env.put(name, [(f"k{i}", f"one-{i}".encode()) for i in range(40)])
        fn.wait_data([p["data"] for p in put])
        # Records put, acknowledged (durably), then the server is killed.
        put += env.put(name, [(f"k{i}", f"two-{i}".encode()) for i in range(40)])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc, http_addr = start_on(data)
        env = Env(http_addr)
        put += env.put(name, [(f"k{i}", f"three-{i}".encode()) for i in range(40)])
        fn.wait_data([p["data"] for p in put], timeout=40)
        for shard in {p["shard"] for p in put}:
            got = [base64.b64decode(r["kinesis"]["data"]) for r in fn.records()
                   if r["eventID"].startswith(shard + ":")]
            want = [p["data"] for p in put if p["shard"] == shard]
            assert set(got) == set(want)
            # First deliveries are in shard order: repeats only re-deliver.
            assert list(dict.fromkeys(got)) == want
        for shard in {p["shard"] for p in put}:
            got = [r["kinesis"]["sequenceNumber"] for r in fn.records()
                   if r["eventID"].startswith(shard + ":")]
            assert list(dict.fromkeys(got)) == [p["seq"] for p in put if p["shard"] == shard]
    finally:
        fn.close()
        stop_server(proc, data)


def test_tumbling_window_state_accumulates_and_the_final_invoke_comes(env):
    """TumblingWindowInSeconds (docs/lambda-design.md §4.7): each invocation
    carries its window and the state the last answer gave; when the window is
    over a final invoke carries the window's whole state."""
    name, arn = env.stream()

    def respond(event, n):
        count = (event.get("state") or {}).get("count", 0) + len(event["Records"])
        return {"state": {"count": count}}

    fn = env.function(respond)
    m = env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="LATEST",
                   TumblingWindowInSeconds=2, BatchSize=2)
    assert m["TumblingWindowInSeconds"] == 2
    put = env.put(name, [(f"k{i}", f"tw-{i}".encode()) for i in range(5)])

    def windows(f):
        by = {}
        for e in f.events():
            by.setdefault(e["window"]["start"], []).append(e)
        return by

    def finished(f):
        by = windows(f)
        return set(p["data"] for p in put) <= set(f.data()) and all(
            any(e["isFinalInvokeForWindow"] for e in es) for es in by.values())

    fn.wait(finished, "every window's final invoke", timeout=WAIT)
    for start, events in windows(fn).items():
        s = datetime.datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        end = datetime.datetime.strptime(events[0]["window"]["end"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
        assert (end - s).total_seconds() == 2 and s.timestamp() % 2 == 0, events[0]["window"]
        count = 0
        for e in events:
            assert set(e) == {"Records", "window", "state", "shardId", "eventSourceARN",
                              "isFinalInvokeForWindow", "isWindowTerminatedEarly"}, set(e)
            assert (e["shardId"], e["eventSourceARN"], e["isWindowTerminatedEarly"]) == \
                ("shardId-000000000000", arn, False)
            assert e["state"].get("count", 0) == count, (events, count)
            assert len(e["Records"]) <= 2
            for r in e["Records"]:
                assert s.timestamp() <= r["kinesis"]["approximateArrivalTimestamp"] < end.timestamp()
            count += len(e["Records"])
        assert [e["isFinalInvokeForWindow"] for e in events][-1] is True
        assert sum(e["isFinalInvokeForWindow"] for e in events) == 1
    assert sorted(fn.data()) == sorted(p["data"] for p in put)


def test_a_one_at_a_time_function_gets_one_invocation_at_a_time():
    """A container running AWS's Runtime Interface Emulator serves one
    invocation at a time and answers a second one 400: a `[functions]` entry
    with `concurrency = 1` keeps a 4-shard mapping's invocations from
    overlapping, so every record arrives and no call is ever refused."""
    refusals = []
    lock = threading.Lock()
    busy = [False]

    def rie(event, n):
        with lock:
            if busy[0]:
                refusals.append(n)
                return (400, {"errorType": "ErrAlreadyInvocating", "errorMessage": "busy"})
            busy[0] = True
        time.sleep(0.02)  # the handler's work
        with lock:
            busy[0] = False
        return {}

    fn = Function(rie)
    conf_dir = tempfile.mkdtemp(prefix="esm-conf-", dir=os.path.join(ROOT, "target", "tmp"))
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        f.write(f'[functions]\nrie = {{ url = "{fn.url}", concurrency = 1 }}\n')
    proc, http_addr, data = start_server("--config", conf)
    try:
        env = Env(http_addr)
        stream, arn = env.stream(shards=4)
        env.create(EventSourceArn=arn, FunctionName="rie", StartingPosition="TRIM_HORIZON",
                   BatchSize=10)
        put = env.put(stream, [(f"k{i}", f"rie-{i}".encode()) for i in range(200)])
        fn.wait_data([p["data"] for p in put])
        assert fn.max_in_flight == 1, fn.max_in_flight
        assert refusals == []
        shards = {p["shard"] for p in put}
        assert len(shards) == 4, shards
    finally:
        stop_server(proc, data)
        fn.close()
        shutil.rmtree(conf_dir, ignore_errors=True)


def test_a_backlog_window_gets_one_final_invoke_with_all_its_records():
    """A tumbling window read over several rounds (a backlog: TRIM_HORIZON
    once the windows' time is over) is closed by a record of a later window
    or, at the tip, by time: one final invoke per window, whose state counts
    every record of it (found by review: the window used to close by the
    clock after each round, its state starting again)."""
    proc, http_addr, data = start_server()
    env = Env(http_addr)

    def respond(event, n):
        count = (event.get("state") or {}).get("count", 0) + len(event["Records"])
        return {"state": {"count": count}}

    fn = Function(respond)
    try:
        name, arn = env.stream()
        put = env.put(name, [(f"k{i}", f"bl-{i}".encode()) for i in range(40)])
        # Every record's 2 s window is over before delivery starts (a wait on
        # the clock, which the scenario is about).
        last_arrival = max(r["ApproximateArrivalTimestamp"].timestamp() for r in env.read_all(name))
        time.sleep(max(0.0, (int(last_arrival) // 2 + 1) * 2 - time.time() + 0.1))
        env.create(EventSourceArn=arn, FunctionName=fn.url, StartingPosition="TRIM_HORIZON",
                   TumblingWindowInSeconds=2, BatchSize=5)
        fn.wait_data([p["data"] for p in put])

        def windows(f):
            by = {}
            for e in f.events():
                by.setdefault(e["window"]["start"], []).append(e)
            return by

        fn.wait(lambda f: all(any(e["isFinalInvokeForWindow"] for e in es)
                              for es in windows(f).values()), "a final invoke per window")
        for start, events in windows(fn).items():
            finals = [e for e in events if e["isFinalInvokeForWindow"]]
            records = sum(len(e["Records"]) for e in events)
            assert len(finals) == 1, (start, [(len(e["Records"]), e["state"]) for e in events])
            assert finals[0]["Records"] == [] and finals[0]["state"]["count"] == records, finals
        assert sum(len(e["Records"]) for e in fn.events()) == 40
    finally:
        stop_server(proc, data)
        fn.close()


def test_invocations_keep_their_connection_to_a_keep_alive_function(env):
    """A function speaking HTTP/1.1 keep-alive gets a shard's invocations on
    one connection (the invoker keeps it), and one closing each connection
    (HTTP/1.0, as the other tests' function) still gets every record."""
    ports, got = [], []
    cond = threading.Condition()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with cond:
                ports.append(self.client_address[1])
                got.extend(base64.b64decode(r["kinesis"]["data"]) for r in event["Records"])
                cond.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        name, arn = env.stream()
        env.create(EventSourceArn=arn, FunctionName=f"http://127.0.0.1:{server.server_address[1]}/",
                   StartingPosition="TRIM_HORIZON", BatchSize=1)
        want = []
        for i in range(20):
            want += [p["data"] for p in env.put(name, [("k", f"ka-{i}".encode())])]
            with cond:
                assert cond.wait_for(lambda: len(got) > i, WAIT), got
        assert got == want
        assert len(ports) >= 20 and len(set(ports)) < len(ports) / 4, ports
    finally:
        server.shutdown()
        server.server_close()


def test_a_function_that_closes_kept_connections_gets_each_batch_once(env):
    """A function that answers as HTTP/1.1 keep-alive but closes the
    connection after every answer: the kept connection is found closed and
    each batch goes once on a new one (no function error, no batch twice)."""
    got = []
    cond = threading.Condition()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with cond:
                got.append([base64.b64decode(r["kinesis"]["data"]) for r in event["Records"]])
                cond.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            self.close_connection = True  # without saying so

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        name, arn = env.stream()
        m = env.create(EventSourceArn=arn, FunctionName=f"http://127.0.0.1:{server.server_address[1]}/",
                       StartingPosition="TRIM_HORIZON", BatchSize=1)
        want = []
        for i in range(15):
            want += [p["data"] for p in env.put(name, [("k", f"cl-{i}".encode())])]
            with cond:
                assert cond.wait_for(lambda: len(got) > i, WAIT), got
        assert got == [[d] for d in want], got
        assert env.get(m["UUID"])["LastProcessingResult"] == "OK"
    finally:
        server.shutdown()
        server.server_close()
