"""Record format conversion through boto3 and the AWS CLI against the real
binary: a Glue table made with `aws glue create-table`, a delivery stream
converting JSON (OpenX and Hive SerDes) to Parquet by it; the objects are
read back with pyarrow (an independent Parquet reader): the records that
fit are rows of the table's types, the ones that do not are AWS's
`format-conversion-failed` lines; a missing table is reported and retried,
and delivery resumes once the table exists; ORC is refused."""

import base64
import io
import json
import os
import subprocess
import sys
import time
import uuid

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.config import Config

from conftest import start_server, stop_server
from test_firehose import client, code, objects, s3_config

AWS = os.path.join(os.path.dirname(sys.executable), "aws")
HINTS = {"SizeInMBs": 64, "IntervalInSeconds": 1}
COLUMNS = [{"Name": "id", "Type": "bigint"}, {"Name": "name", "Type": "string"},
           {"Name": "price", "Type": "decimal(10,2)"}, {"Name": "at", "Type": "timestamp"},
           {"Name": "tags", "Type": "array<string>"}, {"Name": "dims", "Type": "struct<w:int,h:int>"}]


@pytest.fixture(scope="module")
def env():
    proc, http_addr, data = start_server()
    glue = boto3.client("glue", endpoint_url=f"http://{http_addr}", region_name="us-east-1",
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 1}))
    yield client(http_addr), glue, http_addr, os.path.join(data, "d")
    stop_server(proc, data)


def conversion(db, table, serde=None, parquet=None):
    return {"Enabled": True,
            "SchemaConfiguration": {"RoleARN": "arn:aws:iam::123456789012:role/r", "DatabaseName": db,
                                    "TableName": table, "Region": "us-east-1", "VersionId": "LATEST"},
            "InputFormatConfiguration": {"Deserializer": serde or {"OpenXJsonSerDe": {}}},
            "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": parquet or {}}}}


def aws_cli(http_addr, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION="us-east-1")
    out = subprocess.run([AWS, "--endpoint-url", f"http://{http_addr}", *args], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def wait_until(data_dir, bucket, done, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        objs = objects(data_dir, bucket)
        if done(objs):
            return objs
        assert time.monotonic() < deadline, sorted(objs)
        time.sleep(0.1)


def test_json_becomes_parquet_of_the_glue_table(env, tmp_path):
    firehose, glue, http_addr, data_dir = env
    db, table = "sales_" + uuid.uuid4().hex[:6], "orders"
    aws_cli(http_addr, "glue", "create-database", "--database-input", json.dumps({"Name": db}))
    table_input = tmp_path / "table.json"
    table_input.write_text(json.dumps({"Name": table, "StorageDescriptor": {"Columns": COLUMNS}}))
    aws_cli(http_addr, "glue", "create-table", "--database-name", db, "--table-input", f"file://{table_input}")
    name = "conv-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
            name, BufferingHints=HINTS, Prefix="parquet/", ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
            DataFormatConversionConfiguration=conversion(db, table, parquet={"Compression": "GZIP"})))
    good = [
        {"id": 1, "name": "apple", "price": "1.25", "at": "2024-05-17T09:30:00Z", "tags": ["a", "b"],
         "dims": {"w": 3, "h": 4}},
        # OpenX: keys ignore case; a missing column is null; numbers as strings.
        {"ID": "2", "Name": "pear", "at": 1715938200000},
    ]
    bad = [b'{"id": "not a number"}', b"not json"]
    firehose.put_record_batch(DeliveryStreamName=name, Records=[
        {"Data": json.dumps(r).encode()} for r in good] + [{"Data": b} for b in bad])
    objs = wait_until(data_dir, name, lambda o: any(k.startswith("parquet/") for k in o)
                      and any(k.startswith("errors/") for k in o))
    rows = []
    for key, body in objs.items():
        if key.startswith("parquet/"):
            assert body[:4] == b"PAR1"
            f = pq.ParquetFile(io.BytesIO(body))
            assert [f.schema_arrow.field(i).name for i in range(6)] == [c["Name"] for c in COLUMNS]
            assert f.metadata.row_group(0).column(1).compression == "GZIP"
            rows += f.read().to_pylist()
    rows.sort(key=lambda r: r["id"])
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["name"] == "apple" and str(rows[0]["price"]) == "1.25"
    assert rows[0]["tags"] == ["a", "b"] and rows[0]["dims"] == {"w": 3, "h": 4}
    assert rows[0]["at"].isoformat().startswith("2024-05-17T09:30")
    assert rows[1]["price"] is None and rows[1]["name"] == "pear"
    assert rows[1]["at"].isoformat().startswith("2024-05-17T09:30")
    lines = [json.loads(x) for k, v in objs.items() if k.startswith("errors/format-conversion-failed/")
             for x in v.decode().splitlines()]
    assert sorted(base64.b64decode(x["rawData"]) for x in lines) == sorted(bad)
    assert {x["lastErrorCode"] for x in lines} == {"DataFormatConversion.MalformedData"}
    d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    ext = d["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert ext["DataFormatConversionConfiguration"]["SchemaConfiguration"]["TableName"] == table


def test_a_missing_table_is_reported_and_delivery_resumes(env):
    firehose, glue, _, data_dir = env
    db = "late_" + uuid.uuid4().hex[:6]
    glue.create_database(DatabaseInput={"Name": db})
    name = "late-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_config(
            name, BufferingHints=HINTS, ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
            DataFormatConversionConfiguration=conversion(
                db, "events", serde={"HiveJsonSerDe": {"TimestampFormats": ["yyyy-MM-dd'T'HH:mm:ss"]}},
                parquet={"Compression": "SNAPPY"})))
    firehose.put_record(DeliveryStreamName=name, Record={"Data": b'{"n": 7, "at": "2024-05-17T09:30:00"}'})
    deadline = time.monotonic() + 30
    while True:
        d = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        if "FailureDescription" in d:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "events" in d["FailureDescription"]["Details"], d["FailureDescription"]
    assert objects(data_dir, name) == {}
    glue.create_table(DatabaseName=db, TableInput={"Name": "events", "StorageDescriptor": {
        "Columns": [{"Name": "n", "Type": "int"}, {"Name": "at", "Type": "timestamp"}]}})
    objs = wait_until(data_dir, name, lambda o: len(o) >= 1, timeout=60)
    [(key, body)] = objs.items()
    [row] = pq.read_table(io.BytesIO(body)).to_pylist()
    assert row["n"] == 7 and row["at"].isoformat().startswith("2024-05-17T09:30")


def test_refused_conversions(env):
    firehose, _, _, _ = env
    name = "bad-" + uuid.uuid4().hex[:8]
    orc = conversion("db", "t")
    orc["OutputFormatConfiguration"] = {"Serializer": {"OrcSerDe": {}}}
    for extra, says in [
        ({"DataFormatConversionConfiguration": orc}, "ORC"),
        ({"DataFormatConversionConfiguration": conversion("db", "t"), "CompressionFormat": "GZIP"}, "UNCOMPRESSED"),
        ({"DataFormatConversionConfiguration": conversion("db", "t"),
          "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 60}}, "64"),
        ({"DataFormatConversionConfiguration": conversion(
            "db", "t", serde={"HiveJsonSerDe": {"TimestampFormats": ["yyyy-QQ"]}})}, "Deserializer"),
    ]:
        c, m = code(firehose.create_delivery_stream, DeliveryStreamName=name,
                    ExtendedS3DestinationConfiguration=s3_config(name, **extra))
        assert c == "InvalidArgumentException" and says in m, (says, m)
