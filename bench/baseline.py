#!/usr/bin/env python3
"""Runs the performance baseline of docs/benchmarks.md: each configuration
RUNS times (default 3) with riffle-bench --json, then prints a markdown table
of medians (and every run) plus the machine state.

    cargo build --release -p riffle -p riffle-bench
    python3 bench/baseline.py [--runs 3] [--duration 10] [--data-dir DIR] [--only NAME,...]

Rates at "50% load" are half the median maximum measured earlier in the same
invocation for the same shape of load. The bench starts its own server (in a
temporary directory under --data-dir) for every run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "riffle-bench")

# The shape of the headline load: 8 producers with 4 PutRecords of 500 records
# in flight each, on 2 client threads, 4 shards.
HEAVY = ["--producers", "8", "--client-threads", "2"]


def run(args, extra, name):
    cmd = [args.bench, *extra, "--json", "-q", "--duration", str(args.duration), "--data-dir", args.data_dir]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{name}: {' '.join(cmd)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def series(args, name, extra):
    reports = [run(args, extra, name) for _ in range(args.runs)]
    return reports


def med(values):
    return statistics.median(values)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--data-dir", default=".")
    p.add_argument("--bench", default=BENCH)
    p.add_argument("--ram-dir", default=None, help="a RAM-backed ext4 mount for the device-independent read figure")
    p.add_argument("--only", default=None)
    args = p.parse_args()
    only = set(args.only.split(",")) if args.only else None
    rows = []

    def want(name):
        return only is None or name in only

    def add(name, what, reports, metric, unit, fmt, command):
        values = [metric(r) for r in reports]
        loads = [r["machine"]["loadavg"][0] for r in reports]
        cpu = [(r["cpu"]["client_s"], r["cpu"]["server_s"] or 0.0, r["duration_s"]) for r in reports]
        rows.append((name, what, fmt(med(values)) + unit, ", ".join(fmt(v) for v in values),
                     "%.1f-%.1f" % (min(loads), max(loads)),
                     "%.2f / %.2f" % (med([c[0] / c[2] for c in cpu]), med([c[1] / c[2] for c in cpu])),
                     command))
        print(f"{name}: {what} {fmt(med(values))}{unit} ({', '.join(fmt(v) for v in values)})", file=sys.stderr)

    gb = lambda v: "%.2f" % (v / 1e9)
    mrec = lambda v: "%.2f" % (v / 1e6)
    krec = lambda v: "%.0f" % (v / 1e3)
    us = lambda v: "%.0f" % v

    max_1k = None
    if want("ingest-1k") or want("ack-50") or want("e2e-50"):
        cmd = ["produce", "--inflight", "4", *HEAVY]
        rs = series(args, "ingest-1k", cmd)
        max_1k = med([r["records_per_sec"] for r in rs])
        add("ingest-1k", "1 KiB records, fsync", rs, lambda r: r["bytes_per_sec"], " GB/s", gb, cmd)
    if want("ingest-100"):
        cmd = ["produce", "--record-size", "100", "--inflight", "4", *HEAVY]
        rs = series(args, "ingest-100", cmd)
        add("ingest-100", "100 B records, fsync", rs, lambda r: r["records_per_sec"], " M records/s", mrec, cmd)
    if want("small-producers"):
        cmd = ["produce", "--producers", "64", "--batch", "10", "--record-size", "100", "--client-threads", "2"]
        rs = series(args, "small-producers", cmd)
        add("small-producers", "64 producers x batch 10 x 100 B, keyed, fsync", rs,
            lambda r: r["records_per_sec"], " k records/s", krec, cmd)
        add("small-producers", "  their produce-to-ack p99", rs, lambda r: r["latency_us"]["p99"], " µs", us, cmd)
    if max_1k and want("ack-50"):
        cmd = ["produce", "--rate", str(int(max_1k / 2)), *HEAVY]
        rs = series(args, "ack-50", cmd)
        add("ack-50", "produce-to-ack p99 at 50% of ingest-1k", rs, lambda r: r["latency_us"]["p99"], " µs", us, cmd)
    if max_1k and want("e2e-50"):
        cmd = ["end-to-end", "--rate", str(int(max_1k / 2)), "--consumers", "4", *HEAVY]
        rs = series(args, "e2e-50", cmd)
        add("e2e-50", "produce-to-consume p99 at 50% of ingest-1k", rs, lambda r: r["latency_us"]["p99"], " µs", us, cmd)
        add("e2e-50", "  produce-to-ack p99 in the same runs", rs, lambda r: r["ack_latency_us"]["p99"], " µs", us, cmd)
    max_tail = None
    if want("tail") or want("e2e-50-tail"):
        cmd = ["tail", "--inflight", "4", "--consumers", "4", *HEAVY]
        rs = series(args, "tail", cmd)
        max_tail = med([r["records_per_sec"] for r in rs])
        add("tail", "produce + tailing consumers, 1 KiB, consumed", rs, lambda r: r["bytes_per_sec"], " GB/s", gb, cmd)
    if max_tail and want("e2e-50-tail"):
        cmd = ["end-to-end", "--rate", str(int(max_tail / 2)), "--consumers", "4", *HEAVY]
        rs = series(args, "e2e-50-tail", cmd)
        add("e2e-50-tail", "produce-to-consume p99 at 50% of tail", rs, lambda r: r["latency_us"]["p99"], " µs", us, cmd)
        add("e2e-50-tail", "  produce-to-ack p99 in the same runs", rs, lambda r: r["ack_latency_us"]["p99"], " µs", us, cmd)
    if want("none-50"):
        cmd = ["produce", "--durability", "none", "--inflight", "4", *HEAVY]
        rs = series(args, "none-max", cmd)
        max_none = med([r["records_per_sec"] for r in rs])
        add("none-max", "1 KiB records, durability none", rs, lambda r: r["bytes_per_sec"], " GB/s", gb, cmd)
        cmd = ["end-to-end", "--durability", "none", "--rate", str(int(max_none / 2)), "--consumers", "4", *HEAVY]
        rs = series(args, "none-50", cmd)
        add("none-50", "produce-to-consume p99 at 50% of none-max", rs, lambda r: r["latency_us"]["p99"], " µs", us, cmd)
    if max_tail and want("none-50-tail"):
        cmd = ["end-to-end", "--durability", "none", "--rate", str(int(max_tail / 2)), "--consumers", "4", *HEAVY]
        rs = series(args, "none-50-tail", cmd)
        add("none-50-tail", "produce-to-consume p99 at 50% of tail, durability none", rs,
            lambda r: r["latency_us"]["p99"], " µs", us, cmd)
    if want("none-floor"):
        cmd = ["end-to-end", "--durability", "none", "--rate", "2000", "--batch", "1", "--producers", "1",
               "--record-size", "100", "--shards", "1"]
        rs = series(args, "none-floor", cmd)
        add("none-floor", "produce-to-consume p99, one record per request, 2,000/s", rs,
            lambda r: r["latency_us"]["p99"], " µs", us, cmd)
        add("none-floor", "  p50 in the same runs", rs, lambda r: r["latency_us"]["p50"], " µs", us, cmd)
    if want("catch-up"):
        cmd = ["consume", "--backlog-mb", "2000", "--consumers", "4", "--client-threads", "2"]
        rs = series(args, "catch-up", cmd)
        add("catch-up", "catch-up read of a 2 GB backlog (disk)", rs, lambda r: r["bytes_per_sec"], " GB/s", gb, cmd)
    if args.ram_dir and want("catch-up-ram"):
        cmd = ["consume", "--backlog-mb", "2000", "--consumers", "4", "--client-threads", "2"]
        saved = args.data_dir
        args.data_dir = args.ram_dir
        rs = series(args, "catch-up-ram", cmd)
        args.data_dir = saved
        add("catch-up-ram", "catch-up read, RAM-backed ext4", rs, lambda r: r["bytes_per_sec"], " GB/s", gb,
            cmd + ["--data-dir", args.ram_dir])
    if want("mixed"):
        cmd = ["mixed", "--backlog-mb", "6000", "--consumers", "4", *HEAVY]
        rs = series(args, "mixed", cmd)
        add("mixed", "backlog read while producing, consumed", rs, lambda r: r["bytes_per_sec"], " GB/s", gb, cmd)
        add("mixed", "  produced in the same runs", rs, lambda r: r["produced_bytes_per_sec"], " GB/s", gb, cmd)

    m = json.loads(subprocess.run([args.bench, "produce", "--duration", "0.2", "--warmup", "0", "--json", "-q",
                                   "--data-dir", args.data_dir], capture_output=True, text=True).stdout)["machine"]
    print(f"Machine: {m['cores']} cores ({m['cpu_model']}), Linux {m['kernel']}; {args.runs} runs of {args.duration:g} s each.\n")
    print("| configuration | what | median | runs | load avg | CPU client / server (cores) |")
    print("|---|---|---|---|---|---|")
    for name, what, median, runs, load, cpu, _ in rows:
        print(f"| {name} | {what} | **{median}** | {runs} | {load} | {cpu} |")
    print()
    print("Commands (each with `--duration %g --json`):\n" % args.duration)
    seen = set()
    for name, _, _, _, _, _, command in rows:
        if name not in seen:
            seen.add(name)
            print(f"- {name}: `riffle-bench {' '.join(command)}`")


if __name__ == "__main__":
    main()
