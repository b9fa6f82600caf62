"""Checkpoints of Kinesis Data Analytics applications on the real binary
(boto3): StartApplication with LAST_STOPPED_POINT resumes where the last run
stopped, a server killed with SIGKILL resumes each RUNNING application from
its last checkpoint, and an application that never ran starts from NOW. In
each, a per-row pump's output holds every input row exactly once and a
tumbling window's output holds each closed window's counts exactly once, as
computed from the input records' arrival times (a row's ROWTIME)."""

import datetime
import json
import os
import shutil
import signal
import threading
import time
from collections import Counter

from analytics_env import (  # noqa: F401 (fixtures: shared, env)
    Env, env, json_schema, shared, stream_arn, stream_input, stream_output, unique, until,
)
from conftest import _log_tail, _server_logs, start_server, stop_server
from lambda_env import client, start_on

COLUMNS = [{"Name": "id", "Mapping": "$.id", "SqlType": "INTEGER"},
           {"Name": "k", "Mapping": "$.k", "SqlType": "VARCHAR(8)"}]
KEYS = ["a", "b", "c"]
WINDOW_MS = 2000
# Every input row once into ROWS_OUT; a 2-second tumbling count per key into
# COUNTS, with the window's start ("w", the STEP of the GROUP BY) so a row
# says which window it closes: the output JSON has no ROWTIME.
CODE = '''CREATE OR REPLACE STREAM "ROWS_OUT" ("id" INTEGER);
CREATE OR REPLACE PUMP "P1" AS INSERT INTO "ROWS_OUT"
    SELECT STREAM "id" FROM "SOURCE_SQL_STREAM_001";
CREATE OR REPLACE STREAM "COUNTS" ("k" VARCHAR(8), "n" INTEGER, "w" TIMESTAMP);
CREATE OR REPLACE PUMP "P2" AS INSERT INTO "COUNTS"
    SELECT STREAM "k", COUNT(*), STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '2' SECOND)
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY "k", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '2' SECOND);
'''
# Seconds the outputs may take to hold what the input says (the last window
# closes about a second after its end).
OUTPUT_WAIT = 20


# ---------------------------------------------------------------- helpers

def make_stream(e, shards=1):
    name = unique("ck")
    e.kinesis.create_stream(StreamName=name, ShardCount=shards)
    until(lambda: e.kinesis.describe_stream_summary(StreamName=name)[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", f"{name} ACTIVE")
    return name


def make_app(e, src, rows_out, counts):
    """The application of CODE reading `src`, writing ROWS_OUT into `rows_out`
    and COUNTS into `counts` (JSON)."""
    return e.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(COLUMNS))],
                    Outputs=[stream_output(stream_arn(rows_out), name="ROWS_OUT"),
                             stream_output(stream_arn(counts), name="COUNTS")],
                    ApplicationCode=CODE)


def start(e, name, position):
    d = e.describe(name)
    e.ka.start_application(ApplicationName=name, InputConfigurations=[{
        "Id": d["InputDescriptions"][0]["InputId"],
        "InputStartingPositionConfiguration": {"InputStartingPosition": position}}])
    assert e.describe(name)["ApplicationStatus"] == "RUNNING"


def entries(ids):
    """PutRecords entries of rows `ids`: key KEYS[id % 3], partition key the
    id (spreading the rows over the shards)."""
    return [{"Data": json.dumps({"id": i, "k": KEYS[i % len(KEYS)]}).encode(),
             "PartitionKey": str(i)} for i in ids]


def put(e, stream, ids):
    got = e.kinesis.put_records(StreamName=stream, Records=entries(ids))
    assert got["FailedRecordCount"] == 0, got


def put_spread(e, stream, ids, calls, pause):
    """`ids` in `calls` PutRecords calls `pause` seconds apart (arrival times
    spread over windows)."""
    ids = list(ids)
    size = -(-len(ids) // calls)
    for n, at in enumerate(range(0, len(ids), size)):
        if n:
            time.sleep(pause)
        put(e, stream, ids[at:at + size])


def read_stream(e, stream):
    """Every record of every shard of `stream` so far: (shard, partition key,
    data, arrival ms)."""
    out = []
    for shard in e.kinesis.list_shards(StreamName=stream)["Shards"]:
        it = e.kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            got = e.kinesis.get_records(ShardIterator=it, Limit=10000)
            out.extend((shard["ShardId"], r["PartitionKey"], r["Data"],
                        round(r["ApproximateArrivalTimestamp"].timestamp() * 1000))
                       for r in got["Records"])
            if not got["Records"]:
                break
            it = got.get("NextShardIterator")
    return out


def input_rows(e, src):
    """The input stream's rows: (id, key, arrival ms)."""
    rows = []
    for _, _, data, arrival in read_stream(e, src):
        row = json.loads(data)
        rows.append((row["id"], row["k"], arrival))
    return rows


def window_of(arrival_ms):
    return arrival_ms // WINDOW_MS * WINDOW_MS


def expected_windows(rows):
    """COUNTS's rows for `rows`: {(window start ms, key): count}."""
    return Counter((window_of(arrival), k) for _, k, arrival in rows)


def timestamp_ms(text):
    """A TIMESTAMP as the encoder writes it (`yyyy-MM-dd HH:mm:ss.SSS`, UTC)."""
    t = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    return round(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def outputs(e, rows_out, counts):
    """What the outputs hold: (ROWS_OUT's ids, COUNTS's rows as (window start
    ms, key, count), ROWS_OUT's partition keys, COUNTS's partition keys)."""
    rows = read_stream(e, rows_out)
    windows = read_stream(e, counts)
    ids = [json.loads(data)["id"] for _, _, data, _ in rows]
    counted = []
    for _, _, data, _ in windows:
        row = json.loads(data)
        counted.append((timestamp_ms(row["w"]), row["k"], row["n"]))
    return ids, counted, [key for _, key, _, _ in rows], [key for _, key, _, _ in windows]


def wait_outputs(e, rows_out, counts, rows):
    """Waits until ROWS_OUT holds every id of `rows` and COUNTS every window
    of `rows` (the last closes when the shards' watermarks pass its end, at
    most a second after it for an idle shard); gives `outputs`. On timeout,
    says what is missing."""
    want_ids = {i for i, _, _ in rows}
    want_windows = expected_windows(rows)
    missing = {}

    def probe():
        got = outputs(e, rows_out, counts)
        ids, counted = set(got[0]), {(w, k) for w, k, _ in got[1]}
        missing["ids"] = sorted(want_ids - ids)[:10]
        missing["windows"] = sorted(set(want_windows) - counted)[:10]
        return got if not missing["ids"] and not missing["windows"] else None

    try:
        return until(probe, "the outputs", timeout=OUTPUT_WAIT)
    except AssertionError:
        raise AssertionError(f"the outputs miss ids {missing['ids']} and windows "
                             f"{missing['windows']} (first 10 of each)") from None


def assert_exactly_once(got, rows):
    """ROWS_OUT holds each id of `rows` once and nothing else; COUNTS holds
    each window's count per key once and nothing else; the records' partition
    keys are unique in each output."""
    ids, counted, row_keys, window_keys = got
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    assert not repeated, f"{len(repeated)} ids written more than once, e.g. {repeated[:10]}"
    want_ids = {i for i, _, _ in rows}
    assert set(ids) == want_ids, (sorted(set(ids) - want_ids)[:10], sorted(want_ids - set(ids))[:10])
    want = Counter((w, k, n) for (w, k), n in expected_windows(rows).items())
    extra, short = Counter(counted) - want, want - Counter(counted)
    assert not extra and not short, (
        f"COUNTS rows not expected (or repeated): {sorted(extra.elements())[:10]}; "
        f"expected, not there: {sorted(short.elements())[:10]}")
    assert len(set(row_keys)) == len(row_keys), Counter(row_keys).most_common(3)
    assert len(set(window_keys)) == len(window_keys), Counter(window_keys).most_common(3)


def spread_over_shards(e, src, rows):
    """Every shard of `src` holds some of `rows` (the test covers several)."""
    shards = Counter(shard for shard, _, _, _ in read_stream(e, src))
    assert len(shards) == len(e.kinesis.list_shards(StreamName=src)["Shards"]) > 1, shards
    assert sum(shards.values()) == len(rows)


# ---------------------------------------------------------------- the tests

def test_stop_and_last_stopped_point_loses_and_repeats_nothing(env):
    src, rows_out, counts = make_stream(env, shards=2), make_stream(env), make_stream(env)
    name = make_app(env, src, rows_out, counts)
    start(env, name, "TRIM_HORIZON")
    # Before the stop: 300 rows over about 3 s (two windows at least, one
    # closed before the stop).
    put_spread(env, src, range(0, 300), calls=6, pause=0.5)
    until(lambda: (o := outputs(env, rows_out, counts)) and len(o[0]) >= 250 and o[1],
          "rows and a closed window written before the stop", timeout=OUTPUT_WAIT)
    env.ka.stop_application(ApplicationName=name)
    until(lambda: env.describe(name)["ApplicationStatus"] == "READY", f"{name} READY")
    # While stopped: read after the start from the last stopped point.
    put_spread(env, src, range(300, 600), calls=3, pause=0.3)
    start(env, name, "LAST_STOPPED_POINT")
    put_spread(env, src, range(600, 900), calls=3, pause=0.3)

    rows = input_rows(env, src)
    assert sorted(i for i, _, _ in rows) == list(range(900))
    spread_over_shards(env, src, rows)
    got = wait_outputs(env, rows_out, counts, rows)
    assert_exactly_once(got, rows)
    env.ka.stop_application(ApplicationName=name)


def stop_or_clean(proc, data):
    """stop_server for a running server; for one already dead, its log is kept
    for the report and its data directory removed."""
    if proc.poll() is None:
        stop_server(proc, data)
    else:
        log = os.path.join(data, "server.log")
        _server_logs.append((log, _log_tail(log)))
        shutil.rmtree(data, ignore_errors=True)


def test_kill_9_resumes_from_the_checkpoint():
    proc, http, data = start_server()
    try:
        e = Env(http, data)
        src, rows_out, counts = make_stream(e, shards=2), make_stream(e), make_stream(e)
        name = make_app(e, src, rows_out, counts)
        start(e, name, "TRIM_HORIZON")

        # A writer puts 20 rows every 50 ms until the server dies under it.
        acked = []
        writer_kinesis = client("kinesis", e.endpoint)

        def write():
            n = 0
            while True:
                ids = list(range(n, n + 20))
                n += 20
                try:
                    got = writer_kinesis.put_records(StreamName=src, Records=entries(ids))
                except Exception:
                    return
                acked.extend(i for i, r in zip(ids, got["Records"]) if "SequenceNumber" in r)
                time.sleep(0.05)

        writer = threading.Thread(target=write, daemon=True)
        began = time.monotonic()
        writer.start()
        # About 3 s of load (checkpoints every second), with rows and closed
        # windows already written; the kill lands while puts flow.
        until(lambda: time.monotonic() - began >= 3
              and (o := outputs(e, rows_out, counts)) and len(o[0]) >= 100 and o[1],
              "3 s of rows and closed windows", timeout=OUTPUT_WAIT)
        # The kill follows a put of 500 rows at once, which the application
        # has likely not all written yet.
        last = range(500_000, 500_500)
        put(e, src, last)
        acked.extend(last)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        writer.join(timeout=30)
        assert not writer.is_alive()
        assert len(acked) >= 200, len(acked)

        proc, http = start_on(data)
        e = Env(http, data)
        # RUNNING again by itself; rows put now are read too.
        assert e.describe(name)["ApplicationStatus"] == "RUNNING"
        put_spread(e, src, range(1_000_000, 1_000_200), calls=2, pause=0.5)

        rows = input_rows(e, src)
        in_ids = {i for i, _, _ in rows}
        assert len(in_ids) == len(rows)
        lost = sorted(set(acked) - in_ids)
        assert not lost, f"acknowledged puts missing from the input: {lost[:10]}"
        spread_over_shards(e, src, rows)
        got = wait_outputs(e, rows_out, counts, rows)
        assert_exactly_once(got, rows)
        e.ka.stop_application(ApplicationName=name)
    finally:
        stop_or_clean(proc, data)


def test_last_stopped_point_on_an_application_that_never_ran_starts_at_now(env):
    # One shard: rows are read in order, so once the row put after the start
    # is out, any row read before it would be out too.
    src, rows_out, counts = make_stream(env), make_stream(env), make_stream(env)
    name = make_app(env, src, rows_out, counts)
    put(env, src, range(0, 5))
    start(env, name, "LAST_STOPPED_POINT")
    put(env, src, [100])
    arrival = next(a for i, _, a in input_rows(env, src) if i == 100)
    got = until(lambda: (o := outputs(env, rows_out, counts)) and o[0] and o[1] and o,
                "the row and its window", timeout=OUTPUT_WAIT)
    ids, counted, _, _ = got
    assert ids == [100], ids
    assert counted == [(window_of(arrival), KEYS[100 % len(KEYS)], 1)], counted
    env.ka.stop_application(ApplicationName=name)
