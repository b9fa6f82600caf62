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


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("RIFFLE_BIN", os.path.join(ROOT, "target", "debug", "riffle"))
    if not os.path.exists(binary):
        pytest.fail(f"{binary} is missing: run `cargo build -p riffle` first")
    tmp_root = os.path.join(ROOT, "target", "tmp")
    os.makedirs(tmp_root, exist_ok=True)
    data = tempfile.mkdtemp(prefix="py-", dir=tmp_root)
    proc = subprocess.Popen(
        [binary, "server", "--data-dir", os.path.join(data, "d"), "--listen", "127.0.0.1:0",
         "--http", "127.0.0.1:0", "--no-pin"],
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
    yield f"http://{http}"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    shutil.rmtree(data, ignore_errors=True)


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
