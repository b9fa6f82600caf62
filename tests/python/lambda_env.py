"""What the Lambda event-source mapping tests share (test_lambda_api.py,
test_lambda_delivery.py): a scripted local function (a threaded http.server
that records every event it receives and answers by a per-test rule), a
server per test module with a `[functions]` table, and helpers."""

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

from conftest import BINARY, ROOT, _log_tail, _server_logs, free_port, start_on, start_server, stop_server  # noqa: F401 (start_on: re-exported)

REGION, ACCOUNT = "us-east-1", "000000000000"
PROBLEM = "PROBLEM: Function call failed"
WAIT = 20  # seconds any single expected outcome may take

# AWS's create answer for a Kinesis mapping (docs/lambda-design.md §1): every key.
GOLDEN_KEYS = {
    "UUID", "BatchSize", "MaximumBatchingWindowInSeconds", "ParallelizationFactor",
    "EventSourceArn", "EventSourceMappingArn", "FunctionArn", "LastModified",
    "LastProcessingResult", "State", "StateTransitionReason", "DestinationConfig",
    "StartingPosition", "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError",
    "MaximumRetryAttempts", "TumblingWindowInSeconds", "FunctionResponseTypes",
}


# ---------------------------------------------------------------- the function

class Function:
    """A Lambda-contract function on a threaded http.server. `respond(event, n)`
    (n: the call's index) gives the answer: a JSON-able value (200), or
    (status, body) with body bytes/str/JSON-able, or (status, body, headers).
    Every call is recorded (`calls`: dicts with event, raw body, headers, path)
    before it is answered; waits are on a Condition."""

    def __init__(self, respond=None):
        self.respond = respond or (lambda event, n: {})
        self.calls = []
        self.cond = threading.Condition()
        self.in_flight = 0
        self.max_in_flight = 0
        fn = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                event = json.loads(raw)
                with fn.cond:
                    n = len(fn.calls)
                    fn.calls.append({"event": event, "raw": raw, "path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
                    fn.in_flight += 1
                    fn.max_in_flight = max(fn.max_in_flight, fn.in_flight)
                    fn.cond.notify_all()
                try:
                    answer = fn.respond(event, n)
                finally:
                    with fn.cond:
                        fn.in_flight -= 1
                        fn.cond.notify_all()
                status, headers = 200, {}
                if isinstance(answer, tuple):
                    status, answer, *rest = answer
                    headers = rest[0] if rest else {}
                body = answer if isinstance(answer, bytes) else (
                    answer.encode() if isinstance(answer, str) else json.dumps(answer).encode())
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the server went away (killed) mid-invocation

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = (f"http://127.0.0.1:{self.server.server_address[1]}"
                    "/2015-03-31/functions/function/invocations")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def events(self):
        with self.cond:
            return [c["event"] for c in self.calls]

    def records(self):
        return [r for e in self.events() for r in e["Records"]]

    def data(self):
        return [base64.b64decode(r["kinesis"]["data"]) for r in self.records()]

    def wait(self, done, what="", timeout=WAIT):
        """Waits until `done(self)` holds (checked on every call's arrival)."""
        with self.cond:
            ok = self.cond.wait_for(lambda: done(self), timeout)
        assert ok, f"timed out waiting for {what}: got {len(self.calls)} calls, data {self.data()!r}"[:3000]

    def wait_data(self, expected, timeout=WAIT):
        """Waits until every one of `expected` (bytes) has been received."""
        want = set(expected)
        self.wait(lambda f: want <= set(f.data()), f"{len(want)} records", timeout)


def batch_data(event):
    return [base64.b64decode(r["kinesis"]["data"]) for r in event["Records"]]


def seqs_of(event):
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


# ---------------------------------------------------------------- the server

class Env:
    """A server, its clients, and what a test creates (deleted at the end)."""

    def __init__(self, http_addr):
        self.endpoint = f"http://{http_addr}"
        self.kinesis = client("kinesis", self.endpoint)
        self.aws_lambda = client("lambda", self.endpoint)
        self.raw_lambda = client("lambda", self.endpoint, parameter_validation=False)

    def stream(self, shards=1):
        name = f"esm-{uuid.uuid4().hex[:8]}"
        self.kinesis.create_stream(StreamName=name, ShardCount=shards)
        summary = lambda: self.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]  # noqa: E731
        s = until(lambda: (s := summary())["StreamStatus"] == "ACTIVE" and s, f"{name} ACTIVE")
        return name, s["StreamARN"]

    def put(self, stream, items):
        """Puts (key, data) pairs in order, one PutRecords call per 100;
        gives each as {key, data, seq, shard}."""
        out = []
        for i in range(0, len(items), 100):
            chunk = items[i:i + 100]
            got = self.kinesis.put_records(StreamName=stream, Records=[
                {"PartitionKey": k, "Data": d} for k, d in chunk])
            assert got["FailedRecordCount"] == 0, got
            out += [{"key": k, "data": d, "seq": r["SequenceNumber"], "shard": r["ShardId"]}
                    for (k, d), r in zip(chunk, got["Records"])]
        return out

    def create(self, **kw):
        got = self.aws_lambda.create_event_source_mapping(**kw)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 202, got
        return got

    def get(self, mapping_uuid):
        return self.aws_lambda.get_event_source_mapping(UUID=mapping_uuid)

    def wait_state(self, mapping_uuid, state):
        """Until Get shows `state` (or fails with the error code `state`)."""
        def shown():
            try:
                return self.get(mapping_uuid)["State"]
            except ClientError as e:
                return e.response["Error"]["Code"]
        until(lambda: shown() == state, f"{mapping_uuid} {state}")

    def read_all(self, stream):
        """Every record of a 1-shard stream (GetRecords from TRIM_HORIZON)."""
        shard = self.kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        it = self.kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got = self.kinesis.get_records(ShardIterator=it, Limit=10000)
        return got["Records"]

    def wait_records(self, stream, count):
        return until(lambda: len(r := self.read_all(stream)) >= count and r,
                     f"{count} records in {stream}")


def until(probe, what, timeout=WAIT):
    """Polls observable state (there is no event to wait on from outside the
    server) until `probe()` gives a true value, and gives it."""
    deadline = time.monotonic() + timeout
    while not (got := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return got


def shown(answer):
    """An answer's members but ResponseMetadata and LastModified."""
    return {k: v for k, v in answer.items() if k not in ("ResponseMetadata", "LastModified")}


def client(service, endpoint, parameter_validation=True):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 1},
                                      parameter_validation=parameter_validation))


def refused(call, **kw):
    """(error code, message, HTTP status) of a call that must fail."""
    with pytest.raises(ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["Error"]["Code"], r["Error"].get("Message", ""), r["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def named():
    """The function the shared server's `[functions]` table calls `billing`."""
    fn = Function()
    yield fn
    fn.close()


@pytest.fixture(scope="module")
def shared(named):
    conf_dir = tempfile.mkdtemp(prefix="esm-conf-", dir=os.path.join(ROOT, "target", "tmp"))
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        f.write(f'[functions]\nbilling = "{named.url}"\n')
    proc, http_addr, data = start_server("--config", conf)
    yield Env(http_addr)
    stop_server(proc, data)
    shutil.rmtree(conf_dir, ignore_errors=True)


@pytest.fixture
def env(shared):
    """The shared server; the mappings the test made are deleted after it and
    its functions closed."""
    made, functions = [], []
    real_create = shared.create

    def create(**kw):
        got = real_create(**kw)
        made.append(got["UUID"])
        return got

    shared.create = create
    shared.function = lambda respond=None: functions.append(Function(respond)) or functions[-1]
    yield shared
    shared.create = real_create
    for m in made:
        try:
            shared.aws_lambda.delete_event_source_mapping(UUID=m)
        except ClientError:
            pass
    for f in functions:
        f.close()


# ---------------------------------------------------------------- API
