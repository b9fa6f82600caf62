"""Stream states with a configured delay (`--state-delay-ms`): CREATING, then
ACTIVE; UPDATING after a reshard; DELETING, then gone. boto3's waiters see them
as they see AWS's, and operations AWS refuses in a state are refused."""

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from conftest import plain_keyring, start_server, stop_server

WAIT = {"Delay": 0.05, "MaxAttempts": 200}


@pytest.fixture(scope="module")
def slow():
    proc, http, data = start_server("--state-delay-ms", "400", "--kms-keyring", plain_keyring())
    yield boto3.client(
        "kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
        aws_access_key_id="a", aws_secret_access_key="b",
        config=Config(retries={"max_attempts": 1}))
    stop_server(proc, data)


def status(kinesis, name):
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]


def code(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"]


def test_creating_updating_deleting(slow):
    slow.create_stream(StreamName="st", ShardCount=1)
    assert status(slow, "st") == "CREATING"
    assert slow.describe_stream(StreamName="st")["StreamDescription"]["StreamStatus"] == "CREATING"
    # Like AWS: a CREATING stream takes no records.
    assert code(slow.put_record, StreamName="st", Data=b"x", PartitionKey="k") == "ResourceNotFoundException"
    slow.get_waiter("stream_exists").wait(StreamName="st", WaiterConfig=WAIT)
    assert status(slow, "st") == "ACTIVE"
    slow.put_record(StreamName="st", Data=b"x", PartitionKey="k")

    slow.split_shard(StreamName="st", ShardToSplit="shardId-000000000000",
                     NewStartingHashKey=str(2 ** 127))
    assert status(slow, "st") == "UPDATING"
    # Records still flow while UPDATING; another reshard must wait.
    slow.put_record(StreamName="st", Data=b"y", PartitionKey="k")
    assert code(slow.update_shard_count, StreamName="st", TargetShardCount=1,
                ScalingType="UNIFORM_SCALING") == "ResourceInUseException"
    slow.get_waiter("stream_exists").wait(StreamName="st", WaiterConfig=WAIT)
    slow.update_shard_count(StreamName="st", TargetShardCount=1, ScalingType="UNIFORM_SCALING")
    slow.get_waiter("stream_exists").wait(StreamName="st", WaiterConfig=WAIT)

    slow.delete_stream(StreamName="st")
    assert status(slow, "st") == "DELETING"
    assert "st" in slow.list_streams()["StreamNames"]
    assert code(slow.put_record, StreamName="st", Data=b"x", PartitionKey="k") == "ResourceNotFoundException"
    assert code(slow.create_stream, StreamName="st", ShardCount=1) == "ResourceInUseException"
    slow.get_waiter("stream_not_exists").wait(StreamName="st", WaiterConfig=WAIT)
    assert "st" not in slow.list_streams()["StreamNames"]
    assert code(slow.describe_stream, StreamName="st") == "ResourceNotFoundException"
    # Gone: the name can be used again.
    slow.create_stream(StreamName="st", ShardCount=1)
    assert status(slow, "st") == "CREATING"
    # Like AWS: a stream can be deleted while it is being created.
    slow.delete_stream(StreamName="st")
    assert status(slow, "st") == "DELETING"
    slow.get_waiter("stream_not_exists").wait(StreamName="st", WaiterConfig=WAIT)


def test_encryption_and_mode_changes_update(slow):
    slow.create_stream(StreamName="enc", ShardCount=1)
    slow.get_waiter("stream_exists").wait(StreamName="enc", WaiterConfig=WAIT)
    slow.start_stream_encryption(StreamName="enc", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    assert status(slow, "enc") == "UPDATING"
    slow.get_waiter("stream_exists").wait(StreamName="enc", WaiterConfig=WAIT)
    arn = slow.describe_stream_summary(StreamName="enc")["StreamDescriptionSummary"]["StreamARN"]
    slow.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    assert status(slow, "enc") == "UPDATING"
    slow.get_waiter("stream_exists").wait(StreamName="enc", WaiterConfig=WAIT)
    assert status(slow, "enc") == "ACTIVE"
