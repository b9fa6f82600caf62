"""Kinesis Data Analytics applications running on the real binary (boto3):
started from TRIM_HORIZON or NOW, records put into the input stream come out
of the output stream as AWS's examples say (E1's filter, E2's tumbling
window), bad records and failing rows go to an output named error_stream,
StopApplication stops the run, and what Start refuses."""

import json

from analytics_env import (  # noqa: F401 (fixtures: shared, env)
    E1, env, json_schema, make_stream, refused, shared, start_at, stream_arn, stream_input,
    stream_output, unique, until,
)

INVALID = "InvalidArgumentException"
BAD_CONFIG = "InvalidApplicationConfigurationException"
UNSUPPORTED = "UnsupportedOperationException"
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
        # <application id>:<output id>:<epoch>:s<shard>:<path>:<row
        # number> (rows written by the shard's own core; the path hashes
        # E1's one pump's name)
        app, output, epoch, shard, path, n = key.split(":")
        app_id = app_id or app
        assert (app, shard, len(path), int(n)) == (app_id, "s0", 16, i), key
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
    E8 = '''CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), "Company" varchar(20), sector VARCHAR(12), change DOUBLE, price DOUBLE);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
   SELECT STREAM ticker_symbol, "c"."Company", sector, change, price
   FROM "SOURCE_SQL_STREAM_001" LEFT JOIN "CompanyName" as "c"
   ON "SOURCE_SQL_STREAM_001".ticker_symbol = "c"."Ticker";
'''
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
