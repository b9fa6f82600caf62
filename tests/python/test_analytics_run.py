"""Kinesis Data Analytics applications running on the real binary (boto3):
started from TRIM_HORIZON or NOW, records put into the input stream come out
of the output stream as AWS's examples say (E1's filter, E2's tumbling
window), bad records and failing rows go to an output named error_stream,
StopApplication stops the run, and what Start refuses."""

import json
import threading
from collections import Counter

from analytics_env import (  # noqa: F401 (fixtures: shared, env)
    E1, ROLE, app_arn, csv_schema, delivery_stream_arn, env, lambda_output, firehose_input, firehose_output, json_schema, make_stream,
    refused, shared, start_at, stream_arn, stream_input, stream_output, unique, until,
)

INVALID = "InvalidArgumentException"
BAD_CONFIG = "InvalidApplicationConfigurationException"
IN_USE = "ResourceInUseException"


def put(env, stream, rows):
    """One PutRecords call of JSON rows; gives the answer's entries."""
    got = env.kinesis.put_records(StreamName=stream, Records=[
        {"Data": (r if isinstance(r, bytes) else json.dumps(r).encode()), "PartitionKey": str(i)}
        for i, r in enumerate(rows)])
    assert got["FailedRecordCount"] == 0, got
    return got["Records"]


def read_all(env, stream):
    """Every record of every shard of `stream` so far, in shard then
    sequence order: (partition key, data)."""
    out = []
    for shard in env.kinesis.list_shards(StreamName=stream)["Shards"]:
        it = env.kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            got = env.kinesis.get_records(ShardIterator=it, Limit=10000)
            out.extend((r["PartitionKey"], r["Data"]) for r in got["Records"])
            if not got["Records"]:
                break
            it = got.get("NextShardIterator")
    return out


def wait_records(env, stream, count):
    """Polls `stream` (a client has no event to wait on) until it holds at
    least `count` records; gives them."""
    return until(lambda: (r := read_all(env, stream)) and len(r) >= count and r,
                 f"{count} records in {stream}", timeout=30)


start = start_at


def analytics_metric(env, name, metric, dims, statistic="Sum"):
    """A metric of application `name` through CloudWatch's API (the last
    ten minutes, summed over the datapoints)."""
    import datetime
    import boto3
    cw = boto3.client("cloudwatch", endpoint_url=env.endpoint, region_name="us-east-1",
                      aws_access_key_id="AKID", aws_secret_access_key="secret")
    now = datetime.datetime.now(datetime.timezone.utc)
    got = cw.get_metric_statistics(
        Namespace="AWS/KinesisAnalytics", MetricName=metric,
        Dimensions=[{"Name": "Application", "Value": name}, *dims],
        StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=2),
        Period=60, Statistics=[statistic])
    return sum(p[statistic] for p in got["Datapoints"])


def flow(kind, id_):
    return [{"Name": "Flow", "Value": kind}, {"Name": "Id", "Value": id_}]


E1_ROWS = [
    {"TICKER_SYMBOL": "AMZN", "SECTOR": "TECHNOLOGY", "CHANGE": 5, "PRICE": 100},
    {"TICKER_SYMBOL": "QXZ", "SECTOR": "RETAIL", "CHANGE": 0.5, "PRICE": 100},
    {"TICKER_SYMBOL": "WAS", "SECTOR": "TECHNOLOGY_HARDWARE", "CHANGE": -3, "PRICE": 50},
    {"TICKER_SYMBOL": "BAD", "SECTOR": "ENERGY", "CHANGE": 10, "PRICE": 10},
    {"TICKER_SYMBOL": "NFS", "SECTOR": "ENERGY", "CHANGE": 0.1, "PRICE": 20},
    {"TICKER_SYMBOL": "JKL", "SECTOR": "FINANCIAL", "CHANGE": 2, "PRICE": 101},
]
E1_OUT = [
    {"TICKER_SYMBOL": "AMZN", "SECTOR": "TECHNOLOGY", "CHANGE": 5.0, "PRICE": 100.0},
    {"TICKER_SYMBOL": "WAS", "SECTOR": "TECHNOLOGY_H", "CHANGE": -3.0, "PRICE": 50.0},
    {"TICKER_SYMBOL": "JKL", "SECTOR": "FINANCIAL", "CHANGE": 2.0, "PRICE": 101.0},
]


def test_e1_from_trim_horizon_writes_the_filtered_rows_and_the_errors(env):
    src, out, errors = make_stream(env), make_stream(env), make_stream(env)
    # Records there before the start: TRIM_HORIZON reads them.
    put(env, src, E1_ROWS[:3])
    name = env.create(Inputs=[stream_input(stream_arn(src))],
                      Outputs=[stream_output(stream_arn(out)),
                               stream_output(stream_arn(errors), name="error_stream")],
                      ApplicationCode=E1)
    start(env, name, "TRIM_HORIZON")
    assert env.describe(name)["ApplicationStatus"] == "RUNNING"
    put(env, src, E1_ROWS[3:] + [b"{not json"])
    rows = wait_records(env, out, 3)
    app_id = None
    for i, (key, data) in enumerate(rows):
        assert json.loads(data) == E1_OUT[i], data
        # <application id>:<output id>:<epoch>:r<shard>:<path>:<record's
        # offset>.<row in the record> (the path hashes E1's one pump's
        # name; E1's rows are the records at offsets 0, 2 and 5)
        app, output, epoch, shard, path, row = key.split(":")
        app_id = app_id or app
        assert (app, shard, len(path), row) == (app_id, "r0", 16, f"{[0, 2, 5][i]}.0"), key
    # error_stream: the division by zero (PRICE = CHANGE) and the bad JSON.
    errs = [json.loads(d) for _, d in wait_records(env, errors, 2)]
    names = sorted(e["ERROR_NAME"] for e in errs)
    assert names == ["Division_by_zero", "Parse_error"], errs
    division = next(e for e in errs if e["ERROR_NAME"] == "Division_by_zero")
    assert division["PUMP_NAME"] == "STREAM_PUMP" and division["ERROR_LEVEL"] == "ERROR", division
    assert '"TICKER_SYMBOL":"BAD"' in bytes.fromhex(division["DATA_ROW"]).decode(), division
    parse = next(e for e in errs if e["ERROR_NAME"] == "Parse_error")
    assert bytes.fromhex(parse["DATA_ROW"]) == b"{not json", parse
    assert parse["PUMP_NAME"] == "", parse

    # AWS/KinesisAnalytics through CloudWatch's API: the input's records and
    # bytes read, each output's rows written and their success, KPUs while it runs.
    import datetime
    import boto3
    cw = boto3.client("cloudwatch", endpoint_url=env.endpoint, region_name="us-east-1",
                      aws_access_key_id="AKID", aws_secret_access_key="secret")
    detail = env.ka.describe_application(ApplicationName=name)["ApplicationDetail"]
    input_id = detail["InputDescriptions"][0]["InputId"]
    output_ids = {o["Name"]: o["OutputId"] for o in detail["OutputDescriptions"]}
    now = datetime.datetime.now(datetime.timezone.utc)

    def summed(metric, dims, statistic="Sum"):
        got = cw.get_metric_statistics(
            Namespace="AWS/KinesisAnalytics", MetricName=metric,
            Dimensions=[{"Name": "Application", "Value": name}, *dims],
            StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=2),
            Period=60, Statistics=[statistic])
        return sum(p[statistic] for p in got["Datapoints"])
    flow = lambda f, i: [{"Name": "Flow", "Value": f}, {"Name": "Id", "Value": i}]  # noqa: E731
    sent = E1_ROWS + [b"{not json"]
    until(lambda: summed("Records", flow("Output", output_ids["error_stream"])) == 2,
          "the error rows counted", timeout=30)
    assert summed("Records", flow("Input", input_id)) == len(sent)
    assert summed("Bytes", flow("Input", input_id)) == sum(
        len(r if isinstance(r, bytes) else json.dumps(r).encode()) for r in sent)
    assert summed("Records", flow("Output", output_ids["DESTINATION_SQL_STREAM"])) == 3
    out_success = flow("Output", output_ids["DESTINATION_SQL_STREAM"])
    assert summed("Success", out_success) == summed("Success", out_success, "SampleCount") >= 1
    assert summed("KPUs", [], "Maximum") >= 1
    listed = cw.list_metrics(Namespace="AWS/KinesisAnalytics",
                             Dimensions=[{"Name": "Application", "Value": name}])["Metrics"]
    assert {"Records", "Bytes", "Success", "MillisBehindLatest", "KPUs"} <= {m["MetricName"] for m in listed}
    # And at GET /metrics, labelled application, flow and id.
    import urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"{env.endpoint}/metrics", timeout=10) as r:
        samples = {(s.name, s.labels.get("flow"), s.labels.get("id")): s.value
                   for f in text_string_to_metric_families(r.read().decode())
                   for s in f.samples if s.labels.get("application") == name}
    assert samples[("riffle_kinesisanalytics_kpus", None, None)] == 1
    assert samples[("riffle_kinesisanalytics_records_total", "Input", input_id)] == len(sent)
    assert samples[("riffle_kinesisanalytics_records_total", "Output",
                    output_ids["DESTINATION_SQL_STREAM"])] == 3

    env.ka.stop_application(ApplicationName=name)
    assert env.describe(name)["ApplicationStatus"] == "READY"
    code, _, _ = refused(env.ka.stop_application, ApplicationName=name)
    assert code == IN_USE


E2_ONE_SECOND = '''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (TICKER VARCHAR(4), MIN_PRICE REAL, MAX_PRICE REAL, N BIGINT);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM TICKER, MIN(PRICE), MAX(PRICE), COUNT(*)
        FROM "SOURCE_SQL_STREAM_001"
        GROUP BY TICKER,
            STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' SECOND);
'''

TICKER_COLUMNS = [
    {"Name": "TICKER", "Mapping": "$.TICKER", "SqlType": "VARCHAR(4)"},
    {"Name": "PRICE", "Mapping": "$.PRICE", "SqlType": "REAL"},
]


def test_a_tumbling_window_from_now_emits_once_the_window_closes(env):
    src, out = make_stream(env), make_stream(env)
    put(env, src, [{"TICKER": "OLD", "PRICE": 1}])  # before the start: NOW skips it
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(TICKER_COLUMNS))],
                      Outputs=[stream_output(stream_arn(out), fmt="CSV")],
                      ApplicationCode=E2_ONE_SECOND)
    start(env, name, "NOW")
    # One call into a one-shard stream: one batch, one arrival, one window.
    put(env, src, [{"TICKER": "AMZN", "PRICE": 10.5}, {"TICKER": "MSFT", "PRICE": 50},
                   {"TICKER": "AMZN", "PRICE": 9.25}, {"TICKER": "AMZN", "PRICE": 12}])
    rows = [d.decode() for _, d in wait_records(env, out, 2)]
    assert rows == ["AMZN,9.25,12,3\n", "MSFT,50,50,1\n"], rows
    env.ka.stop_application(ApplicationName=name)


def test_start_refusals(env):
    src, out = make_stream(env), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src))],
                      Outputs=[stream_output(stream_arn(out), name="NOT_A_STREAM")],
                      ApplicationCode=E1)
    code, message, status = refused(env.ka.start_application, ApplicationName=name,
                                    InputConfigurations=[{
                                        "Id": "1.1", "InputStartingPositionConfiguration": {
                                            "InputStartingPosition": "NOW"}}])
    assert (code, status) == (BAD_CONFIG, 400) and "NOT_A_STREAM" in message, (code, message)
    code, message, _ = refused(env.ka.start_application, ApplicationName=name,
                               InputConfigurations=[{
                                   "Id": "1.1", "InputStartingPositionConfiguration": {
                                       "InputStartingPosition": "LAST_STOPPED_POINT"}}])
    # LAST_STOPPED_POINT is served (test_analytics_checkpoint.py): the
    # configuration is what is refused.
    assert code == BAD_CONFIG and "NOT_A_STREAM" in message, (code, message)
    assert env.describe(name)["ApplicationStatus"] == "READY"
    # An output stream deleted since it was added.
    other = make_stream(env)
    name2 = env.create(Inputs=[stream_input(stream_arn(src))],
                       Outputs=[stream_output(stream_arn(other))], ApplicationCode=E1)
    env.kinesis.delete_stream(StreamName=other)
    until(lambda: other not in env.kinesis.list_streams()["StreamNames"], f"{other} deleted")
    code, message, _ = refused(env.ka.start_application, ApplicationName=name2,
                               InputConfigurations=[{
                                   "Id": "1.1", "InputStartingPositionConfiguration": {
                                       "InputStartingPosition": "NOW"}}])
    assert code == BAD_CONFIG and other in message, (code, message)


COUNT_PER_SECOND = '''CREATE OR REPLACE STREAM "COUNTS" (TICKER VARCHAR(4), N BIGINT);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "COUNTS"
    SELECT STREAM TICKER, COUNT(*) FROM "SOURCE_SQL_STREAM_001"
    GROUP BY TICKER, FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO SECOND);
'''


def counted(env, out, total):
    """Waits until the COUNTS rows in `out` add up to `total`; gives the
    sum per ticker."""
    def sums():
        per = {}
        for _, data in read_all(env, out):
            row = json.loads(data)
            per[row["TICKER"]] = per.get(row["TICKER"], 0) + row["N"]
        return per if sum(per.values()) >= total else None
    return until(sums, f"{total} rows counted in {out}", timeout=30)


def test_windows_over_several_shards_and_a_reshard_count_every_record_once(env):
    src, out = make_stream(env, shards=3), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(TICKER_COLUMNS))],
                      Outputs=[stream_output(stream_arn(out), name="COUNTS")],
                      ApplicationCode=COUNT_PER_SECOND)
    before = [{"TICKER": t, "PRICE": 1} for t in ["A", "B", "C"] * 40]
    put(env, src, before)  # partition keys 0..119 spread over the three shards
    start(env, name, "TRIM_HORIZON")
    assert counted(env, out, len(before)) == {"A": 40, "B": 40, "C": 40}
    # Split a shard while the application runs: its children are read after it.
    shard = env.kinesis.list_shards(StreamName=src)["Shards"][0]
    lo, hi = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
    env.kinesis.split_shard(StreamName=src, ShardToSplit=shard["ShardId"],
                            NewStartingHashKey=str((lo + hi) // 2))
    until(lambda: env.kinesis.describe_stream_summary(StreamName=src)[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", f"{src} ACTIVE")
    after = [{"TICKER": t, "PRICE": 1} for t in ["A", "B"] * 50]
    put(env, src, after)
    got = counted(env, out, len(before) + len(after))
    assert got == {"A": 90, "B": 90, "C": 40}, got
    env.ka.stop_application(ApplicationName=name)


PASS_IDS = '''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("id" INTEGER);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
SELECT STREAM "id" FROM "SOURCE_SQL_STREAM_001";'''


def test_resharding_the_destination_while_rows_flow_loses_and_repeats_none(env):
    # A call to a shard the reshard has sealed, before the new shards are
    # out, is made again to an open one (it once lost the write's rows).
    cols = [{"Name": "id", "Mapping": "$.id", "SqlType": "INTEGER"}]
    src, out = make_stream(env), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(cols))],
                      Outputs=[stream_output(stream_arn(out))], ApplicationCode=PASS_IDS)
    start(env, name, "TRIM_HORIZON")
    calls, per = 120, 500
    total = calls * per
    put(env, src, [{"id": i} for i in range(per)])
    wait_records(env, out, 1)

    def produce():
        for c in range(1, calls):
            put(env, src, [{"id": i} for i in range(c * per, (c + 1) * per)])

    flow = threading.Thread(target=produce)
    flow.start()
    for target in [2, 4, 8, 4, 2]:
        env.kinesis.update_shard_count(StreamName=out, TargetShardCount=target,
                                       ScalingType="UNIFORM_SCALING")
        until(lambda: env.kinesis.describe_stream_summary(StreamName=out)[
            "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", f"{out} ACTIVE")
    flow.join()
    ids = Counter(json.loads(d)["id"] for _, d in wait_records(env, out, total))
    assert sorted(ids) == list(range(total)), f"{total - len(ids)} rows missing"
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1][:5]
    env.ka.stop_application(ApplicationName=name)


def test_stop_and_start_again_leaves_one_run(env):
    src, out = make_stream(env), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(TICKER_COLUMNS))],
                      Outputs=[stream_output(stream_arn(out), name="COUNTS")],
                      ApplicationCode=COUNT_PER_SECOND)
    start(env, name, "NOW")
    env.ka.stop_application(ApplicationName=name)
    start(env, name, "NOW")
    put(env, src, [{"TICKER": "A", "PRICE": 1}] * 5)
    assert counted(env, out, 5) == {"A": 5}
    # The first run's tasks are gone: a second window's rows are counted once.
    put(env, src, [{"TICKER": "B", "PRICE": 1}] * 3)
    assert counted(env, out, 8) == {"A": 5, "B": 3}
    env.ka.stop_application(ApplicationName=name)


def test_parallelism_two_makes_two_input_streams(env):
    src, out = make_stream(env, shards=2), make_stream(env)
    code = '''CREATE OR REPLACE STREAM "COUNTS" (TICKER VARCHAR(4), N BIGINT);
CREATE OR REPLACE PUMP "P1" AS INSERT INTO "COUNTS"
    SELECT STREAM 'one', COUNT(*) FROM "SOURCE_SQL_STREAM_001"
    GROUP BY FLOOR("SOURCE_SQL_STREAM_001".ROWTIME TO SECOND);
CREATE OR REPLACE PUMP "P2" AS INSERT INTO "COUNTS"
    SELECT STREAM 'two', COUNT(*) FROM "SOURCE_SQL_STREAM_002"
    GROUP BY FLOOR("SOURCE_SQL_STREAM_002".ROWTIME TO SECOND);
'''
    name = env.create(Inputs=[stream_input(stream_arn(src), count=2,
                                           schema=json_schema(TICKER_COLUMNS))],
                      Outputs=[stream_output(stream_arn(out), name="COUNTS")],
                      ApplicationCode=code)
    start(env, name, "NOW")
    answers = put(env, src, [{"TICKER": "A", "PRICE": 1}] * 40)
    per_shard = {}
    for a in answers:
        per_shard[a["ShardId"]] = per_shard.get(a["ShardId"], 0) + 1
    # Shard 0 feeds _001, shard 1 feeds _002.
    expected = {"one": per_shard.get("shardId-000000000000", 0),
                "two": per_shard.get("shardId-000000000001", 0)}
    got = counted(env, out, 40)
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}, (got, expected)
    env.ka.stop_application(ApplicationName=name)


# E4, AWS developer guide sliding-window-concepts.md (reference/aws-services.md §2.8).
E4 = '''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
                         ticker_symbol VARCHAR(10),
                         Min_Price     double,
                         Max_Price     double,
                         Avg_Price     double);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS
   INSERT INTO "DESTINATION_SQL_STREAM"
     SELECT STREAM ticker_symbol,
                   MIN(Price) OVER W1 AS Min_Price,
                   MAX(Price) OVER W1 AS Max_Price,
                   AVG(Price) OVER W1 AS Avg_Price
     FROM   "SOURCE_SQL_STREAM_001"
     WINDOW W1 AS (
        PARTITION BY ticker_symbol
        RANGE INTERVAL '1' MINUTE PRECEDING);
'''


def test_e4_sliding_window_emits_a_row_per_row(env):
    src, out = make_stream(env), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src))],
                      Outputs=[stream_output(stream_arn(out))], ApplicationCode=E4)
    start(env, name, "NOW")
    # One call into a one-shard stream: one arrival, so every row's minute
    # holds the rows before it and itself.
    put(env, src, [{"TICKER_SYMBOL": "AMZN", "PRICE": p} for p in (10, 20, 30)]
        + [{"TICKER_SYMBOL": "MSFT", "PRICE": 5}])
    rows = [json.loads(d) for _, d in wait_records(env, out, 4)]
    assert rows == [
        {"TICKER_SYMBOL": "AMZN", "MIN_PRICE": 10.0, "MAX_PRICE": 10.0, "AVG_PRICE": 10.0},
        {"TICKER_SYMBOL": "AMZN", "MIN_PRICE": 10.0, "MAX_PRICE": 20.0, "AVG_PRICE": 15.0},
        {"TICKER_SYMBOL": "AMZN", "MIN_PRICE": 10.0, "MAX_PRICE": 30.0, "AVG_PRICE": 20.0},
        {"TICKER_SYMBOL": "MSFT", "MIN_PRICE": 5.0, "MAX_PRICE": 5.0, "AVG_PRICE": 5.0},
    ], rows
    env.ka.stop_application(ApplicationName=name)


STAGGER_ONE_SECOND = '''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    ticker_symbol VARCHAR(4), ticker_count DOUBLE);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM TICKER_SYMBOL, COUNT(TICKER_SYMBOL) AS ticker_count
    FROM "SOURCE_SQL_STREAM_001"
    WINDOWED BY STAGGER (PARTITION BY TICKER_SYMBOL RANGE INTERVAL '1' SECOND);
'''


def test_a_stagger_window_per_key(env):
    src, out = make_stream(env, shards=2), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src))],
                      Outputs=[stream_output(stream_arn(out), fmt="CSV")],
                      ApplicationCode=STAGGER_ONE_SECOND)
    start(env, name, "NOW")
    put(env, src, [{"TICKER_SYMBOL": t, "PRICE": 1} for t in ["A", "B", "A", "A", "B"]])
    rows = sorted(d.decode() for _, d in wait_records(env, out, 2))
    assert rows == ["A,3\n", "B,2\n"], rows
    env.ka.stop_application(ApplicationName=name)


def test_top_k_items_per_window(env):
    code = '''CREATE OR REPLACE STREAM DESTINATION_SQL_STREAM (
  "TICKER" VARCHAR(4),
  "MOST_FREQUENT_VALUES" BIGINT
);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS
    INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM *
        FROM TABLE (TOP_K_ITEMS_TUMBLING(
            CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"), 'TICKER', 2, 1));
'''
    # One call into a one-shard stream: one arrival, one window.
    src, out = make_stream(env), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(TICKER_COLUMNS))],
                      Outputs=[stream_output(stream_arn(out))], ApplicationCode=code)
    start(env, name, "NOW")
    put(env, src, [{"TICKER": t, "PRICE": 1} for t in ["A"] * 3 + ["B"] * 5 + ["C"] * 4])
    rows = [json.loads(d) for _, d in wait_records(env, out, 2)]
    assert rows == [{"TICKER": "B", "MOST_FREQUENT_VALUES": 5},
                    {"TICKER": "C", "MOST_FREQUENT_VALUES": 4}], rows
    env.ka.stop_application(ApplicationName=name)


def versioned_code(tag):
    return f'''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("id" INTEGER, "v" VARCHAR(4));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM "id", '{tag}' FROM "SOURCE_SQL_STREAM_001";
'''


def test_a_change_to_a_running_application_applies_to_the_rows_after_it(env):
    columns = [{"Name": "id", "Mapping": "$.id", "SqlType": "INTEGER"}]
    src, out = make_stream(env, shards=2), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(columns))],
                      Outputs=[stream_output(stream_arn(out))], ApplicationCode=versioned_code("v1"))
    start(env, name, "TRIM_HORIZON")
    put(env, src, [{"id": i} for i in range(50)])
    wait_records(env, out, 50)
    # Code that does not plan: refused, and the run goes on unchanged.
    code, message, _ = refused(env.ka.update_application, ApplicationName=name,
                               CurrentApplicationVersionId=1,
                               ApplicationUpdate={"ApplicationCodeUpdate": versioned_code("v2")
                                                  .replace('"id",', '"nope",')})
    assert code == "CodeValidationException", (code, message)
    d = env.describe(name)
    assert (d["ApplicationVersionId"], d["ApplicationStatus"]) == (1, "RUNNING")
    # The new code: rows put after the answer are the new code's; nothing
    # is lost or written twice across the change.
    env.ka.update_application(ApplicationName=name, CurrentApplicationVersionId=1,
                              ApplicationUpdate={"ApplicationCodeUpdate": versioned_code("v2")})
    d = env.describe(name)
    assert (d["ApplicationVersionId"], d["ApplicationStatus"]) == (2, "RUNNING")
    put(env, src, [{"id": i} for i in range(50, 100)])
    rows = [json.loads(d) for _, d in wait_records(env, out, 100)]
    assert sorted(r["id"] for r in rows) == list(range(100)), rows
    assert {r["v"] for r in rows if r["id"] < 50} == {"v1"}, rows
    assert {r["v"] for r in rows if r["id"] >= 50} == {"v2"}, rows
    # An output naming no stream of the code: the application could not run
    # with it, so it is refused while running.
    code, message, _ = refused(env.ka.add_application_output, ApplicationName=name,
                               CurrentApplicationVersionId=2,
                               Output=stream_output(stream_arn(make_stream(env)), name="NOT_MADE"))
    assert code == BAD_CONFIG and "NOT_MADE" in message, (code, message)
    assert env.describe(name)["ApplicationStatus"] == "RUNNING"
    env.ka.stop_application(ApplicationName=name)


def changing_code(tag, keep_out, copy=False):
    """A per-row pump tagging its rows with `tag` and dropping the rows whose
    k is `keep_out`; with `copy`, a second pump reads its stream (so the
    home task, not the shards' tasks, writes that stream's output)."""
    code = f'''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("id" INTEGER, "v" VARCHAR(4));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM "id", '{tag}' FROM "SOURCE_SQL_STREAM_001" WHERE "k" <> '{keep_out}';
'''
    if copy:
        code += '''CREATE OR REPLACE STREAM "COPY" ("id" INTEGER);
CREATE OR REPLACE PUMP "Q" AS INSERT INTO "COPY" SELECT STREAM "id" FROM "DESTINATION_SQL_STREAM";
'''
    return code


def test_changes_while_records_flow_lose_and_repeat_no_row(env):
    """Records put without a pause across two changes of a running
    application: one changes the filter (rows are named by their records,
    not numbered, so the rows around the change keep their names), the other
    adds a pump reading the output's stream (its rows then leave from home
    instead of the shards' cores, under the same names). Rows both filters
    keep come out exactly once; rows only one of them keeps at most once."""
    import time
    columns = [{"Name": "id", "Mapping": "$.id", "SqlType": "INTEGER"},
               {"Name": "k", "Mapping": "$.k", "SqlType": "VARCHAR(4)"}]
    src, out = make_stream(env, shards=2), make_stream(env, shards=2)
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(columns))],
                      Outputs=[stream_output(stream_arn(out))],
                      ApplicationCode=changing_code("v1", "x"))
    start(env, name, "TRIM_HORIZON")
    keys = ["a", "b", "x", "y"]
    calls, per_call = 60, 20
    total = calls * per_call

    def producer():
        for c in range(calls):
            ids = range(c * per_call, (c + 1) * per_call)
            put(env, src, [{"id": i, "k": keys[i % 4]} for i in ids])
            time.sleep(0.1)  # a steady flow over the changes, not a wait for an event

    flow = threading.Thread(target=producer)
    flow.start()
    # Each change once rows are flowing: the output holds some rows.
    wait_records(env, out, 200)
    env.ka.update_application(ApplicationName=name, CurrentApplicationVersionId=1,
                              ApplicationUpdate={"ApplicationCodeUpdate":
                                                 changing_code("v2", "y")})
    wait_records(env, out, 500)
    env.ka.update_application(ApplicationName=name, CurrentApplicationVersionId=2,
                              ApplicationUpdate={"ApplicationCodeUpdate":
                                                 changing_code("v3", "y", copy=True)})
    flow.join()
    # The last records, one per shard at least: once their rows are out,
    # every record before them in their shard was written.
    last = list(range(total, total + 20))
    put(env, src, [{"id": i, "k": "a"} for i in last])
    both = {i for i in range(total) if keys[i % 4] in "ab"} | set(last)
    def complete():
        got = [json.loads(d) for _, d in read_all(env, out)]
        return both <= {r["id"] for r in got} and got
    rows = until(complete, "every row both filters keep", timeout=60)
    ids = Counter(r["id"] for r in rows)
    assert [i for i, n in ids.items() if n > 1] == [], "rows written twice"
    assert both <= set(ids), sorted(both - set(ids))
    # Each row is its version's: v1 drops x, v2 and v3 drop y.
    for r in rows:
        k = keys[r["id"] % 4] if r["id"] < total else "a"
        assert k != ("x" if r["v"] == "v1" else "y"), r
    versions = Counter(r["v"] for r in rows)
    assert set(versions) == {"v1", "v2", "v3"}, versions
    env.ka.stop_application(ApplicationName=name)


def test_a_schema_change_that_decodes_more_rows_moves_no_row(env):
    """CSV records of two rows, `x<i>` and `<i>`, into an INTEGER column: the
    first row of each fails to decode. Stopped while records flow, the
    column changed to VARCHAR and restarted from LAST_STOPPED_POINT, the
    x rows decode too; a row is named by its place in its record, failed
    rows counted, so every `<i>` row comes out exactly once across the
    change (the x rows only after it)."""
    import time
    code = '''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("id" VARCHAR(8));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM CAST("id" AS VARCHAR(8)) FROM "SOURCE_SQL_STREAM_001";
'''

    def columns(sql_type):
        return [{"Name": "id", "Mapping": "_0", "SqlType": sql_type}]
    src, out = make_stream(env), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=csv_schema(columns("INTEGER")))],
                      Outputs=[stream_output(stream_arn(out))], ApplicationCode=code)
    start(env, name, "TRIM_HORIZON")
    total = 300

    def producer():
        for i in range(total):
            put(env, src, [f"x{i}\n{i}\n".encode()])
            time.sleep(0.01)  # a steady flow across the stop, not a wait for an event

    flow = threading.Thread(target=producer)
    flow.start()
    wait_records(env, out, 50)
    env.ka.stop_application(ApplicationName=name)
    d = env.describe(name)
    env.ka.update_application(
        ApplicationName=name, CurrentApplicationVersionId=d["ApplicationVersionId"],
        ApplicationUpdate={"InputUpdates": [{
            "InputId": d["InputDescriptions"][0]["InputId"],
            "InputSchemaUpdate": {"RecordColumnUpdates": columns("VARCHAR(8)")}}]})
    start(env, name, "LAST_STOPPED_POINT")
    flow.join()

    # The last record's rows out: every record before it was written.
    def complete():
        got = [json.loads(d)["id"] for _, d in read_all(env, out)]
        return str(total - 1) in got and got
    got = Counter(until(complete, "the last record's rows", timeout=60))
    assert [k for k, n in got.items() if n > 1] == [], "rows written twice"
    assert {str(i) for i in range(total)} <= set(got), "rows lost"
    xs = sorted(int(k[1:]) for k in got if k.startswith("x"))
    assert xs and xs == list(range(xs[0], total)), xs
    env.ka.stop_application(ApplicationName=name)


# E8, AWS developer guide app-add-reference-data.md (reference/aws-services.md §2.8).
E8 = '''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), "Company" varchar(20), sector VARCHAR(12), change DOUBLE, price DOUBLE);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
   SELECT STREAM ticker_symbol, "c"."Company", sector, change, price
   FROM "SOURCE_SQL_STREAM_001" LEFT JOIN "CompanyName" as "c"
   ON "SOURCE_SQL_STREAM_001".ticker_symbol = "c"."Ticker";
'''


def test_reference_objects_and_discovery_on_an_s3_server(seaweedfs):
    """With --s3-endpoint (SeaweedFS, SigV4-signed), E8's reference table is
    read from the S3 server, DiscoverInputSchema samples an object there,
    and a missing object fails the Start."""
    import boto3
    from analytics_env import Env, reference
    from conftest import WEED_KEY, WEED_SECRET, start_server, stop_server
    s3 = boto3.client("s3", endpoint_url=seaweedfs, region_name="us-east-1",
                      aws_access_key_id=WEED_KEY, aws_secret_access_key=WEED_SECRET)
    bucket = unique("ref")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="tickers.csv", Body=b"AMZN,Amazon\nWAS,Washington Co\n")
    proc, http, data = start_server("--s3-endpoint", seaweedfs, "--s3-access-key", WEED_KEY,
                                    "--s3-secret-key", WEED_SECRET)
    e = Env(http, data)
    try:
        found = e.ka.discover_input_schema(S3Configuration={
            "RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{bucket}", "FileKey": "tickers.csv"})
        assert [c["SqlType"] for c in found["InputSchema"]["RecordColumns"]] == [
            "VARCHAR(4)", "VARCHAR(16)"], found
        src, out = make_stream(e), make_stream(e)

        def app(key):
            name = e.create(Inputs=[stream_input(stream_arn(src))],
                            Outputs=[stream_output(stream_arn(out))])
            e.ka.add_application_reference_data_source(
                ApplicationName=name, CurrentApplicationVersionId=1,
                ReferenceDataSource=reference(bucket=bucket, key=key))
            e.ka.update_application(ApplicationName=name, CurrentApplicationVersionId=2,
                                    ApplicationUpdate={"ApplicationCodeUpdate": E8})
            return name
        name = app("tickers.csv")
        start(e, name, "NOW")
        put(e, src, [{"TICKER_SYMBOL": t, "SECTOR": "S", "CHANGE": 1, "PRICE": 2}
                     for t in ["AMZN", "QXZ", "WAS"]])
        rows = [json.loads(d) for _, d in wait_records(e, out, 3)]
        assert [(r["TICKER_SYMBOL"], r["Company"]) for r in rows] == [
            ("AMZN", "Amazon"), ("QXZ", None), ("WAS", "Washington Co")], rows
        e.ka.stop_application(ApplicationName=name)
        missing = app("nope.csv")
        code, message, _ = refused(e.ka.start_application, ApplicationName=missing,
                                   InputConfigurations=[{
                                       "Id": "1.1", "InputStartingPositionConfiguration": {
                                           "InputStartingPosition": "NOW"}}])
        assert code == BAD_CONFIG and "nope.csv" in message, (code, message)
    finally:
        stop_server(proc, data)


ORDERS_AND_TRADES = '''CREATE OR REPLACE STREAM "OrderStream" ("orderId" INTEGER, ticker VARCHAR(4), amount DOUBLE);
CREATE OR REPLACE STREAM "TradeStream" ("tradeId" INTEGER, "orderId" INTEGER, amount DOUBLE);
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM"
    ("orderId" INTEGER, ticker VARCHAR(4), "orderAmount" DOUBLE, "tradeAmount" DOUBLE);
CREATE OR REPLACE PUMP "O" AS INSERT INTO "OrderStream"
    SELECT STREAM id, ticker, amount FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'order';
CREATE OR REPLACE PUMP "T" AS INSERT INTO "TradeStream"
    SELECT STREAM trade, id, amount FROM "SOURCE_SQL_STREAM_001" WHERE kind = 'trade';
CREATE OR REPLACE PUMP "J" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM o."orderId", o.ticker, o.amount AS "orderAmount", t.amount AS "tradeAmount"
    FROM "OrderStream" AS o
    LEFT OUTER JOIN "TradeStream" OVER t
    ON o."orderId" = t."orderId"
    WINDOW t AS (RANGE INTERVAL '1' MINUTE PRECEDING);
'''


def test_a_stream_to_stream_join_over_a_window(env):
    """AWS's orders-and-trades join (stream-joins-concepts.md) as a LEFT
    OUTER JOIN: each order meets the trades of its id that arrived within
    the minute before it (the orders' window is CURRENT ROW), one row per
    pair; an order without such a trade comes out once with NULL trade
    columns, including one whose trade comes only after it."""
    columns = [{"Name": n.upper(), "Mapping": f"$.{n}", "SqlType": t} for n, t in [
        ("kind", "VARCHAR(8)"), ("id", "INTEGER"), ("trade", "INTEGER"), ("ticker", "VARCHAR(4)"),
        ("amount", "DOUBLE")]]
    src, out, trades = make_stream(env), make_stream(env), make_stream(env)
    # The joined stream is an output too: its rows still reach the join.
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(columns))],
                      Outputs=[stream_output(stream_arn(out)),
                               stream_output(stream_arn(trades), name="TradeStream")],
                      ApplicationCode=ORDERS_AND_TRADES)
    start(env, name, "NOW")

    def trade(i, order, amount):
        return {"kind": "trade", "trade": i, "id": order, "amount": amount}

    def order(i, ticker, amount):
        return {"kind": "order", "id": i, "ticker": ticker, "amount": amount}
    put(env, src, [trade(10, 1, 10), trade(20, 2, 20), trade(21, 2, 21), trade(30, 9, 90)])
    put(env, src, [order(1, "A", 100), order(2, "B", 200), order(3, "C", 300), order(4, "D", 400)])
    first = [json.loads(d) for _, d in wait_records(env, out, 5)]
    put(env, src, [trade(40, 4, 40)])  # after order 4: not in its window
    put(env, src, [order(5, "E", 500)])  # the trade of order 4 is not its
    rows = [json.loads(d) for _, d in wait_records(env, out, 6)]
    assert rows[:5] == first, (first, rows)
    written = sorted(json.loads(d)["tradeId"] for _, d in wait_records(env, trades, 5))
    assert written == [10, 20, 21, 30, 40], written
    got = sorted((r["orderId"], r["TICKER"], r["orderAmount"], r["tradeAmount"]) for r in rows)
    assert got == [(1, "A", 100.0, 10.0), (2, "B", 200.0, 20.0), (2, "B", 200.0, 21.0),
                   (3, "C", 300.0, None), (4, "D", 400.0, None), (5, "E", 500.0, None)], rows
    env.ka.stop_application(ApplicationName=name)


def delivery_stream(env, bucket):
    """A Direct PUT delivery stream into `bucket` of the embedded store,
    flushing every second: (name, ARN)."""
    name = unique("fh")
    arn = env.firehose.create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{bucket}",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})["DeliveryStreamARN"]
    until(lambda: env.firehose.describe_delivery_stream(DeliveryStreamName=name)[
        "DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE", f"{name} ACTIVE")
    return name, arn


def bucket_text(env, bucket):
    """Every object of `bucket` in the embedded store, joined."""
    import os
    root = os.path.join(env.data, "d", "s3", bucket)
    out = b""
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if not f.endswith(".riffle-tmp"):
                with open(os.path.join(dirpath, f), "rb") as fd:
                    out += fd.read()
    return out.decode()


def test_delivery_streams_as_input_and_as_output(env):
    """E1 reading a Direct PUT delivery stream (what PutRecordBatch puts
    into it) and writing CSV rows into another, which delivers them to S3;
    schema discovery samples the input delivery stream; an output delivery
    stream fed by a Kinesis stream (it takes no puts) is refused at Start."""
    fh_in, fh_in_arn = delivery_stream(env, unique("kin"))
    out_bucket = unique("kout")
    fh_out, fh_out_arn = delivery_stream(env, out_bucket)
    got = env.firehose.put_record_batch(DeliveryStreamName=fh_in, Records=[
        {"Data": json.dumps(r).encode()} for r in E1_ROWS])
    assert got["FailedPutCount"] == 0, got
    found = env.ka.discover_input_schema(
        ResourceARN=fh_in_arn, RoleARN=ROLE,
        InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})
    names = [c["Name"] for c in found["InputSchema"]["RecordColumns"]]
    assert names == ["TICKER_SYMBOL", "SECTOR", "CHANGE", "PRICE"], found
    name = env.create(Inputs=[firehose_input(fh_in_arn)],
                      Outputs=[firehose_output(fh_out_arn, fmt="CSV")], ApplicationCode=E1)
    start(env, name, "TRIM_HORIZON")
    # The rows spread over the delivery stream's shards, so over objects.
    expected = sorted([r["TICKER_SYMBOL"], r["SECTOR"], r["CHANGE"], r["PRICE"]] for r in E1_OUT)

    def delivered():
        lines = bucket_text(env, out_bucket).splitlines()
        return sorted([t, s, float(c), float(p)] for t, s, c, p in (x.split(",") for x in lines))
    try:
        until(lambda: delivered() == expected, f"E1's rows delivered to {out_bucket}", timeout=60)
    except AssertionError as e:
        raise AssertionError(f"{e}: the bucket holds {bucket_text(env, out_bucket)!r}") from None
    # The output delivery stream's metrics count the rows as PutRecordBatch's.
    from test_firehose_metrics import scrape
    m = scrape(env.http_addr)
    assert m[("riffle_firehose_incoming_records_total", fh_out)] == 3, m.get(
        ("riffle_firehose_incoming_records_total", fh_out))
    env.ka.stop_application(ApplicationName=name)
    # A delivery stream whose source is a Kinesis stream takes no puts.
    src = make_stream(env)
    fed = unique("fhk")
    env.firehose.create_delivery_stream(
        DeliveryStreamName=fed, DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn(src), "RoleARN": ROLE},
        ExtendedS3DestinationConfiguration={"RoleARN": ROLE,
                                            "BucketARN": f"arn:aws:s3:::{unique('kb')}"})
    name2 = env.create(Inputs=[firehose_input(fh_in_arn)],
                       Outputs=[firehose_output(delivery_stream_arn(fed))], ApplicationCode=E1)
    code, message, _ = refused(env.ka.start_application, ApplicationName=name2,
                               InputConfigurations=[{
                                   "Id": "1.1", "InputStartingPositionConfiguration": {
                                       "InputStartingPosition": "NOW"}}])
    assert code == BAD_CONFIG and "takes no puts" in message, (code, message)


def test_a_lambda_output_gets_aws_delivery_events_and_failed_records_again(env):
    """E1's rows to an HTTP function as AWS's output-delivery event: each
    record named (recordId) and in the output's format; records the function
    answers DeliveryFailed, or leaves out of its answer, come again with a
    higher retryHint until it answers Ok."""
    import base64
    from lambda_env import Function

    def respond(event, n):
        # The first call fails its first record and forgets its last.
        records = event["records"]
        out = [{"recordId": r["recordId"], "result": "Ok"} for r in records]
        if n == 0:
            out[0]["result"] = "DeliveryFailed"
            out.pop()
        return {"records": out}

    fn = Function(respond)
    try:
        src = make_stream(env)
        name = env.create(Inputs=[stream_input(stream_arn(src))],
                          Outputs=[lambda_output(fn.url, fmt="JSON")], ApplicationCode=E1)
        put(env, src, E1_ROWS)
        start(env, name, "TRIM_HORIZON")

        def sent_again(f):
            first = f.calls[0]["event"]["records"]
            later = {r["recordId"] for c in f.calls[1:] for r in c["event"]["records"]}
            return {first[0]["recordId"], first[-1]["recordId"]} <= later
        # The first call's first and last records come again in later calls.
        fn.wait(lambda f: f.calls and sent_again(f), "the failed records sent again")
        first = fn.calls[0]["event"]
        assert first["applicationArn"] == app_arn(name), first
        ids = [c["event"]["invocationId"] for c in fn.calls]
        assert len(set(ids)) == len(ids), ids
        assert fn.max_in_flight == 1, fn.max_in_flight
        assert [r["lambdaDeliveryRecordMetadata"] for r in first["records"]] == [
            {"retryHint": 0}] * 3, first
        rows = [json.loads(base64.b64decode(r["data"])) for r in first["records"]]
        assert rows == E1_OUT, rows
        again = [r for c in fn.calls[1:] for r in c["event"]["records"]]
        assert {r["lambdaDeliveryRecordMetadata"]["retryHint"] for r in again} == {1}, again
        assert sorted(r["recordId"] for r in again) == sorted(
            [first["records"][0]["recordId"], first["records"][-1]["recordId"]])
        # LambdaDelivery.*: three rows delivered, two failed deliveries (one
        # answered DeliveryFailed, one left out), a duration per batch.
        output_id = env.describe(name)["OutputDescriptions"][0]["OutputId"]
        at = flow("Output", output_id)
        until(lambda: analytics_metric(env, name, "LambdaDelivery.OkRecords", at) == 3,
              "the deliveries counted", timeout=30)
        assert analytics_metric(env, name, "LambdaDelivery.DeliveryFailedRecords", at) == 2
        assert analytics_metric(env, name, "LambdaDelivery.Duration", at, "SampleCount") == len(fn.calls)
        env.ka.stop_application(ApplicationName=name)
    finally:
        fn.close()


def test_an_input_preprocessor_turns_records_into_rows(env):
    """E1 over records that are not JSON: an HTTP function (Lambda's
    preprocessing contract) turns `TICKER|SECTOR|CHANGE|PRICE` text into JSON
    (two documents for one record), drops the records it names DROP, and
    fails the one it names FAIL, which error_stream reports. Its first
    answer is a 500: the same records come again, and nothing is lost."""
    import base64
    from lambda_env import Function

    def respond(event, n):
        if n == 0:
            return 500, {"errorMessage": "cold start"}
        out = []
        for r in event["records"]:
            text = base64.b64decode(r["data"]).decode()
            if text == "DROP":
                out.append({"recordId": r["recordId"], "result": "Dropped"})
            elif text == "FAIL":
                out.append({"recordId": r["recordId"], "result": "ProcessingFailed"})
            else:
                docs = ""
                for part in text.split(";"):
                    t, s, c, p = part.split("|")
                    docs += json.dumps({"TICKER_SYMBOL": t, "SECTOR": s,
                                        "CHANGE": float(c), "PRICE": float(p)}) + "\n"
                out.append({"recordId": r["recordId"], "result": "Ok",
                            "data": base64.b64encode(docs.encode()).decode()})
        return {"records": out}

    fn = Function(respond)
    try:
        src, out, errors = make_stream(env), make_stream(env), make_stream(env)
        given = stream_input(stream_arn(src))
        given["InputProcessingConfiguration"] = {
            "InputLambdaProcessor": {"ResourceARN": fn.url, "RoleARN": ROLE}}
        name = env.create(Inputs=[given],
                          Outputs=[stream_output(stream_arn(out)),
                                   stream_output(stream_arn(errors), name="error_stream")],
                          ApplicationCode=E1)
        texts = [b"AMZN|TECHNOLOGY|5|100;QXZ|RETAIL|0.5|100", b"DROP", b"WAS|TECHNOLOGY_HARDWARE|-3|50",
                 b"FAIL", b"JKL|FINANCIAL|2|101"]
        put(env, src, texts)
        start(env, name, "TRIM_HORIZON")
        rows = [json.loads(d) for _, d in wait_records(env, out, 3)]
        assert rows == E1_OUT, rows
        errs = [json.loads(d) for _, d in wait_records(env, errors, 1)]
        assert [(e["ERROR_NAME"], bytes.fromhex(e["DATA_ROW"])) for e in errs] == [
            ("ProcessingFailed", b"FAIL")], errs
        # The failed invocation and the one after it carried the same records,
        # each with its Kinesis metadata; recordId is the sequence number.
        events = fn.events()
        assert len(events) >= 2 and events[0]["records"] == events[1]["records"], events
        first = events[0]
        assert (first["applicationArn"], first["streamArn"]) == (app_arn(name), stream_arn(src))
        seqs = [r["SequenceNumber"] for r in env.kinesis.get_records(
            ShardIterator=env.kinesis.get_shard_iterator(
                StreamName=src, ShardId="shardId-000000000000",
                ShardIteratorType="TRIM_HORIZON")["ShardIterator"])["Records"]]
        assert [r["recordId"] for r in first["records"]] == seqs, first
        meta = first["records"][0]["kinesisStreamRecordMetadata"]
        assert (meta["sequenceNumber"], meta["partitionKey"], meta["shardId"]) == (
            seqs[0], "0", "shardId-000000000000"), meta
        assert isinstance(meta["approximateArrivalTimestamp"], int), meta
        assert [base64.b64decode(r["data"]) for r in first["records"]] == texts
        # InputProcessing.*: three records Ok (their data as answered), one
        # dropped, one failed.
        at = flow("Input", env.describe(name)["InputDescriptions"][0]["InputId"])
        until(lambda: analytics_metric(env, name, "InputProcessing.OkRecords", at) == 3,
              "the preprocessing counted", timeout=30)
        assert analytics_metric(env, name, "InputProcessing.DroppedRecords", at) == 1
        assert analytics_metric(env, name, "InputProcessing.ProcessingFailedRecords", at) == 1
        assert analytics_metric(env, name, "InputProcessing.OkBytes", at) > 0
        # Per invocation: the first (a 500) not answered, the rest answered.
        invocations = analytics_metric(env, name, "InputProcessing.Success", at, "SampleCount")
        assert invocations == len(fn.events()) >= 2
        assert analytics_metric(env, name, "InputProcessing.Success", at) == invocations - 1
        assert analytics_metric(env, name, "InputProcessing.Duration", at, "SampleCount") == invocations
        env.ka.stop_application(ApplicationName=name)
        # DiscoverInputSchema through the same function: the schema of what
        # it answers Ok, those records given back as ProcessedInputRecords.
        found = env.ka.discover_input_schema(
            ResourceARN=stream_arn(src), RoleARN=ROLE,
            InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"},
            InputProcessingConfiguration={
                "InputLambdaProcessor": {"ResourceARN": fn.url, "RoleARN": ROLE}})
        assert [c["Name"] for c in found["InputSchema"]["RecordColumns"]] == [
            "TICKER_SYMBOL", "SECTOR", "CHANGE", "PRICE"], found
        assert [r.encode() for r in found["RawInputRecords"]] == texts, found
        processed = [json.loads(line) for r in found["ProcessedInputRecords"]
                     for line in r.splitlines()]
        assert [p["TICKER_SYMBOL"] for p in processed] == ["AMZN", "QXZ", "WAS", "JKL"], found
    finally:
        fn.close()


def test_rows_too_large_for_a_record_are_dropped_and_the_rest_goes_on(env):
    code = '''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (T VARCHAR(2000000));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM TICKER || TICKER || TICKER || TICKER || TICKER || TICKER
    FROM "SOURCE_SQL_STREAM_001";
'''
    columns = [{"Name": "TICKER", "Mapping": "$.TICKER", "SqlType": "VARCHAR(300000)"}]
    src, out = make_stream(env), make_stream(env)
    name = env.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(columns))],
                      Outputs=[stream_output(stream_arn(out))], ApplicationCode=code)
    start(env, name, "NOW")
    put(env, src, [{"TICKER": "x" * 200_000}])  # 1.2 MB out: more than a record holds
    put(env, src, [{"TICKER": "ok"}])
    rows = [json.loads(d) for _, d in wait_records(env, out, 1)]
    assert rows == [{"T": "okokokokokok"}], [len(json.dumps(r)) for r in rows]
    env.ka.stop_application(ApplicationName=name)


def test_e8_joins_a_reference_table_from_the_embedded_store(env):
    import os
    from analytics_env import reference
    bucket = unique("ref")
    # The server's data directory is env.data/d (conftest).
    os.makedirs(os.path.join(env.data, "d", "s3", bucket), exist_ok=True)
    with open(os.path.join(env.data, "d", "s3", bucket, "tickers.csv"), "w") as f:
        f.write("AMZN,Amazon\nWAS,Washington Co\n")
    src, out = make_stream(env), make_stream(env)
    def app(key):
        name = env.create(Inputs=[stream_input(stream_arn(src))],
                          Outputs=[stream_output(stream_arn(out))])
        env.ka.add_application_reference_data_source(
            ApplicationName=name, CurrentApplicationVersionId=1,
            ReferenceDataSource=reference(bucket=bucket, key=key))
        env.ka.update_application(ApplicationName=name, CurrentApplicationVersionId=2,
                                  ApplicationUpdate={"ApplicationCodeUpdate": E8})
        return name
    name = app("tickers.csv")
    start(env, name, "NOW")
    put(env, src, [{"TICKER_SYMBOL": t, "SECTOR": "S", "CHANGE": 1, "PRICE": 2}
                   for t in ["AMZN", "QXZ", "WAS", "NFS"]])
    rows = [json.loads(d) for _, d in wait_records(env, out, 4)]
    assert [(r["TICKER_SYMBOL"], r["Company"]) for r in rows] == [
        ("AMZN", "Amazon"), ("QXZ", None), ("WAS", "Washington Co"), ("NFS", None)], rows
    # Another object named while the application runs: the table is read
    # again, and later rows join with it; the rows before stay as written.
    with open(os.path.join(env.data, "d", "s3", bucket, "tickers2.csv"), "w") as f:
        f.write("QXZ,Quixotic\nAMZN,Amazon.com\n")
    d = env.describe(name)
    ref_id = d["ReferenceDataSourceDescriptions"][0]["ReferenceId"]
    env.ka.update_application(
        ApplicationName=name, CurrentApplicationVersionId=d["ApplicationVersionId"],
        ApplicationUpdate={"ReferenceDataSourceUpdates": [{
            "ReferenceId": ref_id, "S3ReferenceDataSourceUpdate": {"FileKeyUpdate": "tickers2.csv"}}]})
    assert env.describe(name)["ApplicationStatus"] == "RUNNING"
    put(env, src, [{"TICKER_SYMBOL": t, "SECTOR": "S", "CHANGE": 1, "PRICE": 2}
                   for t in ["AMZN", "QXZ", "WAS"]])
    rows = [json.loads(d) for _, d in wait_records(env, out, 7)]
    assert [(r["TICKER_SYMBOL"], r["Company"]) for r in rows] == [
        ("AMZN", "Amazon"), ("QXZ", None), ("WAS", "Washington Co"), ("NFS", None),
        ("AMZN", "Amazon.com"), ("QXZ", "Quixotic"), ("WAS", None)], rows
    env.ka.stop_application(ApplicationName=name)
    # A reference object that is not there: Start says so.
    other = app("missing.csv")
    code, message, _ = refused(env.ka.start_application, ApplicationName=other,
                               InputConfigurations=[{"Id": "1.1", "InputStartingPositionConfiguration": {
                                   "InputStartingPosition": "NOW"}}])
    assert code == BAD_CONFIG and "missing.csv" in message, (code, message)
    assert env.describe(other)["ApplicationStatus"] == "READY"
