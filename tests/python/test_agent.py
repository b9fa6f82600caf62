"""`riffle agent`, the Kinesis Agent work-alike, end to end: the real server,
log files written and rotated the way logrotate does (rename with `create`,
`copytruncate`), the agent as a subprocess, and the records read back with
boto3. Every line is delivered (exactly once in the happy path, at least once
across kill -9 of the agent and a restart of the server); agent.json errors
name the key; Firehose flows deliver; CSVTOJSON and LOGTOJSON records are the
agent's JSON. Synchronised on records appearing in the stream and on the
checkpoint file, not on fixed sleeps."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import boto3
import pytest
from botocore.config import Config

from conftest import BINARY, ROOT, free_port, start_server_native, stop_server
from test_firehose import ROLE, wait_for_lines


def kinesis_client(http):
    return boto3.client("kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 3}))


@pytest.fixture(scope="module")
def server():
    proc, _native, http, data = start_server_native()
    yield http, os.path.join(data, "d")
    stop_server(proc, data)


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="agent-", dir=os.path.join(ROOT, "target", "tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def create_stream(kinesis, name, shards=2):
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})


def read_all(kinesis, name, keys=False):
    """Every record of the stream, shard by shard, as bytes (with its
    partition key if `keys`)."""
    out = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = kinesis.get_records(ShardIterator=it, Limit=10000)
            out += [(rec["Data"], rec["PartitionKey"]) if keys else rec["Data"] for rec in r["Records"]]
            if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                break
            it = r.get("NextShardIterator")
    return out


def wait_for(kinesis, name, expected, timeout=60, agent=None):
    """Polls the stream until it holds every expected record (there is no
    event to wait on from outside); returns everything read."""
    deadline = time.monotonic() + timeout
    while True:
        got = read_all(kinesis, name)
        missing = set(expected) - set(got)
        if not missing:
            return got
        if agent is not None and agent.poll() is not None:
            pytest.fail(f"the agent exited ({agent.returncode}): {agent.log()[-3000:]}")
        if time.monotonic() > deadline:
            log = agent.log()[-3000:] if agent else ""
            pytest.fail(f"{len(missing)} records missing, e.g. {sorted(missing)[:3]}\n{log}")
        time.sleep(0.2)


class Agent:
    def __init__(self, work, config):
        self.conf = os.path.join(work, "agent.json")
        with open(self.conf, "w") as f:
            json.dump(config, f)
        self.log_path = os.path.join(work, f"agent-{time.monotonic_ns()}.log")
        self.proc = subprocess.Popen([BINARY, "agent", "--config", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"),
                                     env={k: v for k, v in os.environ.items() if not k.startswith("RIFFLE_")})

    def poll(self):
        return self.proc.poll()

    @property
    def returncode(self):
        return self.proc.returncode

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.log()[-3000:]

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


def config(work, http, flows, **top):
    return {"checkpointFile": os.path.join(work, "checkpoints"),
            "kinesis.endpoint": f"http://{http}", "firehose.endpoint": f"http://{http}",
            "awsAccessKeyId": "AKIDEXAMPLE", "awsSecretAccessKey": "secret",
            "flows": flows, **top}


def kinesis_flow(work, stream, **extra):
    return {"filePattern": os.path.join(work, "app.log*"), "kinesisStream": stream,
            "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000, **extra}


def write(path, lines):
    with open(path, "a") as f:
        f.writelines(line + "\n" for line in lines)


def numbered(prefix, start, end):
    return [f"{prefix} line {i:07d}" for i in range(start, end)]


def as_lines(records):
    return [r.decode().rstrip("\n") for r in records]


def test_every_line_once_through_rename_and_copytruncate(server, work):
    http, _ = server
    kinesis = kinesis_client(http)
    create_stream(kinesis, "agent-rotate")
    log = os.path.join(work, "app.log")
    write(log, numbered("a", 0, 2000))
    agent = Agent(work, config(work, http, [kinesis_flow(work, "agent-rotate")]))
    try:
        wait_for(kinesis, "agent-rotate", [f"{l}\n".encode() for l in numbered("a", 0, 2000)], agent=agent)
        # logrotate `create`: rename, a new file at the old name.
        write(log, numbered("b", 0, 500))
        os.rename(log, log + ".1")
        write(log, numbered("c", 0, 500))
        # logrotate `copytruncate`: copy, then truncate in place.
        write(log, numbered("d", 0, 500))
        shutil.copyfile(log, log + ".2")
        with open(log, "r+") as f:
            f.truncate(0)
        write(log, numbered("e", 0, 500))
        expected = numbered("a", 0, 2000) + numbered("b", 0, 500) + numbered("c", 0, 500) \
            + numbered("d", 0, 500) + numbered("e", 0, 500)
        got = wait_for(kinesis, "agent-rotate", [f"{l}\n".encode() for l in expected], agent=agent)
    finally:
        agent.stop()
    # Exactly once on this happy path, each record the line with its newline.
    assert sorted(as_lines(got)) == sorted(expected)
    cp = json.load(open(os.path.join(work, "checkpoints")))
    [(flow_id, pos)] = cp["flows"].items()
    assert flow_id == f"kinesis:agent-rotate:{work}/app.log*"
    assert pos["offset"] == os.path.getsize(log)


def test_kill_9_and_restart_lose_nothing(server, work):
    http, _ = server
    kinesis = kinesis_client(http)
    create_stream(kinesis, "agent-kill")
    log = os.path.join(work, "app.log")
    write(log, numbered("k", 0, 50_000))
    cfg = config(work, http, [kinesis_flow(work, "agent-kill", maxBufferSizeRecords=100)])
    agent = Agent(work, cfg)
    checkpoint = os.path.join(work, "checkpoints")
    deadline = time.monotonic() + 60
    # Killed once its checkpoint shows progress, with records still to send.
    while not os.path.exists(checkpoint) or json.load(open(checkpoint))["flows"] == {}:
        assert agent.poll() is None and time.monotonic() < deadline, agent.log()[-3000:]
        time.sleep(0.05)
    agent.kill()
    write(log, numbered("k", 50_000, 60_000))
    os.rename(log, log + ".1")
    write(log, numbered("k", 60_000, 61_000))
    agent = Agent(work, cfg)
    try:
        expected = numbered("k", 0, 61_000)
        got = wait_for(kinesis, "agent-kill", [f"{l}\n".encode() for l in expected], agent=agent)
    finally:
        agent.stop()
    lines = as_lines(got)
    duplicates = len(lines) - len(set(lines))
    print(f"kill -9: {len(expected)} lines, {duplicates} delivered twice")
    assert set(lines) == set(expected)
    assert duplicates < 50_000


def test_server_restart_loses_nothing(work):
    port = free_port()
    data = os.path.join(work, "server")

    def start():
        proc = subprocess.Popen(
            [BINARY, "server", "--data-dir", data, "--listen", "127.0.0.1:0", "--http",
             f"127.0.0.1:{port}", "--no-pin"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env={k: v for k, v in os.environ.items() if not k.startswith("RIFFLE_")})
        for line in proc.stdout:
            if line.startswith("riffle http listening on "):
                return proc
        proc.kill()
        pytest.fail("the server did not start")

    server = start()
    http = f"127.0.0.1:{port}"
    kinesis = kinesis_client(http)
    create_stream(kinesis, "agent-restart", shards=1)
    log = os.path.join(work, "app.log")
    write(log, numbered("r", 0, 1000))
    agent = Agent(work, config(work, http, [kinesis_flow(work, "agent-restart")]))
    try:
        wait_for(kinesis, "agent-restart", [f"{l}\n".encode() for l in numbered("r", 0, 1000)], agent=agent)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        write(log, numbered("r", 1000, 3000))
        # The agent retries with backoff while the server is down.
        deadline = time.monotonic() + 30
        while "send failed; retrying" not in agent.log():
            assert time.monotonic() < deadline and agent.poll() is None, agent.log()[-3000:]
            time.sleep(0.1)
        server = start()
        got = wait_for(kinesis, "agent-restart", [f"{l}\n".encode() for l in numbered("r", 0, 3000)],
                       agent=agent)
        assert set(as_lines(got)) == set(numbered("r", 0, 3000))
    finally:
        agent.stop()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_unknown_key_is_refused_by_name(server, work):
    http, _ = server
    agent = Agent(work, config(work, http, [kinesis_flow(work, "s", maxBufferAgeMilis=1000)]))
    assert agent.proc.wait(timeout=30) == 1
    assert "Unknown configuration key: flows[0].maxBufferAgeMilis" in agent.log()
    agent = Agent(work, config(work, http, [kinesis_flow(work, "s", partitionKeyOption="HASH")]))
    assert agent.proc.wait(timeout=30) == 1
    assert "Value(HASH) is not legally accepted by key: partitionKeyOption. Legal values are RANDOM,DETERMINISTIC" \
        in agent.log()


def test_missing_stream_is_retried_until_created(server, work):
    http, _ = server
    kinesis = kinesis_client(http)
    write(os.path.join(work, "app.log"), ["early bird"])
    agent = Agent(work, config(work, http, [kinesis_flow(work, "agent-later")]))
    try:
        deadline = time.monotonic() + 30
        while "ResourceNotFoundException" not in agent.log():
            assert time.monotonic() < deadline and agent.poll() is None, agent.log()[-3000:]
            time.sleep(0.1)
        create_stream(kinesis, "agent-later", shards=1)
        wait_for(kinesis, "agent-later", [b"early bird\n"], agent=agent)
    finally:
        agent.stop()


def test_csvtojson_logtojson_and_deterministic_keys(server, work):
    http, _ = server
    kinesis = kinesis_client(http)
    create_stream(kinesis, "agent-json", shards=1)
    with open(os.path.join(work, "app.log"), "w") as f:
        f.write("value1, value2,valu\n")
    with open(os.path.join(work, "access.log"), "w") as f:
        f.write('123.45.67.89 - - [27/Oct/2000:09:27:09 -0400] "GET /java/javaResources.html HTTP/1.0" 200 10450 "-" "Mozilla/4.6 [en] (X11; U; OpenBSD 2.8 i386; Nav)"\n')
        f.write("not an access log line\n")
    flows = [
        kinesis_flow(work, "agent-json", partitionKeyOption="DETERMINISTIC", dataProcessingOptions=[
            {"optionName": "CSVTOJSON", "customFieldNames": ["a", "b", "c", "d"]}]),
        {"filePattern": os.path.join(work, "access.log"), "kinesisStream": "agent-json",
         "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000,
         "dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "COMBINEDAPACHELOG"}]},
    ]
    agent = Agent(work, config(work, http, flows))
    csv = b'{"a":"value1","b":" value2","c":"valu","d":null}\n'
    apache = (b'{"host":"123.45.67.89","ident":null,"authuser":null,"datetime":"27/Oct/2000:09:27:09 -0400",'
              b'"request":"GET /java/javaResources.html HTTP/1.0","response":"200","bytes":"10450",'
              b'"referer":null,"agent":"Mozilla/4.6 [en] (X11; U; OpenBSD 2.8 i386; Nav)"}\n')
    try:
        got = wait_for(kinesis, "agent-json", [csv, apache], agent=agent)
    finally:
        agent.stop()
    # The line that is not an access log is skipped, as the agent does.
    assert sorted(got) == sorted([csv, apache])
    # DETERMINISTIC: the partition key is the MD5 of the record's data; RANDOM
    # (the default): a Java double in [0, 1e6).
    keys = dict(read_all(kinesis, "agent-json", keys=True))
    assert keys[csv] == hashlib.md5(csv).hexdigest()
    assert 0 <= float(keys[apache]) < 1e6 and "." in keys[apache]


def test_firehose_flow_delivers(server, work):
    http, data_dir = server
    firehose = boto3.client("firehose", endpoint_url=f"http://{http}", region_name="us-east-1",
                            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
    firehose.create_delivery_stream(
        DeliveryStreamName="agent-fh", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::agent-bkt",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})
    log = os.path.join(work, "app.log")
    write(log, numbered("f", 0, 300))
    flow = {"filePattern": os.path.join(work, "app.log*"), "deliveryStream": "agent-fh",
            "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000}
    agent = Agent(work, config(work, http, [flow]))
    try:
        wait_for_lines(data_dir, "agent-bkt", numbered("f", 0, 300), timeout=60)
    finally:
        agent.stop()


def test_signed_requests_pass_sigv4_verification(work):
    conf = os.path.join(work, "riffle.toml")
    with open(conf, "w") as f:
        f.write('access_keys = [{ id = "AKIDAGENT", secret = "agent/secret+key" }]\n')
    proc, _native, http, data = start_server_native("--config", conf, "--auth", "sigv4")
    try:
        kinesis = boto3.client("kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
                               aws_access_key_id="AKIDAGENT", aws_secret_access_key="agent/secret+key")
        create_stream(kinesis, "agent-signed", shards=1)
        write(os.path.join(work, "app.log"), ["signed line"])
        cfg = config(work, http, [kinesis_flow(work, "agent-signed")],
                     awsAccessKeyId="AKIDAGENT", awsSecretAccessKey="agent/secret+key")
        agent = Agent(work, cfg)
        try:
            wait_for(kinesis, "agent-signed", [b"signed line\n"], agent=agent)
        finally:
            agent.stop()
        # A wrong secret is refused by the server; the agent keeps retrying.
        cfg["awsSecretAccessKey"] = "wrong"
        cfg["checkpointFile"] = os.path.join(work, "checkpoints-2")
        agent = Agent(work, cfg)
        try:
            deadline = time.monotonic() + 30
            while "InvalidSignatureException" not in agent.log():
                assert time.monotonic() < deadline and agent.poll() is None, agent.log()[-3000:]
                time.sleep(0.1)
        finally:
            agent.stop()
    finally:
        stop_server(proc, data)
