"""TLS on the HTTP API: `riffle cert` writes a self-signed pair, the server serves
it with ALPN h2 and http/1.1, and boto3 and curl trust it through the certificate."""

import os
import subprocess
import tempfile

import boto3
from botocore.config import Config

from conftest import BINARY, ROOT, start_server, stop_server


def test_tls_with_alpn_h2():
    certs = tempfile.mkdtemp(prefix="tls-", dir=os.path.join(ROOT, "target", "tmp"))
    out = subprocess.run([BINARY, "cert", "--out", certs], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cert, key = os.path.join(certs, "cert.pem"), os.path.join(certs, "key.pem")
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    proc, http, data = start_server("--tls-cert", cert, "--tls-key", key)
    try:
        port = http.rsplit(":", 1)[1]
        endpoint = f"https://localhost:{port}"
        kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                               verify=cert, config=Config(retries={"max_attempts": 1}))
        kinesis.create_stream(StreamName="tls", ShardCount=1)
        kinesis.put_record(StreamName="tls", PartitionKey="k", Data=b"secret data")
        assert "tls" in kinesis.list_streams()["StreamNames"]
        # ALPN picks h2; plain HTTP on the TLS port is refused.
        for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
            r = subprocess.run(
                ["curl", "-s", flag, "--cacert", cert, "-X", "POST", endpoint + "/",
                 "-H", "X-Amz-Target: Kinesis_20131202.ListStreams",
                 "-H", "Content-Type: application/x-amz-json-1.1", "-d", "{}",
                 "-w", "\n%{http_version} %{http_code}"],
                capture_output=True, text=True, timeout=30)
            assert r.stdout.rsplit("\n", 1)[1] == f"{version} 200", r
        plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                f"http://localhost:{port}/"], capture_output=True, text=True, timeout=30)
        assert plain.stdout != "200"
    finally:
        stop_server(proc, data)
