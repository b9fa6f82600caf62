"""Captures Kinesis requests signed by botocore (the AWS SDK for Python) at a fixed
time, in the request-file format of ../sigv4-test-suite, for tests/sigv4_vectors.rs:
an independent signer of the JSON-protocol requests Riffle's gateway verifies.

    python3 capture.py    # rewrites the *.txt files here; needs boto3

Key AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, us-east-1, 20150830T123600Z."""

import datetime
import hashlib
import os
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore.auth
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
FIXED = datetime.datetime(2015, 8, 30, 12, 36, 0, tzinfo=datetime.timezone.utc)
ENDPOINT = "http://localhost:4567"


def write(name, method, url, headers, body):
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {target} HTTP/1.1", f"Host:{parts.netloc}"]
    for k, v in headers.items():
        v = v.decode() if isinstance(v, bytes) else v
        if k.lower() in ("host", "content-length", "amz-sdk-invocation-id"):
            continue  # the first two written by HTTP, the last random and unsigned
        if k.lower() == "user-agent":
            v = "Boto3 (captured; unsigned)"
        lines.append(f"{k}:{v}")
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(("\n".join(lines) + "\n\n").encode() + (body or b""))


def client(captured, content_sha256=False):
    c = boto3.client("kinesis", endpoint_url=ENDPOINT, region_name="us-east-1",
                     aws_access_key_id=KEY, aws_secret_access_key=SECRET)

    def add_hash(request, **_):
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(request.body or b"").hexdigest()

    def send(request, **_):
        captured.append(request)
        return AWSResponse(request.url, 200, {"content-type": "application/x-amz-json-1.1"},
                           mock.Mock(stream=lambda: iter([b"{}"])))
    if content_sha256:
        c.meta.events.register("before-sign.kinesis", add_hash)
    c.meta.events.register("before-send.kinesis", send)
    return c


class BodyKeepingQueryAuth(SigV4QueryAuth):
    """botocore's query signer, keeping the body where it is (botocore's own
    presigner moves JSON members into the query and sends no body)."""

    def _modify_request_before_signing(self, request):
        data, request.data = request.data, b""
        super()._modify_request_before_signing(request)
        request.data = data


def main():
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=FIXED):
        for name, sha, call in [
            ("list-streams-header.txt", False, lambda c: c.list_streams()),
            ("put-record-header.txt", False,
             lambda c: c.put_record(StreamName="s", PartitionKey="k", Data=b"\x00payload")),
            ("put-record-content-sha256.txt", True,
             lambda c: c.put_record(StreamName="s", PartitionKey="k", Data=b"\x00payload")),
        ]:
            captured = []
            try:
                call(client(captured, sha))
            except Exception:
                pass  # the fake answer need not parse; the request is captured
            r = captured[0]
            write(name, r.method, r.url, dict(r.headers), r.body)

        url = client([]).generate_presigned_url("list_streams", ExpiresIn=300)
        write("list-streams-presigned.txt", "POST", url, {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Kinesis_20131202.ListStreams"}, b"")

        request = AWSRequest(method="POST", url=ENDPOINT + "/", data=b'{"Limit":10}', headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Kinesis_20131202.ListStreams"})
        BodyKeepingQueryAuth(Credentials(KEY, SECRET), "kinesis", "us-east-1", expires=300).add_auth(request)
        write("list-streams-presigned-body.txt", "POST", request.url, dict(request.headers), request.data)


if __name__ == "__main__":
    main()
