"""Checkpoints of Kinesis Data Analytics applications on the real binary
(boto3): StartApplication with LAST_STOPPED_POINT resumes where the last run
stopped, a server killed with SIGKILL resumes each RUNNING application from
its last checkpoint, and an application that never ran starts from NOW. In
each, a per-row pump's output holds every input row exactly once and a
tumbling window's output holds each closed window's counts exactly once, as
computed from the input records' arrival times (a row's ROWTIME). A second
application takes the other paths, through a Stop and LAST_STOPPED_POINT and
through two kills (the second of a resumed run): per-row rows made and
written by the home task (its input mapped into a stream another pump
reads) exactly once, a sliding window's rows exactly once with their counts
exact, and every record that is not JSON in error_stream at least once."""

import datetime
import json
import os
import shutil
import signal
import threading
import time
from collections import Counter

from analytics_env import (  # noqa: F401 (fixtures: shared, env)
    Env, env, json_schema, shared, start_at, stream_arn, stream_input, stream_output, unique, until,
)
from analytics_env import make_stream as shared_make_stream
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
    return shared_make_stream(e, shards, prefix="ck")


def make_app(e, src, rows_out, counts):
    """The application of CODE reading `src`, writing ROWS_OUT into `rows_out`
    and COUNTS into `counts` (JSON)."""
    return e.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(COLUMNS))],
                    Outputs=[stream_output(stream_arn(rows_out), name="ROWS_OUT"),
                             stream_output(stream_arn(counts), name="COUNTS")],
                    ApplicationCode=CODE)


def start(e, name, position):
    start_at(e, name, position)
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


def test_a_backlog_of_full_reads_then_a_resume_loses_and_repeats_nothing(env):
    # 30,000 rows on one shard, stored before the start: the source reads
    # them 10,000 at a time, the second and third reads asked for while the
    # one before is processed (a read ahead at the wrong offset loses or
    # repeats rows here). The stop comes soon after the drain; the resumed
    # run replays the span its windows need from the last checkpoint (how
    # much depends on when that was taken: none to two full reads, read
    # quietly up to the checkpoint's offset), then reads on.
    src, rows_out, counts = make_stream(env), make_stream(env), make_stream(env)
    name = make_app(env, src, rows_out, counts)
    for at in range(0, 30_000, 500):
        put(env, src, range(at, at + 500))
    start(env, name, "TRIM_HORIZON")
    until(lambda: len(outputs(env, rows_out, counts)[0]) >= 30_000,
          "the backlog's rows written", timeout=OUTPUT_WAIT)
    env.ka.stop_application(ApplicationName=name)
    until(lambda: env.describe(name)["ApplicationStatus"] == "READY", f"{name} READY")
    put(env, src, range(30_000, 30_500))
    start(env, name, "LAST_STOPPED_POINT")
    put_spread(env, src, range(30_500, 31_000), calls=2, pause=0.3)

    rows = input_rows(env, src)
    assert sorted(i for i, _, _ in rows) == list(range(31_000))
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


# ------------------------------------------- home rows, sliding window, errors

# A second application, for the paths the first does not take: MID is read
# by a pump, so its rows (and KEPT's, made from them) are made and written by
# the home task (partition keys `h<shard>:<n>`); SLIDE's rows are released by
# a sliding window once the watermark passes them (`w<pump>:<ROWTIME>:<k>`);
# records that are not JSON go to error_stream (`e<n>`).
CHAIN_CODE = '''CREATE OR REPLACE STREAM "MID" ("id" INTEGER, "k" VARCHAR(8));
CREATE OR REPLACE PUMP "PA" AS INSERT INTO "MID"
    SELECT STREAM "id", "k" FROM "SOURCE_SQL_STREAM_001";
CREATE OR REPLACE STREAM "KEPT" ("id" INTEGER);
CREATE OR REPLACE PUMP "PB" AS INSERT INTO "KEPT"
    SELECT STREAM "id" FROM "MID" WHERE "k" <> 'c';
CREATE OR REPLACE STREAM "SLIDE" ("id" INTEGER, "n" INTEGER);
CREATE OR REPLACE PUMP "PC" AS INSERT INTO "SLIDE"
    SELECT STREAM "id",
        COUNT(*) OVER (PARTITION BY "k" RANGE INTERVAL '2' SECOND PRECEDING)
    FROM "SOURCE_SQL_STREAM_001";
'''
SLIDE_MS = 2000


class Chain:
    """CHAIN_CODE's application and its streams: the input `src`, KEPT's
    `kept`, SLIDE's `slide` and error_stream's `errors`."""

    def __init__(self, e, shards=2):
        self.src, self.kept, self.slide, self.errors = (
            make_stream(e, shards=shards), make_stream(e), make_stream(e), make_stream(e))
        self.name = e.create(
            Inputs=[stream_input(stream_arn(self.src), schema=json_schema(COLUMNS))],
            Outputs=[stream_output(stream_arn(self.kept), name="KEPT"),
                     stream_output(stream_arn(self.slide), name="SLIDE"),
                     stream_output(stream_arn(self.errors), name="error_stream")],
            ApplicationCode=CHAIN_CODE)


def bad_data(n):
    return f"not json {n}".encode()


def mixed_entries(ids, bad=()):
    """`entries(ids)`, then a record that is not JSON per number of `bad`."""
    return entries(ids) + [{"Data": bad_data(n), "PartitionKey": f"bad{n}"} for n in bad]


def put_mixed(e, stream, ids, bad=()):
    got = e.kinesis.put_records(StreamName=stream, Records=mixed_entries(ids, bad))
    assert got["FailedRecordCount"] == 0, got


def chain_input(e, src):
    """The input's records: its good rows as (id, key, arrival ms, shard
    index, position in the shard) and the numbers of its bad records."""
    rows, bad, position = [], [], Counter()
    for shard, _, data, arrival in read_stream(e, src):
        index = int(shard.rsplit("-", 1)[1])
        position[index] += 1
        if data.startswith(b"not json "):
            bad.append(int(data.split()[-1]))
            continue
        row = json.loads(data)
        rows.append((row["id"], row["k"], arrival, index, position[index]))
    return rows, bad


def expected_kept(rows):
    return {i for i, k, *_ in rows if k != "c"}


def expected_slide(rows):
    """SLIDE's row per input row, {id: count}, as exec/sliding.rs frames it:
    home orders the rows by (ROWTIME, shard, position in the shard); a row's
    frame is itself and the rows of its key before it in that order whose
    ROWTIME is at least its own less 2 s (so rows of equal ROWTIME later in
    the order are not in it)."""
    frames, counts = {}, {}
    for i, k, arrival, shard, position in sorted(rows, key=lambda r: (r[2], r[3], r[4])):
        frame = frames.setdefault(k, [])
        frame.append(arrival)
        while frame[0] < arrival - SLIDE_MS:
            frame.pop(0)
        counts[i] = len(frame)
    return counts


def chain_outputs(e, c):
    """What the outputs hold: KEPT's (id, partition key)s, SLIDE's (id,
    count, partition key)s, error_stream's (bad number, partition key)s."""
    kept = [(json.loads(d)["id"], key) for _, key, d, _ in read_stream(e, c.kept)]
    slide = []
    for _, key, d, _ in read_stream(e, c.slide):
        row = json.loads(d)
        slide.append((row["id"], row["n"], key))
    errors = []
    for _, key, d, _ in read_stream(e, c.errors):
        row = json.loads(d)
        data = bytes.fromhex(row["DATA_ROW"])
        assert row["ERROR_NAME"] == "Parse_error" and data.startswith(b"not json "), row
        errors.append((int(data.split()[-1]), key))
    return kept, slide, errors


def wait_chain(e, c, rows, bad):
    """Waits until KEPT holds every id it should, SLIDE a row per input row
    and error_stream every bad record; gives `chain_outputs`."""
    want_kept, want_slide, want_bad = expected_kept(rows), {i for i, *_ in rows}, set(bad)
    missing = {}

    def probe():
        got = chain_outputs(e, c)
        missing["KEPT"] = sorted(want_kept - {i for i, _ in got[0]})[:10]
        missing["SLIDE"] = sorted(want_slide - {i for i, _, _ in got[1]})[:10]
        missing["error_stream"] = sorted(want_bad - {n for n, _ in got[2]})[:10]
        return got if not any(missing.values()) else None

    try:
        return until(probe, "the outputs", timeout=OUTPUT_WAIT)
    except AssertionError:
        raise AssertionError(f"the outputs miss (first 10 of each): {missing}") from None


def key_tag(key):
    """The row's kind in its partition key
    (`<app id>:<output id>:<epoch>:<tag>...`): `r`, `w` or `e`."""
    return key.split(":")[3][0]


def assert_chain_exactly_once(got, rows, bad):
    """KEPT holds each id whose key is not `c` once and nothing else, written
    as per-row rows (`r` keys); SLIDE holds one row per input row, its count exact, and
    nothing else; error_stream holds every bad record at least once (as the
    docs promise) and nothing else; partition keys are unique in each."""
    kept, slide, errors = got
    ids = [i for i, _ in kept]
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    assert not repeated, (f"KEPT: {len(repeated)} ids written more than once, e.g. "
                          f"{[(i, k) for i, k in kept if i in repeated[:5]]}")
    want = expected_kept(rows)
    assert set(ids) == want, ("KEPT: extra, missing", sorted(set(ids) - want)[:10],
                              sorted(want - set(ids))[:10])
    assert {key_tag(k) for _, k in kept} == {"r"}, Counter(key_tag(k) for _, k in kept)

    slid = [i for i, _, _ in slide]
    repeated = sorted(i for i, n in Counter(slid).items() if n > 1)
    assert not repeated, (f"SLIDE: {len(repeated)} ids written more than once, e.g. "
                          f"{[r for r in slide if r[0] in repeated[:5]]}")
    want = expected_slide(rows)
    assert set(slid) == set(want), ("SLIDE: extra, missing", sorted(set(slid) - set(want))[:10],
                                    sorted(set(want) - set(slid))[:10])
    wrong = [(i, n, want[i], key) for i, n, key in slide if n != want[i]]
    assert not wrong, (f"SLIDE: {len(wrong)} counts not the expected ones "
                       f"(id, got, want, key): {wrong[:10]}")
    assert {key_tag(k) for _, _, k in slide} == {"w"}, Counter(key_tag(k) for _, _, k in slide)

    numbers = {n for n, _ in errors}
    assert numbers == set(bad), ("error_stream: extra, missing", sorted(numbers - set(bad)),
                                 sorted(set(bad) - numbers))
    assert {key_tag(k) for _, k in errors} <= {"e"}, errors[:5]

    for name, keys in (("KEPT", [k for _, k in kept]), ("SLIDE", [k for _, _, k in slide])):
        assert len(set(keys)) == len(keys), (name, Counter(keys).most_common(3))


def test_stop_and_last_stopped_point_home_rows_and_a_sliding_window(env):
    c = Chain(env)
    start(env, c.name, "TRIM_HORIZON")
    # Before the stop: 300 rows (and 3 bad records) over about 2.5 s, so
    # frames reach over the stop.
    for n, at in enumerate(range(0, 300, 50)):
        if n:
            time.sleep(0.5)
        put_mixed(env, c.src, range(at, at + 50), bad=[n] if n % 2 == 0 else [])
    until(lambda: (o := chain_outputs(env, c)) and len(o[0]) >= 150 and len(o[1]) >= 200,
          "KEPT and SLIDE rows written before the stop", timeout=OUTPUT_WAIT)
    env.ka.stop_application(ApplicationName=c.name)
    until(lambda: env.describe(c.name)["ApplicationStatus"] == "READY", f"{c.name} READY")
    # While stopped, then after the start from the last stopped point.
    put_mixed(env, c.src, range(300, 450), bad=[100])
    time.sleep(0.3)
    put_mixed(env, c.src, range(450, 600))
    start(env, c.name, "LAST_STOPPED_POINT")
    for n, at in enumerate(range(600, 900, 100)):
        if n:
            time.sleep(0.3)
        put_mixed(env, c.src, range(at, at + 100), bad=[200 + n])

    rows, bad = chain_input(env, c.src)
    assert sorted(i for i, *_ in rows) == list(range(900))
    assert len(bad) == 7 and len({r[3] for r in rows}) == 2, (bad, Counter(r[3] for r in rows))
    got = wait_chain(env, c, rows, bad)
    assert_chain_exactly_once(got, rows, bad)
    env.ka.stop_application(ApplicationName=c.name)


def test_kill_9_home_rows_a_sliding_window_and_error_stream():
    proc, http, data = start_server()
    try:
        e = Env(http, data)
        c = Chain(e)
        start(e, c.name, "TRIM_HORIZON")
        acked, acked_bad = [], []

        def load_and_kill(e, proc, base, seconds):
            """A writer puts 20 rows (ids from `base`; every third call also
            a bad record) every 50 ms; after `seconds` of load (checkpoints
            every second) with this load's KEPT, SLIDE and error rows
            written, a put of 500 records the application has likely not
            all written yet, and the kill while the writer's puts flow."""
            writer_kinesis = client("kinesis", e.endpoint)

            def write():
                n = 0
                while True:
                    ids = list(range(base + 20 * n, base + 20 * n + 20))
                    bad = [base + n] if n % 3 == 0 else []
                    n += 1
                    try:
                        got = writer_kinesis.put_records(StreamName=c.src,
                                                         Records=mixed_entries(ids, bad))
                    except Exception:
                        return
                    done = ["SequenceNumber" in r for r in got["Records"]]
                    acked.extend(i for i, ok in zip(ids, done) if ok)
                    acked_bad.extend(b for b, ok in zip(bad, done[len(ids):]) if ok)
                    time.sleep(0.05)

            writer = threading.Thread(target=write, daemon=True)
            began = time.monotonic()
            writer.start()

            def loaded():
                if time.monotonic() - began < seconds:
                    return False
                kept, slide, errors = chain_outputs(e, c)
                return (sum(i >= base for i, _ in kept) >= 50
                        and sum(i >= base for i, _, _ in slide) >= 50
                        and any(n >= base for n, _ in errors))

            until(loaded, f"{seconds} s of KEPT, SLIDE and error rows", timeout=OUTPUT_WAIT)
            last = range(base + 500_000, base + 500_499)
            put_mixed(e, c.src, last, bad=[base + 500_000])
            acked.extend(last)
            acked_bad.append(base + 500_000)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            writer.join(timeout=30)
            assert not writer.is_alive()

        # The first run killed; then the run resumed from its checkpoint
        # (once caught up, it checkpoints too) killed likewise.
        for base, seconds in ((0, 3), (2_000_000, 2.5)):
            load_and_kill(e, proc, base, seconds)
            proc, http = start_on(data)
            e = Env(http, data)
            # RUNNING again by itself.
            assert e.describe(c.name)["ApplicationStatus"] == "RUNNING"
        assert len(acked) >= 400 and len(acked_bad) >= 6, (len(acked), acked_bad)
        put_mixed(e, c.src, range(5_000_000, 5_000_100), bad=[5_000_000])
        time.sleep(0.5)
        put_mixed(e, c.src, range(5_000_100, 5_000_200))

        rows, bad = chain_input(e, c.src)
        in_ids = {i for i, *_ in rows}
        assert len(in_ids) == len(rows) and len(set(bad)) == len(bad)
        lost = sorted(set(acked) - in_ids) + sorted(set(acked_bad) - set(bad))
        assert not lost, f"acknowledged puts missing from the input: {lost[:10]}"
        assert len({r[3] for r in rows}) == 2, Counter(r[3] for r in rows)
        got = wait_chain(e, c, rows, bad)
        assert_chain_exactly_once(got, rows, bad)
        e.ka.stop_application(ApplicationName=c.name)
    finally:
        stop_or_clean(proc, data)
