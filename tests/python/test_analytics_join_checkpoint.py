"""A windowed stream-to-stream join across a kill -9 (boto3, the real
binary): orders and trades arrive on two shards while the server is killed
and started again; the join's output holds every (order, trade) pair the
join's rule gives for the records' arrival times exactly once (the resumed
run rebuilds the windows from its replay horizon and skips the rows written
before)."""

import json
import signal
import threading
import time
from collections import Counter

import pytest

from analytics_env import Env, json_schema, start_at, stream_arn, stream_input, stream_output, until
from analytics_env import make_stream as shared_make_stream
from conftest import start_server
from lambda_env import client, start_on
from test_analytics_checkpoint import read_stream, stop_or_clean

WINDOW_MS = 2000
COLUMNS = [{"Name": "ID", "Mapping": "$.id", "SqlType": "INTEGER"},
           {"Name": "K", "Mapping": "$.k", "SqlType": "INTEGER"}]
LEFT_WINDOW_MS = 1000


def code(left):
    """Even ids are orders, odd ids trades. Inner: an order meets the trades
    of its key that arrived within the 2 s before it. `left`: a LEFT join
    with a 1 s window on the orders too (a trade within the second after an
    order meets it), an order meeting none written once with a NULL trade."""
    orders = f"OVER (RANGE INTERVAL '{LEFT_WINDOW_MS // 1000}' SECOND PRECEDING) " if left else ""
    join = "LEFT OUTER JOIN" if left else "JOIN"
    return f'''CREATE OR REPLACE STREAM "OrderStream" ("orderId" INTEGER, k INTEGER);
CREATE OR REPLACE STREAM "TradeStream" ("tradeId" INTEGER, k INTEGER);
CREATE OR REPLACE STREAM "PAIRS" ("orderId" INTEGER, "tradeId" INTEGER);
CREATE OR REPLACE PUMP "O" AS INSERT INTO "OrderStream"
    SELECT STREAM id, k FROM "SOURCE_SQL_STREAM_001" WHERE MOD(id, 2) = 0;
CREATE OR REPLACE PUMP "T" AS INSERT INTO "TradeStream"
    SELECT STREAM id, k FROM "SOURCE_SQL_STREAM_001" WHERE MOD(id, 2) = 1;
CREATE OR REPLACE PUMP "J" AS INSERT INTO "PAIRS"
    SELECT STREAM o."orderId", t."tradeId"
    FROM "OrderStream" {orders}AS o
    {join} "TradeStream" OVER (RANGE INTERVAL '{WINDOW_MS // 1000}' SECOND PRECEDING) AS t
    ON o.k = t.k;
'''


def entries(ids, keys):
    return [{"Data": json.dumps({"id": i, "k": (i // 2) % keys}).encode(),
             "PartitionKey": str(i)} for i in ids]


def expected_pairs(e, src, left):
    """The rows the join's rule gives for the input's arrival times: (order,
    trade) pairs, and for `left` (order, None) for an order meeting none."""
    orders, trades = [], {}
    for _, _, data, arrival in read_stream(e, src):
        row = json.loads(data)
        if row["id"] % 2 == 0:
            orders.append((row["id"], row["k"], arrival))
        else:
            trades.setdefault(row["k"], []).append((row["id"], arrival))
    left_window = LEFT_WINDOW_MS if left else 0
    out = set()
    for o, k, to in orders:
        met = {t for t, tt in trades.get(k, [])
               if tt <= to <= tt + WINDOW_MS or to <= tt <= to + left_window}
        out |= {(o, t) for t in met}
        if left and not met:
            out.add((o, None))
    return out


def pairs_out(e, out):
    return [tuple(json.loads(data)[c] for c in ("orderId", "tradeId"))
            for _, _, data, _ in read_stream(e, out)]


@pytest.mark.parametrize("left,keys", [(False, 50), (True, 400)], ids=["inner", "left-outer"])
def test_kill_9_during_a_stream_join_loses_and_repeats_no_row(left, keys):
    """`keys`: sparse keys for the LEFT join, so that some orders' only
    trades are seconds older than the checkpoint."""
    proc, http, data = start_server()
    try:
        e = Env(http, data)
        src = shared_make_stream(e, 2, prefix="jk")
        out = shared_make_stream(e, 1, prefix="jo")
        name = e.create(Inputs=[stream_input(stream_arn(src), schema=json_schema(COLUMNS))],
                        Outputs=[stream_output(stream_arn(out), name="PAIRS")],
                        ApplicationCode=code(left))
        start_at(e, name, "TRIM_HORIZON")
        writer_kinesis = client("kinesis", e.endpoint)

        def write():
            n = 0
            while True:
                try:
                    writer_kinesis.put_records(StreamName=src, Records=entries(range(n, n + 20), keys))
                except Exception:
                    return
                n += 20
                time.sleep(0.05)  # a steady flow until the kill, not a wait for an event

        writer = threading.Thread(target=write, daemon=True)
        began = time.monotonic()
        writer.start()
        # About 4 s of load (checkpoints every second, windows of 2 s), with
        # pairs written; the kill lands while puts flow.
        until(lambda: time.monotonic() - began >= 4 and len(pairs_out(e, out)) >= 100,
              "4 s of pairs", timeout=30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        writer.join(timeout=30)
        assert not writer.is_alive()

        proc, http = start_on(data)
        e = Env(http, data)
        assert e.describe(name)["ApplicationStatus"] == "RUNNING"
        e.kinesis.put_records(StreamName=src, Records=entries(range(1_000_000, 1_000_100), keys))
        want = expected_pairs(e, src, left)
        assert len(want) > 500, len(want)
        got = until(lambda: (p := pairs_out(e, out)) and want <= set(p) and p,
                    "every pair", timeout=60)
        repeated = [p for p, n in Counter(got).items() if n > 1]
        assert not repeated, f"{len(repeated)} pairs written twice, e.g. {repeated[:5]}"
        assert set(got) == want, sorted(set(got) - want)[:5]
        e.ka.stop_application(ApplicationName=name)
    finally:
        stop_or_clean(proc, data)
