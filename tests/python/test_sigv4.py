"""SigV4 verification (`--auth sigv4`, keys from the config file): boto3 with the
configured key works; a wrong secret, an unknown key and an unsigned request get
AWS's errors."""

import os
import tempfile
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ROOT, start_server, stop_server


def client(endpoint, key, secret):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


def test_sigv4_is_verified():
    conf_dir = tempfile.mkdtemp(prefix="auth-", dir=os.path.join(ROOT, "target", "tmp"))
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        f.write('access_keys = [{ id = "AKIDRIFFLE", secret = "s3cr3t/key+value" }]\n')
    proc, http, data = start_server("--config", conf, "--auth", "sigv4")
    try:
        endpoint = f"http://{http}"
        good = client(endpoint, "AKIDRIFFLE", "s3cr3t/key+value")
        good.create_stream(StreamName="signed", ShardCount=1)
        good.put_records(StreamName="signed", Records=[{"PartitionKey": "k", "Data": b"x" * 1000}])
        assert good.list_streams()["StreamNames"] == ["signed"]

        def code(c):
            with pytest.raises(ClientError) as e:
                c.list_streams()
            return e.value.response["Error"]["Code"]

        assert code(client(endpoint, "AKIDRIFFLE", "wrong")) == "InvalidSignatureException"
        assert code(client(endpoint, "AKIDOTHER", "s3cr3t/key+value")) == "UnrecognizedClientException"
        req = urllib.request.Request(endpoint + "/", data=b"{}", method="POST", headers={
            "X-Amz-Target": "Kinesis_20131202.ListStreams",
            "Content-Type": "application/x-amz-json-1.1"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        # AWS answers a JSON-protocol request without a signature with 400
        # (recorded by kinesalite's suite).
        assert e.value.code == 400
        assert b"MissingAuthenticationTokenException" in e.value.read()
    finally:
        stop_server(proc, data)
