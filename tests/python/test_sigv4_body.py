"""SigV4 binds the body (`--auth sigv4`, riffle-aws `sigv4::verify`): requests
botocore signs, with or without `x-amz-content-sha256`, are accepted; the same
signed request carrying another body is refused; `UNSIGNED-PAYLOAD` is refused
for Kinesis; query-string ("presigned") signatures are verified like header ones,
body included, until X-Amz-Expires runs out. Without `--auth`, a malformed
signature still gets AWS's IncompleteSignatureException (connection.js) and an
unsigned request is served.

Signature refusals of a JSON-protocol service are HTTP 400 (kinesalite's
connection.js, recorded against AWS)."""

import hashlib
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials

from conftest import ROOT, start_server, stop_server

KEY, SECRET = "AKIDRIFFLE", "s3cr3t/key+value"
AMZ_JSON = "application/x-amz-json-1.1"
MISMATCH = ("The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details.")


@pytest.fixture(scope="module")
def endpoint():
    conf_dir = tempfile.mkdtemp(prefix="auth-body-", dir=os.path.join(ROOT, "target", "tmp"))
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        f.write(f'access_keys = [{{ id = "{KEY}", secret = "{SECRET}" }}]\n')
    proc, http, data = start_server("--config", conf, "--auth", "sigv4")
    yield f"http://{http}"
    stop_server(proc, data)


def client(endpoint, content_sha256=None):
    """A boto3 Kinesis client; `content_sha256`: "body" adds the body's hash as
    X-Amz-Content-SHA256 before signing, any other string is sent as is."""
    c = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                     config=Config(retries={"max_attempts": 1}))
    if content_sha256 is not None:
        def add(request, **_):
            value = content_sha256
            if value == "body":
                value = hashlib.sha256(request.body or b"").hexdigest()
            request.headers["X-Amz-Content-SHA256"] = value
        c.meta.events.register("before-sign.kinesis", add)
    return c


def capture(c, call):
    """The request `call` makes with client `c`, signed but not sent:
    (url, headers, body)."""
    captured = []

    def send(request, **_):
        captured.append(request)
        return AWSResponse(request.url, 200, {"content-type": AMZ_JSON},
                           mock.Mock(stream=lambda: iter([b"{}"])))
    c.meta.events.register("before-send.kinesis", send)
    try:
        call(c)
    except Exception:
        pass  # the fake answer need not parse: the request is what we want
    assert captured, "nothing was signed"
    r = captured[0]
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in r.headers.items()}
    body = r.body.encode() if isinstance(r.body, str) else (r.body or b"")
    return r.url, headers, body


def send(url, headers, body):
    """POSTs exactly these headers and body; returns (status, JSON answer)."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, json.loads(res.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def error(answer):
    kind = answer.get("__type", "").split("#")[-1]
    return kind, answer.get("message", answer.get("Message"))


def put_record(data):
    return lambda c: c.put_record(StreamName="bound", PartitionKey="k", Data=data)


@pytest.fixture(scope="module")
def stream(endpoint):
    c = client(endpoint)
    c.create_stream(StreamName="bound", ShardCount=1)
    c.get_waiter("stream_exists").wait(StreamName="bound", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return "bound"


def test_botocore_signed_requests_with_and_without_content_sha256(endpoint, stream):
    for c in [client(endpoint), client(endpoint, content_sha256="body")]:
        assert c.put_record(StreamName=stream, PartitionKey="k", Data=b"\x00x")["ShardId"]
        assert stream in c.list_streams()["StreamNames"]


def test_a_captured_request_with_another_body_is_refused(endpoint, stream):
    # Without X-Amz-Content-SHA256: the body's hash is part of the signature.
    url, headers, body = capture(client(endpoint), put_record(b"mine"))
    assert send(url, headers, body)[0] == 200
    swapped = body.replace(b"bWluZQ==", b"dGhlaXJz")  # "mine" -> "theirs"
    assert swapped != body
    status, answer = send(url, headers, swapped)
    assert (status, error(answer)) == (400, ("InvalidSignatureException", MISMATCH))

    # With it: the header must be the hash of the body received.
    url, headers, body = capture(client(endpoint, content_sha256="body"), put_record(b"mine"))
    assert "X-Amz-Content-SHA256" in headers
    assert send(url, headers, body)[0] == 200
    swapped = body.replace(b"bWluZQ==", b"dGhlaXJz")
    status, answer = send(url, headers, swapped)
    assert (status, error(answer)) == (400, (
        "InvalidSignatureException",
        "The provided 'x-amz-content-sha256' header does not match what was computed."))
    # ...and rewriting the header to match the new body breaks the signature.
    headers = dict(headers, **{"X-Amz-Content-SHA256": hashlib.sha256(swapped).hexdigest()})
    status, answer = send(url, headers, swapped)
    assert (status, error(answer)) == (400, ("InvalidSignatureException", MISMATCH))


def test_unsigned_payload_is_refused_for_kinesis(endpoint, stream):
    url, headers, body = capture(client(endpoint, content_sha256="UNSIGNED-PAYLOAD"),
                                 put_record(b"x"))
    status, answer = send(url, headers, body)
    assert (status, error(answer)) == (400, (
        "InvalidSignatureException",
        "This service does not accept 'UNSIGNED-PAYLOAD': sign the payload's SHA-256."))
    url, headers, body = capture(
        client(endpoint, content_sha256="STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), put_record(b"x"))
    status, answer = send(url, headers, body)
    assert status == 400 and error(answer)[0] == "InvalidSignatureException"
    assert "does not support" in error(answer)[1]


class BodyKeepingQueryAuth(SigV4QueryAuth):
    """botocore's query-string signer, keeping the JSON body in the body
    (botocore's presigner moves its members into the query and sends none)."""

    def _modify_request_before_signing(self, request):
        data, request.data = request.data, b""
        super()._modify_request_before_signing(request)
        request.data = data


def presigned(endpoint, target, body, expires=300):
    request = AWSRequest(method="POST", url=endpoint + "/", data=body, headers={
        "Content-Type": AMZ_JSON, "X-Amz-Target": f"Kinesis_20131202.{target}"})
    BodyKeepingQueryAuth(Credentials(KEY, SECRET), "kinesis", "us-east-1",
                         expires=expires).add_auth(request)
    return request.url, dict(request.headers)


def test_query_signed_requests_are_verified_body_included(endpoint, stream):
    url, headers = presigned(endpoint, "ListStreams", b"{}")
    assert "X-Amz-Signature=" in url and "Authorization" not in headers
    status, answer = send(url, headers, b"{}")
    assert status == 200 and stream in answer["StreamNames"]
    # Another body under the same signature.
    status, answer = send(url, headers, b'{"Limit": 1}')
    assert (status, error(answer)) == (400, ("InvalidSignatureException", MISMATCH))
    # A changed query parameter.
    status, answer = send(url.replace("X-Amz-Expires=300", "X-Amz-Expires=301"), headers, b"{}")
    assert (status, error(answer)) == (400, ("InvalidSignatureException", MISMATCH))
    # Both forms at once.
    status, answer = send(url, dict(headers, Authorization="AWS4-HMAC-SHA256 Credential=x"), b"{}")
    assert (status, error(answer)) == (400, (
        "InvalidSignatureException",
        "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."))
    # Past its X-Amz-Expires.
    url, headers = presigned(endpoint, "ListStreams", b"{}", expires=1)
    time.sleep(2.2)
    status, answer = send(url, headers, b"{}")
    assert status == 400 and error(answer)[0] == "InvalidSignatureException"
    assert error(answer)[1].startswith("Signature expired:")


def test_a_botocore_presigned_url_passes_authentication(endpoint, stream):
    """botocore's own presigner: no body, the members in the query, content-type
    and x-amz-target signed. Riffle reads members from the body only (as AWS's
    JSON services do), so the answer is whatever an empty body gets, but not a
    signature refusal."""
    url = client(endpoint).generate_presigned_url("list_streams", ExpiresIn=300)
    headers = {"Content-Type": AMZ_JSON, "X-Amz-Target": "Kinesis_20131202.ListStreams"}
    status, answer = send(url, headers, b"")
    assert error(answer)[0] not in ("InvalidSignatureException", "IncompleteSignatureException",
                                    "MissingAuthenticationTokenException",
                                    "UnrecognizedClientException"), (status, answer)


def test_no_signature_when_verifying(endpoint):
    status, answer = send(endpoint + "/", {"Content-Type": AMZ_JSON,
                                           "X-Amz-Target": "Kinesis_20131202.ListStreams"}, b"{}")
    assert (status, error(answer)) == (400, ("MissingAuthenticationTokenException",
                                             "Missing Authentication Token"))


def test_without_verification_a_malformed_signature_is_still_answered(server):
    """The session server runs without --auth: an unsigned request is served, a
    malformed Authorization gets AWS's IncompleteSignatureException."""
    plain = {"Content-Type": AMZ_JSON, "X-Amz-Target": "Kinesis_20131202.ListStreams"}
    assert send(server + "/", plain, b"{}")[0] == 200
    status, answer = send(server + "/", dict(plain, Authorization="X"), b"{}")
    assert (status, error(answer)) == (400, (
        "IncompleteSignatureException",
        "Authorization header requires 'Credential' parameter. "
        "Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        "Authorization=X"))
    status, answer = send(server + "/?X-Amz-Algorithm", plain, b"{}")
    assert status == 400 and error(answer)[0] == "IncompleteSignatureException"
    # A well-formed signature is not checked: any key, any secret.
    c = boto3.client("kinesis", endpoint_url=server, region_name="us-east-1",
                     aws_access_key_id="ANYONE", aws_secret_access_key="anything",
                     config=Config(retries={"max_attempts": 1}))
    assert "StreamNames" in c.list_streams()
