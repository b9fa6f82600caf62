"""The Redshift destination on a real PostgreSQL (Debian's, started by
tools/postgres-test.sh) through boto3: each batch is delivered to the
intermediate bucket and then loaded with COPY, honouring CopyCommand (JSON
'auto', CSV, columns); the password is never described; a load that keeps
failing is reported, and once RetryOptions runs out its manifest is left
under errors/manifests/ in the intermediate bucket."""

import json
import os
import time
import uuid

import pytest

from conftest import start_server, stop_server
from test_firehose import client, code, objects

ROLE = "arn:aws:iam::123456789012:role/firehose"
HINTS = {"SizeInMBs": 1, "IntervalInSeconds": 1}


@pytest.fixture(scope="module")
def fh():
    proc, http_addr, data = start_server()
    yield client(http_addr), os.path.join(data, "d")
    stop_server(proc, data)


def redshift(pg, bucket, table, options=None, columns=None, **extra):
    copy = {"DataTableName": table}
    if options:
        copy["CopyOptions"] = options
    if columns:
        copy["DataTableColumns"] = columns
    return {"RoleARN": ROLE, "ClusterJDBCURL": f"jdbc:postgresql://127.0.0.1:{pg.port}/riffle",
            "CopyCommand": copy, "Username": "riffle", "Password": "riffle",
            "S3Configuration": {"RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{bucket}", "BufferingHints": HINTS},
            **extra}


def wait_rows(pg, query, count, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        rows = pg.sql(query)
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)


def test_batches_are_copied_into_the_table(fh, postgres):
    firehose, data_dir = fh
    table = "events_" + uuid.uuid4().hex[:6]
    postgres.sql(f"CREATE TABLE {table} (id int, name text, at timestamp, extra jsonb)")
    name = "rs-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name, RedshiftDestinationConfiguration=redshift(postgres, name, table, "JSON 'auto'"))
    d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    desc = d["Destinations"][0]["RedshiftDestinationDescription"]
    assert desc["Username"] == "riffle" and "Password" not in desc
    assert desc["S3DestinationDescription"]["BucketARN"] == f"arn:aws:s3:::{name}"
    records = [{"id": i, "name": f"n{i}", "at": "2024-05-17 09:30:00", "extra": {"k": i}} for i in range(5)]
    records.append({"id": 5})  # missing keys load as NULL
    firehose.put_record_batch(DeliveryStreamName=name, Records=[
        {"Data": (json.dumps(r) + "\n").encode()} for r in records])
    rows = wait_rows(postgres, f"SELECT id, name, at, extra FROM {table} ORDER BY id", len(records))
    assert rows[0] == ["0", "n0", "2024-05-17 09:30:00", '{"k": 0}']
    assert rows[5] == ["5", "", "", ""]
    assert len(rows) == len(records)
    # The intermediate bucket holds the same batch.
    objs = objects(data_dir, name)
    lines = [json.loads(x) for v in objs.values() for x in v.decode().splitlines()]
    assert sorted(x["id"] for x in lines) == list(range(6))


def test_csv_with_columns(fh, postgres):
    firehose, _ = fh
    table = "csv_" + uuid.uuid4().hex[:6]
    postgres.sql(f"CREATE TABLE {table} (a text, b int, c text DEFAULT 'dflt')")
    name = "rsc-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        RedshiftDestinationConfiguration=redshift(postgres, name, table, "CSV", columns="b,a"))
    firehose.put_record_batch(DeliveryStreamName=name, Records=[
        {"Data": b'1,"x, with comma"\n'}, {"Data": b'2,plain\n'}])
    rows = wait_rows(postgres, f"SELECT a, b, c FROM {table} ORDER BY b", 2)
    assert rows == [["x, with comma", "1", "dflt"], ["plain", "2", "dflt"]]


def test_failed_loads_are_reported_then_left_as_manifests(fh, postgres):
    firehose, data_dir = fh
    name = "rsf-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name, RedshiftDestinationConfiguration=redshift(
            postgres, name, "no_such_table", "JSON 'auto'", RetryOptions={"DurationInSeconds": 3}))
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b'{"id": 1}\n'})
    deadline = time.monotonic() + 30
    while True:
        d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        if "FailureDescription" in d:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "42P01" in d["FailureDescription"]["Details"] or "no_such_table" in d["FailureDescription"]["Details"], d
    deadline = time.monotonic() + 30
    while True:
        objs = objects(data_dir, name)
        if any(k.startswith("errors/manifests/") for k in objs):
            break
        assert time.monotonic() < deadline, objs
        time.sleep(0.2)
    [manifest] = [json.loads(v) for k, v in objs.items() if k.startswith("errors/manifests/")]
    [entry] = manifest["entries"]
    data_key = entry["url"].split(f"s3://{name}/", 1)[1]
    assert objs[data_key] == b'{"id": 1}\n'


def test_refused_redshift_configurations(fh, postgres):
    firehose, _ = fh
    for config, says in [
        (redshift(postgres, "b12", "t", "FORMAT AS AVRO 's3://x/y'"), "AVRO"),
        (dict(redshift(postgres, "b12", "t"), ClusterJDBCURL="jdbc:mysql://h/db"), "ClusterJDBCURL"),
        (dict(redshift(postgres, "b12", "t"), S3Configuration={
            "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::b12", "CompressionFormat": "ZIP"}), "GZIP"),
    ]:
        c, m = code(firehose.create_delivery_stream, DeliveryStreamName="bad-rs", RedshiftDestinationConfiguration=config)
        assert c == "InvalidArgumentException" and says in m, (says, m)
