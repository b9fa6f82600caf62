"""The AWS CLI (v1, from PyPI) scripted against Riffle: create, put, get,
describe, reshard, delete, as a shell script would do it."""

import base64
import json
import os
import subprocess
import sys
import uuid

AWS = os.path.join(os.path.dirname(sys.executable), "aws")


def aws(server, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    out = subprocess.run([AWS, "--endpoint-url", server, "--output", "json", "kinesis", *args],
                         capture_output=True, text=True, env=env)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr


def test_cli_end_to_end(server):
    name = "cli-" + uuid.uuid4().hex[:8]
    assert aws(server, "create-stream", "--stream-name", name, "--shard-count", "2")[0] == 0
    code, _, err = aws(server, "wait", "stream-exists", "--stream-name", name)
    assert code == 0, err
    code, listed, _ = aws(server, "list-streams")
    assert name in listed["StreamNames"]
    code, put, err = aws(server, "put-record", "--stream-name", name, "--partition-key", "k",
                         "--explicit-hash-key", "0", "--data", "hello from the cli")
    assert code == 0, err
    assert put["ShardId"] == "shardId-000000000000"
    code, it, _ = aws(server, "get-shard-iterator", "--stream-name", name, "--shard-id",
                      "shardId-000000000000", "--shard-iterator-type", "TRIM_HORIZON")
    code, got, err = aws(server, "get-records", "--shard-iterator", it["ShardIterator"])
    assert code == 0, err
    assert [base64.b64decode(r["Data"]) for r in got["Records"]] == [b"hello from the cli"]
    assert got["Records"][0]["SequenceNumber"] == put["SequenceNumber"]
    code, described, _ = aws(server, "describe-stream-summary", "--stream-name", name)
    assert described["StreamDescriptionSummary"]["OpenShardCount"] == 2
    # Split the first shard (hash keys [0, 2^127 - 1]) at 2^126.
    code, _, err = aws(server, "split-shard", "--stream-name", name, "--shard-to-split",
                       "shardId-000000000000", "--new-starting-hash-key", str(2**126))
    assert code == 0, err
    code, listed, err = aws(server, "list-shards", "--stream-name", name,
                            "--shard-filter", "Type=AT_LATEST")
    assert code == 0, err
    assert [s["ShardId"] for s in listed["Shards"]] == [
        "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"]
    assert [s.get("ParentShardId") for s in listed["Shards"]] == [
        None, "shardId-000000000000", "shardId-000000000000"]
    assert [s["HashKeyRange"]["StartingHashKey"] for s in listed["Shards"]] == [
        str(2**127), "0", str(2**126)]
    code, listed, _ = aws(server, "list-shards", "--stream-name", name)
    assert len(listed["Shards"]) == 4
    parent = listed["Shards"][0]["SequenceNumberRange"]
    # As on AWS, a closed shard's ending number comes after its last record's.
    assert int(parent["EndingSequenceNumber"]) > int(put["SequenceNumber"])
    assert int(parent["StartingSequenceNumber"]) < int(put["SequenceNumber"])
    code, described, _ = aws(server, "describe-stream-summary", "--stream-name", name)
    assert described["StreamDescriptionSummary"]["OpenShardCount"] == 3
    code, put, err = aws(server, "put-record", "--stream-name", name, "--partition-key", "k",
                         "--explicit-hash-key", str(2**126), "--data", "after the split")
    assert code == 0, err
    assert put["ShardId"] == "shardId-000000000003"
    code, _, err = aws(server, "split-shard", "--stream-name", name, "--shard-to-split",
                       "shardId-000000000000", "--new-starting-hash-key", str(2**125))
    assert code != 0 and "ResourceInUseException" in err
    assert aws(server, "delete-stream", "--stream-name", name)[0] == 0
    code, _, err = aws(server, "describe-stream", "--stream-name", name)
    assert code != 0 and "ResourceNotFoundException" in err
