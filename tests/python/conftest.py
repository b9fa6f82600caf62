"""Fixtures of the AWS SDK compatibility suite: a `riffle server` started for the
session (its own data directory under target/, the native protocol off to the
side, HTTP on a free port) and a boto3 Kinesis client pointed at it."""

import os
import shutil
import signal
import subprocess
import tempfile

import boto3
import pytest
from botocore.config import Config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


BINARY = os.environ.get("RIFFLE_BIN", os.path.join(ROOT, "target", "debug", "riffle"))


def start_server(*extra):
    """Starts `riffle server` in a fresh data directory under target/ with the
    HTTP API on a free port; returns (process, host:port, data directory)."""
    if not os.path.exists(BINARY):
        pytest.fail(f"{BINARY} is missing: run `cargo build -p riffle` first")
    tmp_root = os.path.join(ROOT, "target", "tmp")
    os.makedirs(tmp_root, exist_ok=True)
    data = tempfile.mkdtemp(prefix="py-", dir=tmp_root)
    proc = subprocess.Popen(
        [BINARY, "server", "--data-dir", os.path.join(data, "d"), "--listen", "127.0.0.1:0",
         "--http", "127.0.0.1:0", "--no-pin", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("RIFFLE_")},
    )
    http = None
    for line in proc.stdout:
        if line.startswith("riffle http listening on "):
            http = line.split()[-1]
            break
    if http is None:
        proc.kill()
        pytest.fail("the server did not start")
    return proc, http, data


def stop_server(proc, data):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    proc, http, data = start_server()
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
