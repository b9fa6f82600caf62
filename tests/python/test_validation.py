"""Input validation as AWS answers it: ValidationException with the service
model's constraints in AWS's words (one error, several joined by "; "),
SerializationException for a member of the wrong type, and the semantic checks
AWS answers with InvalidArgumentException. Through boto3 with its client-side
validation off (botocore would refuse these before sending) and through raw
JSON 1.1 and CBOR requests."""

import json
import urllib.error
import urllib.request

import boto3
import cbor2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

NAME_PATTERN = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
# The current model's limit on a record's data (10 MiB).
DATA_MAX = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def unchecked(server):
    """A boto3 client that sends whatever it is given."""
    return boto3.client(
        "kinesis",
        endpoint_url=server,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def stream(kinesis):
    kinesis.create_stream(StreamName="validated", ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName="validated")
    return "validated"


def violation(value, path, constraint):
    shown = "null" if value is None else f"'{value}'"
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def refusal(call):
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response["Error"]
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], err["Code"], err.get("Message", "")


def check_validation(message, expected):
    """`message` lists exactly `expected`, in any order (AWS's order is its own)."""
    n = len(expected)
    prefix = "1 validation error detected: " if n == 1 else f"{n} validation errors detected: "
    assert message.startswith(prefix), message
    assert sorted(message[len(prefix):].split("; ")) == sorted(expected), message


def raw(server, target, body, content_type="application/x-amz-json-1.1"):
    """POSTs `body` (bytes) to `target`; returns (status, headers, body bytes)."""
    req = urllib.request.Request(server + "/", data=body, method="POST", headers={
        "Content-Type": content_type,
        "X-Amz-Target": f"Kinesis_20131202.{target}",
    })
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_one_violation(unchecked, stream):
    key = "k" * 257
    status, code, message = refusal(
        lambda: unchecked.put_record(StreamName=stream, PartitionKey=key, Data=b"x"))
    assert (status, code) == (400, "ValidationException")
    check_validation(message, [violation(
        key, "partitionKey", "Member must have length less than or equal to 256")])
    # A stream name with spaces breaks the name pattern.
    status, code, message = refusal(lambda: unchecked.describe_stream(StreamName="my stream"))
    assert (status, code) == (400, "ValidationException")
    check_validation(message, [violation("my stream", "streamName", NAME_PATTERN)])


def test_several_violations(unchecked):
    status, code, message = refusal(
        lambda: unchecked.create_stream(StreamName="", ShardCount=0))
    assert (status, code) == (400, "ValidationException")
    check_validation(message, [
        violation("0", "shardCount", "Member must have value greater than or equal to 1"),
        violation("", "streamName", NAME_PATTERN),
        violation("", "streamName", "Member must have length greater than or equal to 1"),
    ])
    # Required members: neither the records nor a stream.
    status, code, message = refusal(lambda: unchecked.put_records())
    check_validation(message, [
        violation(None, "records", "Member must not be null"),
        violation(None, "streamName", "Member must not be null"),
    ])


def test_data_at_the_models_limit(unchecked, stream):
    status, code, message = refusal(lambda: unchecked.put_record(
        StreamName=stream, PartitionKey="k", Data=b"\0" * (DATA_MAX + 1)))
    assert (status, code) == (400, "ValidationException")
    buffer = f"java.nio.HeapByteBuffer[pos=0 lim={DATA_MAX + 1} cap={DATA_MAX + 1}]"
    check_validation(message, [violation(
        buffer, "data", f"Member must have length less than or equal to {DATA_MAX}")])


def test_put_records_reports_each_records_violations(unchecked, stream):
    # The JSON fast path hands an invalid batch to the validator: the message
    # names the record (1-based) and its member.
    records = [{"Data": b"a", "PartitionKey": "a"}, {"Data": b"b", "PartitionKey": ""},
               {"Data": b"c", "PartitionKey": "c", "ExplicitHashKey": "01"}]
    status, code, message = refusal(
        lambda: unchecked.put_records(StreamName=stream, Records=records))
    assert (status, code) == (400, "ValidationException")
    check_validation(message, [
        violation("", "records.2.member.partitionKey",
                  "Member must have length greater than or equal to 1"),
        violation("01", "records.3.member.explicitHashKey",
                  "Member must satisfy regular expression pattern: ^(0|([1-9]\\d{0,38}))$"),
    ])
    # Valid records still go the fast way.
    out = unchecked.put_records(StreamName=stream, Records=records[:1])
    assert out["FailedRecordCount"] == 0


def test_semantic_checks_are_invalid_argument(unchecked, stream):
    status, code, message = refusal(lambda: unchecked.list_shards())
    assert (status, code, message) == (
        400, "InvalidArgumentException", "Either NextToken or StreamName should be provided.")
    status, code, message = refusal(lambda: unchecked.get_shard_iterator(
        StreamName=stream, ShardId="shardId-0", ShardIteratorType="AT_SEQUENCE_NUMBER"))
    assert (status, code) == (400, "InvalidArgumentException")
    assert message.endswith("Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber.")


def test_serialization_exception(server, stream):
    for body, message in [
        ({"StreamName": True}, "class java.lang.Boolean can not be converted to an String"),
        ({"StreamName": stream, "PartitionKey": "k", "Data": 12},
         "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob"),
        ({"StreamName": stream, "PartitionKey": "k", "Data": "23456"},
         "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"),
    ]:
        status, headers, out = raw(server, "PutRecord", json.dumps(body).encode())
        assert status == 400
        assert headers["x-amzn-ErrorType"] == "SerializationException"
        assert json.loads(out) == {"__type": "SerializationException", "Message": message}
    # An empty body: AWS answers without a message.
    status, _, out = raw(server, "ListStreams", b"")
    assert (status, json.loads(out)) == (400, {"__type": "SerializationException"})


def test_raw_json_and_cbor(server, stream):
    status, _, out = raw(server, "DescribeStream", b"{}")
    assert status == 400
    assert json.loads(out) == {"__type": "ValidationException", "message": (
        "1 validation error detected: " + violation(None, "streamName", "Member must not be null"))}
    # CBOR: the blob arrives as a byte string and is checked by its length.
    body = cbor2.dumps({"StreamName": stream, "PartitionKey": "", "Data": b"x"})
    status, headers, out = raw(server, "PutRecord", body, "application/x-amz-cbor-1.1")
    assert status == 400
    assert headers["Content-Type"] == "application/x-amz-cbor-1.1"
    assert cbor2.loads(out) == {"__type": "ValidationException", "message": (
        "1 validation error detected: "
        + violation("", "partitionKey", "Member must have length greater than or equal to 1"))}
    body = cbor2.dumps({"StreamName": stream, "PartitionKey": "k", "Data": b"x"})
    status, _, out = raw(server, "PutRecord", body, "application/x-amz-cbor-1.1")
    assert status == 200 and cbor2.loads(out)["ShardId"] == "shardId-000000000000"
    # An operation the model does not have: no message.
    status, _, out = raw(server, "PutRecordz", b"{}")
    assert (status, json.loads(out)) == (400, {"__type": "UnknownOperationException"})
