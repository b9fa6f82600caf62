"""Encryption at rest through the real binary: a keyring made by `riffle kms`
(sealed with a passphrase), a server started on it, boto3 as the client.

After StartStreamEncryption a known 1 KiB random record is put: no file under
the data directory holds it or any 16-byte window of it, while a record put
before encryption is found there in the clear (the scan does look, and only
data written after encryption is encrypted, as on AWS). Disabling the key with
`riffle kms disable` makes puts and reads fail with KMSDisabledException;
enabling it restores both. kill -9 and a restart with the keyring read
everything back byte for byte; a restart without the keyring serves the clear
record and refuses the encrypted ones with KMSNotFoundException.

Firehose: a delivery stream made with a customer-managed key keeps its
records (its internal stream) encrypted on disk, delivers them intact to the
embedded store, and answers InvalidKMSResourceException while its key is
disabled.

Video: with a keyring, every video stream is encrypted under its key (the
AWS-managed alias/aws/kinesisvideo by default), as on AWS: its fragments are
nowhere on disk in the clear, served intact, and a disabled key turns
PutMedia's fragments into ERROR acks with KMS's ErrorId 4501."""

import json
import os
import signal
import stat
import subprocess
import time

import boto3
import botocore
import pytest
from botocore.config import Config

import base64

from conftest import BINARY, server_env, start_on, start_server, start_server_native, stop_server

PASS = {"RIFFLE_KMS_PASSPHRASE": "correct horse battery staple"}


def kms(keyring, *args, env=PASS):
    out = subprocess.run([BINARY, "kms", *args, "--keyring", keyring], capture_output=True,
                         text=True, env=server_env(env))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def client(http):
    return boto3.client(
        "kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}))


def error_code(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"]


def until(what, cond, timeout=20):
    """Polls `cond` until true: the server reads the keyring file again within
    a quarter of a second of a change (no event reaches the test)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def files_under(root):
    for d, _, names in os.walk(root):
        for n in names:
            yield os.path.join(d, n)


def windows_found(root, secret):
    """The files under `root` holding any 16-byte window of `secret`. Every
    16-byte window contains one of the 8-byte pieces at multiples of 8, so
    those are searched and each hit checked for a 16-byte match around it."""
    pieces = [(i, secret[i:i + 8]) for i in range(0, len(secret) - 7, 8)]
    found = []
    for path in files_under(root):
        with open(path, "rb") as f:
            content = f.read()
        hit = False
        for i, piece in pieces:
            at = content.find(piece)
            while at >= 0 and not hit:
                for back in range(0, 9):
                    s, c = i - back, at - back
                    if s >= 0 and c >= 0 and s + 16 <= len(secret) and \
                            content[c:c + 16] == secret[s:s + 16]:
                        hit = True
                        break
                at = content.find(piece, at + 1)
            if hit:
                break
        if hit:
            found.append(path)
    return found


def read_all(kinesis, stream):
    """Every record of the stream's shards, from the trim horizon: (data,
    EncryptionType) by shard."""
    out = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while True:
            got = kinesis.get_records(ShardIterator=it)
            out += [(r["Data"], r.get("EncryptionType")) for r in got["Records"]]
            if not got["Records"] and got.get("MillisBehindLatest", 0) == 0:
                break
            it = got["NextShardIterator"]
    return out


def test_a_keyring_keeps_its_keys_sealed_and_refuses_a_wrong_passphrase(tmp_path):
    keyring = str(tmp_path / "keyring.json")
    made = kms(keyring, "create-key", "--alias", "orders")[0]["KeyMetadata"]
    assert made["KeyState"] == "Enabled" and made["Aliases"] == ["alias/orders"]
    assert made["Arn"].endswith(f":key/{made['KeyId']}")
    assert stat.S_IMODE(os.stat(keyring).st_mode) == 0o600
    doc = json.load(open(keyring))
    assert doc["Protection"]["Kind"] != "none"
    listed = kms(keyring, "list")
    assert [k["KeyId"] for k in listed] == [made["KeyId"]]
    # A wrong passphrase, or none, is refused with a message; so is a new
    # keyring with no passphrase and no --plaintext.
    for env in ({"RIFFLE_KMS_PASSPHRASE": "wrong"}, {}):
        out = subprocess.run([BINARY, "kms", "list", "--keyring", keyring],
                             capture_output=True, text=True, env=server_env(env))
        assert out.returncode != 0 and "RIFFLE_KMS_PASSPHRASE" in out.stderr, out.stderr
    out = subprocess.run([BINARY, "kms", "create-key", "--keyring", str(tmp_path / "new.json")],
                         capture_output=True, text=True, env=server_env({}))
    assert out.returncode != 0 and "--plaintext" in out.stderr, out.stderr
    assert not (tmp_path / "new.json").exists()
    # A server given the keyring without its passphrase does not start.
    proc = subprocess.run([BINARY, "server", "--data-dir", str(tmp_path / "d"), "--listen",
                           "127.0.0.1:0", "--http", "127.0.0.1:0", "--kms-keyring", keyring],
                          capture_output=True, text=True, env=server_env({}), timeout=60)
    assert proc.returncode != 0 and "RIFFLE_KMS_PASSPHRASE" in proc.stderr, proc.stderr


def test_encrypted_records_never_reach_the_disk_in_the_clear(tmp_path):
    keyring = str(tmp_path / "keyring.json")
    key = kms(keyring, "create-key", "--alias", "orders")[0]["KeyMetadata"]
    proc, native, http, data = start_server_native("--kms-keyring", keyring, env=PASS)
    try:
        kinesis = client(http)
        stream = "sealed"
        kinesis.create_stream(StreamName=stream, ShardCount=2)
        kinesis.get_waiter("stream_exists").wait(StreamName=stream,
                                                 WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
        # Keys that do not exist are AWS's KMSNotFoundException.
        assert error_code(kinesis.start_stream_encryption, StreamName=stream,
                          EncryptionType="KMS", KeyId="alias/missing") == "KMSNotFoundException"
        before = b"before encryption " + os.urandom(1000)
        before_shard = kinesis.put_record(StreamName=stream, Data=before,
                                          PartitionKey="k")["ShardId"]
        kinesis.start_stream_encryption(StreamName=stream, EncryptionType="KMS",
                                        KeyId=key["Arn"])
        summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        assert summary["EncryptionType"] == "KMS" and summary["KeyId"] == key["Arn"]
        secret = os.urandom(1024)
        put = kinesis.put_record(StreamName=stream, Data=secret, PartitionKey="k")
        assert put["EncryptionType"] == "KMS"
        others = [os.urandom(300) for _ in range(20)]
        answer = kinesis.put_records(StreamName=stream, Records=[
            {"Data": d, "PartitionKey": f"p{i}"} for i, d in enumerate(others)])
        assert answer["FailedRecordCount"] == 0 and answer["EncryptionType"] == "KMS"

        # Acknowledged means durable (fsync): the bytes are on disk now.
        root = os.path.join(data, "d")
        assert windows_found(root, before), "the clear record is on disk (the scan looks)"
        assert windows_found(root, secret) == []
        for d in others:
            assert windows_found(root, d) == []

        everything = sorted([before, secret] + others)
        got = read_all(kinesis, stream)
        assert sorted(d for d, _ in got) == everything
        # The native protocol serves the same records (its client checks each
        # batch it is served).
        natively = []
        for shard in (0, 1):
            out = subprocess.run([BINARY, "--server", native, "--json", "get", stream,
                                  "--shard", str(shard)], capture_output=True, text=True,
                                 timeout=60, env=server_env())
            assert out.returncode == 0, out.stderr
            natively += [base64.b64decode(json.loads(line)["data"])
                         for line in out.stdout.splitlines()]
        assert sorted(natively) == everything

        # Disabled: puts and reads fail with AWS's error, nothing is served.
        kms(keyring, "disable", "alias/orders")
        # Puts made before the server reads the keyring again are stored.
        probes = []

        def probe():
            code = error_code_or_none(kinesis.put_record, StreamName=stream, Data=b"probe",
                                      PartitionKey="k")
            if code is None:
                probes.append(b"probe")
            return code

        until("puts refused", lambda: probe() == "KMSDisabledException")
        everything = sorted(everything + probes)
        assert error_code(kinesis.put_records, StreamName=stream,
                          Records=[{"Data": b"y", "PartitionKey": "k"}]) == "KMSDisabledException"
        assert error_code(read_all, kinesis=kinesis, stream=stream) == "KMSDisabledException"
        # Enabled again: both work, and nothing was lost or added.
        kms(keyring, "enable", key["KeyId"])
        until("puts accepted", lambda: error_code_or_none(
            kinesis.put_record, StreamName=stream, Data=b"after", PartitionKey="k") is None)
        everything = sorted(everything + [b"after"])
        assert sorted(d for d, _ in read_all(kinesis, stream)) == everything

        # kill -9, then a restart with the keyring: everything reads back
        # (from the segments: nothing is cached after a restart).
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc, http = start_on(data, "--kms-keyring", keyring, env=PASS)
        kinesis = client(http)
        assert sorted(d for d, _ in read_all(kinesis, stream)) == everything
        assert windows_found(root, secret) == []

        # Without the keyring: the clear record is served, the encrypted ones
        # are refused, and puts to the encrypted stream too.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        proc, http = start_on(data)
        kinesis = client(http)
        assert read_first(kinesis, stream, before_shard) == before
        assert error_code(read_all, kinesis=kinesis, stream=stream) == "KMSNotFoundException"
        assert error_code(kinesis.put_record, StreamName=stream, Data=b"x",
                          PartitionKey="k") == "KMSNotFoundException"
        # Stopping encryption lets puts go in the clear again.
        kinesis.stop_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId=key["Arn"])
        assert "EncryptionType" not in kinesis.put_record(StreamName=stream, Data=b"clear",
                                                          PartitionKey="k")
    finally:
        stop_server(proc, data)


def error_code_or_none(call, **kw):
    try:
        call(**kw)
        return None
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


def read_first(kinesis, stream, shard_id):
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=it, Limit=1)["Records"]
    return records[0]["Data"] if records else None


def test_an_encrypted_delivery_stream_keeps_its_records_sealed_until_delivery(tmp_path):
    keyring = str(tmp_path / "keyring.json")
    key = kms(keyring, "create-key", "--alias", "firehose-key")[0]["KeyMetadata"]
    proc, http, data = start_server("--kms-keyring", keyring, env=PASS)
    try:
        firehose = boto3.client(
            "firehose", endpoint_url=f"http://{http}", region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
            config=Config(retries={"max_attempts": 1}))
        destination = {"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                       "BucketARN": "arn:aws:s3:::sealed",
                       "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}}
        bad = {"KeyType": "CUSTOMER_MANAGED_CMK",
               "KeyARN": "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-4000-8000-000000000000"}
        assert error_code(firehose.create_delivery_stream, DeliveryStreamName="bad",
                          DeliveryStreamEncryptionConfigurationInput=bad,
                          ExtendedS3DestinationConfiguration=destination) \
            == "InvalidKMSResourceException"
        firehose.create_delivery_stream(
            DeliveryStreamName="sealed", ExtendedS3DestinationConfiguration=destination,
            DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK",
                                                        "KeyARN": key["Arn"]})
        d = firehose.describe_delivery_stream(DeliveryStreamName="sealed")
        assert d["DeliveryStreamDescription"]["DeliveryStreamEncryptionConfiguration"] == {
            "KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": key["Arn"], "Status": "ENABLED"}
        secret = os.urandom(1024)
        assert firehose.put_record(DeliveryStreamName="sealed",
                                   Record={"Data": secret})["Encrypted"] is True
        root = os.path.join(data, "d")
        delivered = os.path.join(root, "s3", "sealed")

        def objects():
            return [open(p, "rb").read() for p in files_under(delivered)
                    if not p.endswith(".riffle-tmp")]

        until("the object delivered", lambda: any(secret in o for o in objects()), timeout=60)
        # Delivered intact; nowhere else under the data directory in the clear.
        held = [p for p in windows_found(root, secret) if not p.startswith(delivered)]
        assert held == []

        kms(keyring, "disable", key["KeyId"])
        until("puts refused", lambda: error_code_or_none(
            firehose.put_record, DeliveryStreamName="sealed", Record={"Data": b"probe"})
            == "InvalidKMSResourceException")
        assert error_code(firehose.put_record_batch, DeliveryStreamName="sealed",
                          Records=[{"Data": b"x"}]) == "InvalidKMSResourceException"
        kms(keyring, "enable", key["KeyId"])
        until("puts accepted", lambda: error_code_or_none(
            firehose.put_record, DeliveryStreamName="sealed", Record={"Data": b"again"}) is None)
    finally:
        stop_server(proc, data)


def test_video_fragments_are_encrypted_under_their_streams_key(tmp_path):
    from video_env import chunk_tags, clients, clusters, make_mkv, of_type, put_all, tags_in

    keyring = str(tmp_path / "keyring.json")
    key = kms(keyring, "create-key", "--alias", "cameras")[0]["KeyMetadata"]
    proc, http, data = start_server("--kms-keyring", keyring, env=PASS)
    try:
        kvs, media, archived = clients(f"http://{http}")
        kvs.create_stream(StreamName="door", KmsKeyId="alias/cameras", DataRetentionInHours=1)
        assert kvs.describe_stream(StreamName="door")["StreamInfo"]["KmsKeyId"] == "alias/cameras"
        source = make_mkv(seconds=3, extra=["-b:v", "1M"])
        sent = clusters(source)
        status, acks = put_all(http, "door", source)
        assert status == 200 and len(of_type(acks, "PERSISTED")) == len(sent), acks
        # The biggest frame of each fragment: compressed video, nowhere on
        # disk in the clear.
        root = os.path.join(data, "d")
        for _, blocks in sent:
            frame = max(blocks, key=len)
            assert len(frame) >= 256
            assert windows_found(root, frame[:1024]) == []
        listed = [f["FragmentNumber"] for f in archived.list_fragments(StreamName="door")["Fragments"]]
        listed.sort(key=int)
        got = archived.get_media_for_fragment_list(StreamName="door", Fragments=listed)
        chunks = got["Payload"].read()
        assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(chunks)] == listed
        assert [b for _, b in clusters(chunks)] == [b for _, b in sent]

        kms(keyring, "disable", key["KeyId"])

        def refused():
            _, acks = put_all(http, "door", source)
            return [a.get("ErrorId") for a in of_type(acks, "ERROR")]

        until("uploads refused", lambda: 4501 in refused())
        # The media answer, begun before a fragment is read, ends with Kinesis
        # Video's error tags instead of the fragment.
        got = archived.get_media_for_fragment_list(StreamName="door", Fragments=listed[:1])
        tags = dict(t for t in tags_in(got["Payload"].read()) if t[0] != "Cluster")
        assert tags["AWS_KINESISVIDEO_ERROR_ID"] == "4501", tags
        assert "disabled" in tags["AWS_KINESISVIDEO_ERROR_CODE"]
        # Whole answers are refusals.
        start = archived.list_fragments(StreamName="door")["Fragments"][0]
        with pytest.raises(botocore.exceptions.ClientError) as e:
            archived.get_clip(StreamName="door", ClipFragmentSelector={
                "FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {
                    "StartTimestamp": start["ServerTimestamp"],
                    "EndTimestamp": start["ServerTimestamp"].timestamp() + 2}})
        assert "disabled" in e.value.response["Error"]["Message"]
    finally:
        stop_server(proc, data)
