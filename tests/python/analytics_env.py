"""What the Kinesis Data Analytics (SQL, v1) tests share (test_analytics_api.py):
a server per test module with a `[functions]` table, clients of
`kinesisanalytics`, `kinesis` and `firehose`, builders of AWS's request
shapes (the demo schema of AWS's examples), AWS's example SQL, and the
position of a text in the code as the server words it."""

import datetime
import os
import shutil
import tempfile
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import ROOT, start_server, stop_server
from lambda_env import REGION, ACCOUNT, client, refused, until  # noqa: F401 (shared helpers)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/kda"
# A function the module server's `[functions]` table maps (never called:
# nothing runs yet).
FUNCTION = "scorer"
FUNCTION_URL = "http://127.0.0.1:9/scorer"


def app_arn(name):
    return f"arn:aws:kinesisanalytics:{REGION}:{ACCOUNT}:application/{name}"


def stream_arn(name):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def delivery_stream_arn(name):
    return f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}"


def unique(prefix="kda"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- shapes

# The demo input of AWS's examples (reference/aws-services.md §2.8).
DEMO_COLUMNS = [
    {"Name": "TICKER_SYMBOL", "Mapping": "$.TICKER_SYMBOL", "SqlType": "VARCHAR(4)"},
    {"Name": "SECTOR", "Mapping": "$.SECTOR", "SqlType": "VARCHAR(16)"},
    {"Name": "CHANGE", "Mapping": "$.CHANGE", "SqlType": "REAL"},
    {"Name": "PRICE", "Mapping": "$.PRICE", "SqlType": "REAL"},
]


def json_schema(columns=None, encoding="UTF-8"):
    s = {"RecordFormat": {"RecordFormatType": "JSON",
                          "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
         "RecordColumns": columns if columns is not None else DEMO_COLUMNS}
    if encoding:
        s["RecordEncoding"] = encoding
    return s


def csv_schema(columns):
    return {"RecordFormat": {"RecordFormatType": "CSV", "MappingParameters": {
        "CSVMappingParameters": {"RecordRowDelimiter": "\n", "RecordColumnDelimiter": ","}}},
        "RecordColumns": columns}


def stream_input(arn, prefix="SOURCE_SQL_STREAM", count=None, schema=None):
    i = {"NamePrefix": prefix, "KinesisStreamsInput": {"ResourceARN": arn, "RoleARN": ROLE},
         "InputSchema": schema or json_schema()}
    if count is not None:
        i["InputParallelism"] = {"Count": count}
    return i


def firehose_input(arn, prefix="SOURCE_SQL_STREAM", schema=None):
    return {"NamePrefix": prefix, "KinesisFirehoseInput": {"ResourceARN": arn, "RoleARN": ROLE},
            "InputSchema": schema or json_schema()}


def stream_output(arn, name="DESTINATION_SQL_STREAM", fmt="JSON"):
    return {"Name": name, "KinesisStreamsOutput": {"ResourceARN": arn, "RoleARN": ROLE},
            "DestinationSchema": {"RecordFormatType": fmt}}


def firehose_output(arn, name="DESTINATION_SQL_STREAM", fmt="JSON"):
    return {"Name": name, "KinesisFirehoseOutput": {"ResourceARN": arn, "RoleARN": ROLE},
            "DestinationSchema": {"RecordFormatType": fmt}}


def lambda_output(resource, name="DESTINATION_SQL_STREAM", fmt="JSON"):
    return {"Name": name, "LambdaOutput": {"ResourceARN": resource, "RoleARN": ROLE},
            "DestinationSchema": {"RecordFormatType": fmt}}


COMPANY_COLUMNS = [{"Name": "Ticker", "SqlType": "VARCHAR(4)"},
                   {"Name": "Company", "SqlType": "VARCHAR(20)"}]


def reference(table="CompanyName", bucket="refdata", key="tickers.csv"):
    return {"TableName": table,
            "S3ReferenceDataSource": {"BucketARN": f"arn:aws:s3:::{bucket}", "FileKey": key,
                                      "ReferenceRoleARN": ROLE},
            "ReferenceSchema": csv_schema(COMPANY_COLUMNS)}


def logging_option(group="kda", stream="app"):
    return {"LogStreamARN": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:{stream}",
            "RoleARN": ROLE}


# What a description answers for the shapes above.

def input_described(given, input_id, count=1, start=None):
    kind = "KinesisStreamsInput" if "KinesisStreamsInput" in given else "KinesisFirehoseInput"
    d = {"InputId": input_id, "NamePrefix": given["NamePrefix"],
         "InAppStreamNames": [f"{given['NamePrefix']}_{i:03d}" for i in range(1, count + 1)],
         f"{kind}Description": given[kind], "InputSchema": given["InputSchema"],
         "InputParallelism": {"Count": count},
         "InputStartingPositionConfiguration": {"InputStartingPosition": start} if start else {}}
    if "InputProcessingConfiguration" in given:
        d["InputProcessingConfigurationDescription"] = {
            "InputLambdaProcessorDescription":
                given["InputProcessingConfiguration"]["InputLambdaProcessor"]}
    return d


def output_described(given, output_id):
    kind = next(k for k in ("KinesisStreamsOutput", "KinesisFirehoseOutput", "LambdaOutput")
                if k in given)
    return {"OutputId": output_id, "Name": given["Name"], f"{kind}Description": given[kind],
            "DestinationSchema": given["DestinationSchema"]}


def reference_described(given, reference_id):
    return {"ReferenceId": reference_id, "TableName": given["TableName"],
            "S3ReferenceDataSourceDescription": given["S3ReferenceDataSource"],
            "ReferenceSchema": given["ReferenceSchema"]}


def logging_described(given, option_id):
    return dict(given, CloudWatchLoggingOptionId=option_id)


# ---------------------------------------------------------------- AWS's SQL

# E1, AWS developer guide app-simple-alerts.md (reference/aws-services.md §2.8).
E1 = '''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM"
           (ticker_symbol VARCHAR(4),
            sector        VARCHAR(12),
            change        DOUBLE,
            price         DOUBLE);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS
   INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM ticker_symbol, sector, change, price
      FROM   "SOURCE_SQL_STREAM_001"
      WHERE  (ABS(Change / (Price - Change)) * 100) > 1;
'''

# E7, AWS developer guide app-anom-score-create-app.md (§2.8), tabs kept.
E7 = '''--Creates a temporary stream.
CREATE OR REPLACE STREAM "TEMP_STREAM" (
\t        "heartRate"        INTEGER,
\t        "rateType"         varchar(20),
\t        "ANOMALY_SCORE"    DOUBLE);

--Creates another stream for application output.
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
\t        "heartRate"        INTEGER,
\t        "rateType"         varchar(20),
\t        "ANOMALY_SCORE"    DOUBLE);

-- Compute an anomaly score for each record in the input stream
-- using Random Cut Forest
CREATE OR REPLACE PUMP "STREAM_PUMP" AS
   INSERT INTO "TEMP_STREAM"
      SELECT STREAM "heartRate", "rateType", ANOMALY_SCORE
      FROM TABLE(RANDOM_CUT_FOREST(
              CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001")));

-- Sort records by descending anomaly score, insert into output stream
CREATE OR REPLACE PUMP "OUTPUT_PUMP" AS
   INSERT INTO "DESTINATION_SQL_STREAM"
      SELECT STREAM * FROM "TEMP_STREAM"
      ORDER BY FLOOR("TEMP_STREAM".ROWTIME TO SECOND), ANOMALY_SCORE DESC;
'''

# E7's input: the heart-rate demo's columns.
HEART_COLUMNS = [{"Name": "heartRate", "Mapping": "$.heartRate", "SqlType": "INTEGER"},
                 {"Name": "rateType", "Mapping": "$.rateType", "SqlType": "VARCHAR(20)"}]


def position(code, needle, nth=0):
    """The 1-based (line, column) of the `nth` occurrence of `needle` in
    `code`, a column counting characters (a tab is one)."""
    at = -1
    for _ in range(nth + 1):
        at = code.index(needle, at + 1)
    line = code.count("\n", 0, at) + 1
    column = at - (code.rfind("\n", 0, at) + 1) + 1
    return line, column


# ---------------------------------------------------------------- the server

class Env:
    """A server's clients and what a test made there."""

    def __init__(self, http_addr, data=None):
        self.http_addr = http_addr
        self.data = data
        self.endpoint = f"http://{http_addr}"
        self.ka = client("kinesisanalytics", self.endpoint)
        # Without botocore's own checks: what the server answers to them.
        self.raw = client("kinesisanalytics", self.endpoint, parameter_validation=False)
        self.kinesis = client("kinesis", self.endpoint)
        self.firehose = client("firehose", self.endpoint)
        self.apps = []

    def stream(self):
        """A new ACTIVE data stream: (name, ARN)."""
        name = unique("src")
        self.kinesis.create_stream(StreamName=name, ShardCount=1)
        until(lambda: self.kinesis.describe_stream_summary(StreamName=name)[
            "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", f"{name} ACTIVE")
        return name, stream_arn(name)

    def delivery_stream(self):
        """A new Direct PUT delivery stream: (name, ARN)."""
        name = unique("fh")
        arn = self.firehose.create_delivery_stream(
            DeliveryStreamName=name, DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": ROLE, "BucketARN": "arn:aws:s3:::kda-out"})["DeliveryStreamARN"]
        assert arn == delivery_stream_arn(name)
        return name, arn

    def create(self, name=None, **kw):
        """CreateApplication (deleted after the test); gives the name."""
        name = name or unique()
        got = self.ka.create_application(ApplicationName=name, **kw)
        assert got["ApplicationSummary"] == {"ApplicationName": name, "ApplicationARN": app_arn(name),
                                             "ApplicationStatus": "READY"}
        self.apps.append(name)
        return name

    def describe(self, name):
        return self.ka.describe_application(ApplicationName=name)["ApplicationDetail"]

    def version(self, name):
        return self.describe(name)["ApplicationVersionId"]

    def delete(self, name):
        created = self.describe(name)["CreateTimestamp"]
        self.ka.delete_application(ApplicationName=name, CreateTimestamp=created)

    def cleanup(self):
        for name in self.apps:
            try:
                self.delete(name)
            except ClientError:
                pass
        self.apps = []


def shown(detail):
    """A description without its timestamps (checked apart)."""
    return {k: v for k, v in detail.items() if k not in ("CreateTimestamp", "LastUpdateTimestamp")}


def near_now(ts, before, after):
    """`ts` (a parsed timestamp) lies between epoch seconds before and after
    (a little slack for the float's rounding)."""
    assert isinstance(ts, datetime.datetime), ts
    assert before - 0.01 <= ts.timestamp() <= after + 0.01, (ts.timestamp(), before, after)


def write_functions_config():
    """A riffle.toml mapping FUNCTION to FUNCTION_URL: (directory, path)."""
    conf_dir = tempfile.mkdtemp(prefix="kda-conf-", dir=os.path.join(ROOT, "target", "tmp"))
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        f.write(f'[functions]\n{FUNCTION} = "{FUNCTION_URL}"\n')
    return conf_dir, conf


@pytest.fixture(scope="module")
def shared():
    """One server for the module, its `[functions]` table naming FUNCTION."""
    conf_dir, conf = write_functions_config()
    proc, http_addr, data = start_server("--config", conf)
    yield Env(http_addr, data)
    stop_server(proc, data)
    shutil.rmtree(conf_dir, ignore_errors=True)


@pytest.fixture
def env(shared):
    """The shared server; the applications a test made are deleted after it
    (the server keeps at most 50)."""
    yield shared
    shared.cleanup()


def make_stream(env, shards=1, prefix="s"):
    """A new data stream of `shards` shards, ACTIVE."""
    name = unique(prefix)
    env.kinesis.create_stream(StreamName=name, ShardCount=shards)
    until(lambda: env.kinesis.describe_stream_summary(StreamName=name)[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", f"{name} ACTIVE")
    return name


def start_at(env, name, position):
    """StartApplication of `name`'s input at `position`."""
    d = env.describe(name)
    env.ka.start_application(ApplicationName=name, InputConfigurations=[{
        "Id": d["InputDescriptions"][0]["InputId"],
        "InputStartingPositionConfiguration": {"InputStartingPosition": position}}])
