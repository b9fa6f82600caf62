"""The Glue Data Catalog subset through boto3 and the AWS CLI: databases and
tables created, read, listed (Expression, paging), updated into new versions,
and deleted, with Glue's answers and errors; names lowercased as Glue does;
the catalog kept across a restart."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from conftest import BINARY, ROOT

AWS = os.path.join(os.path.dirname(sys.executable), "aws")
ACCOUNT = "000000000000"  # the server's default account


def client(endpoint):
    return boto3.client(
        "glue", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def glue(server):
    return client(server)


def error(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def table_input(name, columns=(("id", "bigint"), ("msg", "string")), **extra):
    return {
        "Name": name,
        "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": t} for n, t in columns],
            "Location": "s3://bucket/prefix/",
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary":
                          "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
        },
        "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        "TableType": "EXTERNAL_TABLE",
        **extra,
    }


def test_databases_created_read_listed_and_deleted(glue):
    name = unique("Db")
    glue.create_database(DatabaseInput={"Name": name, "Description": "orders",
                                        "Parameters": {"k": "v"}})
    # Stored lowercase; found by any case.
    db = glue.get_database(Name=name)["Database"]
    assert db["Name"] == name.lower()
    assert db["Description"] == "orders" and db["Parameters"] == {"k": "v"}
    assert db["CatalogId"] == ACCOUNT
    assert db["CreateTime"].year >= 2024
    assert db["CreateTableDefaultPermissions"][0]["Permissions"] == ["ALL"]
    assert glue.get_database(Name=name.lower(), CatalogId=ACCOUNT)["Database"]["Name"] == name.lower()

    assert error(glue.create_database, DatabaseInput={"Name": name.upper()}) == \
        ("AlreadyExistsException", "Database already exists.")
    assert error(glue.get_database, Name="nodb_x") == \
        ("EntityNotFoundException", "Database nodb_x not found.")
    assert error(glue.get_database, Name=name, CatalogId="111122223333")[0] == \
        "EntityNotFoundException"

    names = [d["Name"] for d in glue.get_databases()["DatabaseList"]]
    assert name.lower() in names

    glue.delete_database(Name=name)
    assert error(glue.get_database, Name=name)[0] == "EntityNotFoundException"
    assert error(glue.delete_database, Name=name) == \
        ("EntityNotFoundException", f"Database {name.lower()} not found.")


def test_databases_are_paged(glue):
    prefix = unique("page")
    created = sorted(f"{prefix}_{i}" for i in range(5))
    for n in created:
        glue.create_database(DatabaseInput={"Name": n})
    seen, token, pages = [], None, 0
    while True:
        kw = {"MaxResults": 2, **({"NextToken": token} if token else {})}
        page = glue.get_databases(**kw)
        assert len(page["DatabaseList"]) <= 2
        seen += [d["Name"] for d in page["DatabaseList"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert [n for n in seen if n.startswith(prefix)] == created
    assert len(seen) == len(set(seen)) and pages >= 3
    # The paginator follows the same tokens.
    listed = [d["Name"] for p in glue.get_paginator("get_databases").paginate(
        PaginationConfig={"PageSize": 3}) for d in p["DatabaseList"]]
    assert [n for n in listed if n.startswith(prefix)] == created
    assert error(glue.get_databases, NextToken="garbage") == \
        ("InvalidInputException", "Invalid NextToken: garbage")
    for n in created:
        glue.delete_database(Name=n)


def test_tables_created_read_updated_into_versions_and_deleted(glue):
    db = unique("tables")
    glue.create_database(DatabaseInput={"Name": db})
    glue.create_table(DatabaseName=db.upper(), TableInput=table_input("Events"))
    t = glue.get_table(DatabaseName=db, Name="EVENTS")["Table"]
    assert (t["Name"], t["DatabaseName"], t["CatalogId"], t["VersionId"]) == \
        ("events", db, ACCOUNT, "0")
    assert t["StorageDescriptor"]["Columns"] == [{"Name": "id", "Type": "bigint"},
                                                 {"Name": "msg", "Type": "string"}]
    assert t["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    assert t["TableType"] == "EXTERNAL_TABLE"
    assert t["CreateTime"] == t["UpdateTime"]
    assert t["IsRegisteredWithLakeFormation"] is False

    assert error(glue.create_table, DatabaseName=db, TableInput=table_input("events")) == \
        ("AlreadyExistsException", "Table already exists.")
    assert error(glue.create_table, DatabaseName="nodb_y", TableInput=table_input("t")) == \
        ("EntityNotFoundException", "Database nodb_y not found.")
    assert error(glue.get_table, DatabaseName=db, Name="missing") == \
        ("EntityNotFoundException", "Table missing not found.")
    assert error(glue.get_table, DatabaseName="nodb_z", Name="events") == \
        ("EntityNotFoundException", "Database nodb_z not found.")

    # UpdateTable: a new version each time, from the version given.
    glue.update_table(DatabaseName=db, VersionId="0", TableInput=table_input(
        "events", columns=(("id", "bigint"), ("msg", "string"), ("n", "int"))))
    t = glue.get_table(DatabaseName=db, Name="events")["Table"]
    assert t["VersionId"] == "1" and len(t["StorageDescriptor"]["Columns"]) == 3
    assert t["UpdateTime"] >= t["CreateTime"]
    assert error(glue.update_table, DatabaseName=db, VersionId="0",
                 TableInput=table_input("events"))[0] == "ConcurrentModificationException"
    assert error(glue.update_table, DatabaseName=db, TableInput=table_input("nope")) == \
        ("EntityNotFoundException", "Table nope not found.")
    glue.update_table(DatabaseName=db, TableInput=table_input("events", Description="v2"))

    versions = glue.get_table_versions(DatabaseName=db, TableName="events")["TableVersions"]
    assert [v["VersionId"] for v in versions] == ["2", "1", "0"]
    assert [v["Table"]["VersionId"] for v in versions] == ["2", "1", "0"]
    assert len(versions[2]["Table"]["StorageDescriptor"]["Columns"]) == 2
    one = glue.get_table_version(DatabaseName=db, TableName="events", VersionId="1")
    assert len(one["TableVersion"]["Table"]["StorageDescriptor"]["Columns"]) == 3
    latest = glue.get_table_version(DatabaseName=db, TableName="events")["TableVersion"]
    assert latest["VersionId"] == "2" and latest["Table"]["Description"] == "v2"
    assert error(glue.get_table_version, DatabaseName=db, TableName="events",
                 VersionId="9") == ("EntityNotFoundException",
                                    "Version 9 of table events not found.")
    assert error(glue.get_table_version, DatabaseName=db, TableName="events",
                 VersionId="x")[0] == "InvalidInputException"
    # Paged newest first.
    page = glue.get_table_versions(DatabaseName=db, TableName="events", MaxResults=2)
    assert [v["VersionId"] for v in page["TableVersions"]] == ["2", "1"]
    rest = glue.get_table_versions(DatabaseName=db, TableName="events",
                                   NextToken=page["NextToken"])
    assert [v["VersionId"] for v in rest["TableVersions"]] == ["0"]
    assert "NextToken" not in rest

    # SkipArchive: the current version is replaced, not archived.
    glue.update_table(DatabaseName=db, SkipArchive=True, TableInput=table_input("events"))
    versions = glue.get_table_versions(DatabaseName=db, TableName="events")["TableVersions"]
    assert [v["VersionId"] for v in versions] == ["3", "1", "0"]

    glue.delete_table(DatabaseName=db, Name="Events")
    assert error(glue.get_table, DatabaseName=db, Name="events")[0] == "EntityNotFoundException"
    assert error(glue.delete_table, DatabaseName=db, Name="events") == \
        ("EntityNotFoundException", "Table events not found.")
    glue.delete_database(Name=db)


def test_get_tables_filters_by_expression_and_pages(glue):
    db = unique("list")
    glue.create_database(DatabaseInput={"Name": db})
    names = ["sales_2023", "sales_2024", "clicks", "clicks_raw", "audit"]
    for n in names:
        glue.create_table(DatabaseName=db, TableInput=table_input(n))

    def listed(**kw):
        return [t["Name"] for t in glue.get_tables(DatabaseName=db, **kw)["TableList"]]

    assert listed() == sorted(names)
    assert listed(Expression="sales*") == ["sales_2023", "sales_2024"]
    assert listed(Expression="sales_.*") == ["sales_2023", "sales_2024"]
    assert listed(Expression="*raw|audit") == ["audit", "clicks_raw"]
    assert listed(Expression="CLICKS") == ["clicks"]
    assert listed(Expression="click") == []
    assert error(glue.get_tables, DatabaseName=db, Expression="(")[0] == "InvalidInputException"
    assert error(glue.get_tables, DatabaseName="nodb_w") == \
        ("EntityNotFoundException", "Database nodb_w not found.")

    first = glue.get_tables(DatabaseName=db, MaxResults=2)
    assert [t["Name"] for t in first["TableList"]] == ["audit", "clicks"]
    second = glue.get_tables(DatabaseName=db, MaxResults=2, NextToken=first["NextToken"])
    assert [t["Name"] for t in second["TableList"]] == ["clicks_raw", "sales_2023"]
    pages = glue.get_paginator("get_tables").paginate(
        DatabaseName=db, Expression="sales*|clicks*", PaginationConfig={"PageSize": 1})
    assert [t["Name"] for p in pages for t in p["TableList"]] == \
        ["clicks", "clicks_raw", "sales_2023", "sales_2024"]

    # Deleting the database deletes its tables, as Glue does.
    glue.delete_database(Name=db)
    glue.create_database(DatabaseInput={"Name": db})
    assert listed() == []
    glue.delete_database(Name=db)


def test_refusals_before_and_beside_the_operations(glue, server):
    # The model's constraints, with AWS's wording (boto3's own checks off).
    raw = boto3.client(
        "glue", endpoint_url=server, region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}, parameter_validation=False))
    assert error(raw.create_database, DatabaseInput={"Name": ""}) == (
        "ValidationException",
        "1 validation error detected: Value '' at 'databaseInput.name' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1")
    # What is not served is refused, not ignored.
    db = unique("refuse")
    glue.create_database(DatabaseInput={"Name": db})
    code, message = error(glue.get_table, DatabaseName=db, Name="t", TransactionId="tx1")
    assert code == "InvalidInputException" and "TransactionId" in message
    assert error(glue.create_table, DatabaseName=db)[0] == "InvalidInputException"
    code, _ = error(glue.create_table, DatabaseName=db, Name="a", TableInput=table_input("b"))
    assert code == "InvalidInputException"
    # The top-level Name alone names the table.
    glue.create_table(DatabaseName=db, Name="Top", TableInput=table_input("top"))
    assert glue.get_table(DatabaseName=db, Name="top")["Table"]["Name"] == "top"
    # Operations of Glue's API that are not served.
    assert error(glue.get_partitions, DatabaseName=db, TableName="top")[0] == \
        "UnknownOperationException"
    glue.delete_database(Name=db)


def aws(server, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    out = subprocess.run([AWS, "--endpoint-url", server, "--output", "json", "glue", *args],
                         capture_output=True, text=True, env=env)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr


def test_the_aws_cli_creates_and_reads_a_table_for_firehose(server, tmp_path):
    db = unique("cli")
    code, _, err = aws(server, "create-database", "--database-input", json.dumps({"Name": db}))
    assert code == 0, err
    spec = tmp_path / "table.json"
    spec.write_text(json.dumps(table_input("records", columns=(
        ("ticker", "string"), ("price", "double"), ("ts", "timestamp")))))
    code, _, err = aws(server, "create-table", "--database-name", db,
                       "--table-input", f"file://{spec}")
    assert code == 0, err
    code, got, err = aws(server, "get-table", "--database-name", db, "--name", "records")
    assert code == 0, err
    assert [(c["Name"], c["Type"]) for c in got["Table"]["StorageDescriptor"]["Columns"]] == \
        [("ticker", "string"), ("price", "double"), ("ts", "timestamp")]
    assert got["Table"]["VersionId"] == "0"
    code, _, err = aws(server, "get-table", "--database-name", db, "--name", "none")
    assert code != 0 and "EntityNotFoundException" in err and "Table none not found." in err
    code, got, err = aws(server, "get-tables", "--database-name", db, "--expression", "rec*")
    assert code == 0, err
    assert [t["Name"] for t in got["TableList"]] == ["records"]
    assert aws(server, "delete-database", "--name", db)[0] == 0


def test_the_catalog_survives_a_restart():
    tmp_root = os.path.join(ROOT, "target", "tmp")
    os.makedirs(tmp_root, exist_ok=True)
    data = tempfile.mkdtemp(prefix="py-glue-", dir=tmp_root)

    def start():
        proc = subprocess.Popen(
            [BINARY, "server", "--data-dir", os.path.join(data, "d"), "--listen",
             "127.0.0.1:0", "--http", "127.0.0.1:0", "--no-pin"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("RIFFLE_")})
        for line in proc.stdout:
            if line.startswith("riffle http listening on "):
                return proc, client(f"http://{line.split()[-1]}")
        proc.kill()
        pytest.fail("the server did not start")

    try:
        proc, glue = start()
        glue.create_database(DatabaseInput={"Name": "kept"})
        glue.create_table(DatabaseName="kept", TableInput=table_input("t"))
        glue.update_table(DatabaseName="kept", TableInput=table_input("t", Description="v1"))
        proc.send_signal(signal.SIGKILL)  # acknowledged changes are durable
        proc.wait(timeout=30)
        proc, glue = start()
        t = glue.get_table(DatabaseName="kept", Name="t")["Table"]
        assert (t["VersionId"], t["Description"]) == ("1", "v1")
        assert len(glue.get_table_versions(DatabaseName="kept", TableName="t")
                   ["TableVersions"]) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        shutil.rmtree(data, ignore_errors=True)
