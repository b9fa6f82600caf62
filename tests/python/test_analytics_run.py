"""Kinesis Data Analytics applications running on the real binary (boto3):
started from TRIM_HORIZON or NOW, records put into the input stream come out
of the output stream as AWS's examples say (E1's filter, E2's tumbling
window), bad records and failing rows go to an output named error_stream,
StopApplication stops the run, and what Start refuses."""

import json

from analytics_env import (  # noqa: F401 (fixtures: shared, env)
    E1, env, json_schema, refused, shared, stream_arn, stream_input, stream_output, unique, until,
)

INVALID = "InvalidArgumentException"
BAD_CONFIG = "InvalidApplicationConfigurationException"
UNSUPPORTED = "UnsupportedOperationException"
IN_USE = "ResourceInUseException"


def make_stream(env, shards=1):
    name = unique("s")
    env.kinesis.create_stream(StreamName=name, ShardCount=shards)
    until(lambda: env.kinesis.describe_stream_summary(StreamName=name)[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", f"{name} ACTIVE")
    return name


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


def start(env, name, position):
    d = env.describe(name)
    env.ka.start_application(ApplicationName=name, InputConfigurations=[{
        "Id": d["InputDescriptions"][0]["InputId"],
        "InputStartingPositionConfiguration": {"InputStartingPosition": position}}])


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
        # <application id>:<output id>:<row number>
        app, output, n = key.split(":")
        app_id = app_id or app
        assert (app, int(n)) == (app_id, i), key
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
    assert code == INVALID and "LAST_STOPPED_POINT" in message, (code, message)
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
