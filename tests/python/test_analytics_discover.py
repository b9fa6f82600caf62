"""DiscoverInputSchema over the real binary: the schema of records sampled
from a stream (TRIM_HORIZON, and NOW with records arriving during the call),
of an object in the embedded store, and the refusals."""

import json
import os
import random
import threading

from analytics_env import (  # noqa: F401 (the fixtures)
    DEMO_COLUMNS, ROLE, env, refused, shared, stream_arn, unique)

SECTORS = ["TECHNOLOGY", "HEALTHCARE", "ENERGY", "RETAIL", "FINANCIAL"]


def demo_records(n, seed):
    """AWS's demo records: tickers of 3-4 letters, sectors, CHANGE and PRICE
    with fractions."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ticker = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3 + i % 2))
        out.append({"TICKER_SYMBOL": ticker, "SECTOR": rng.choice(SECTORS),
                    "CHANGE": round(rng.uniform(-5, 5), 2) or 0.01,
                    "PRICE": round(rng.uniform(1, 500) + 0.01, 2)})
    return out


def put(env, stream, records):
    env.kinesis.put_records(StreamName=stream, Records=[
        {"Data": json.dumps(r).encode(), "PartitionKey": r["TICKER_SYMBOL"]} for r in records])


def check_demo_answer(got, records):
    schema = got["InputSchema"]
    assert schema["RecordFormat"] == {
        "RecordFormatType": "JSON",
        "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}}, schema
    assert schema["RecordColumns"] == DEMO_COLUMNS, schema["RecordColumns"]
    # Every record sampled, raw and parsed (order: by shard).
    raw = sorted(got["RawInputRecords"])
    assert raw == sorted(json.dumps(r) for r in records)
    parsed = sorted(tuple(p) for p in got["ParsedInputRecords"])
    want = sorted((r["TICKER_SYMBOL"], r["SECTOR"], str(r["CHANGE"]), str(r["PRICE"])) for r in records)
    assert [p[:2] for p in parsed] == [w[:2] for w in want]
    assert [float(x) for p in parsed for x in p[2:]] == [float(x) for w in want for x in w[2:]]


def test_discover_from_a_stream_at_trim_horizon(env):
    name = unique("disc")
    env.kinesis.create_stream(StreamName=name, ShardCount=2)
    records = demo_records(20, seed=1)
    put(env, name, records)
    got = env.ka.discover_input_schema(
        ResourceARN=stream_arn(name), RoleARN=ROLE,
        InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})
    check_demo_answer(got, records)


def test_discover_from_a_stream_now_waits_for_records(env):
    """NOW samples what arrives during the call: batches are put until the
    call answers, and the answer holds only records put after it began."""
    name = unique("disc")
    env.kinesis.create_stream(StreamName=name, ShardCount=1)
    before = demo_records(5, seed=2)
    put(env, name, before)  # before the call: never sampled at NOW
    answer, done = {}, threading.Event()

    def call():
        try:
            answer["got"] = env.ka.discover_input_schema(
                ResourceARN=stream_arn(name), RoleARN=ROLE,
                InputStartingPositionConfiguration={"InputStartingPosition": "NOW"})
        finally:
            done.set()

    t = threading.Thread(target=call)
    t.start()
    put_after, seed = [], 3
    while not done.wait(0.05):
        batch = demo_records(4, seed=seed)
        seed += 1
        put(env, name, batch)
        put_after.extend(batch)
    t.join()
    got = answer["got"]
    assert got["InputSchema"]["RecordColumns"] == DEMO_COLUMNS
    sampled = [json.loads(r) for r in got["RawInputRecords"]]
    assert sampled and all(r in put_after for r in sampled), sampled
    assert not any(r in before for r in sampled)


def test_discover_from_an_object_of_the_embedded_store(env):
    bucket, key = unique("bkt"), "ref/tickers.csv"
    path = os.path.join(env.data, "d", "s3", bucket, key)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("Ticker,Company,Volume\nAMZN,Amazon,100\nMSFT,Microsoft Corp,2500\n")
    got = env.ka.discover_input_schema(S3Configuration={
        "RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{bucket}", "FileKey": key})
    schema = got["InputSchema"]
    assert schema["RecordFormat"] == {
        "RecordFormatType": "CSV",
        "MappingParameters": {"CSVMappingParameters": {
            "RecordRowDelimiter": "\n", "RecordColumnDelimiter": ","}}}, schema
    assert [(c["Name"], c["SqlType"]) for c in schema["RecordColumns"]] == [
        ("Ticker", "VARCHAR(4)"), ("Company", "VARCHAR(16)"), ("Volume", "INTEGER")]
    assert got["ParsedInputRecords"][1:] == [["AMZN", "Amazon", "100"], ["MSFT", "Microsoft Corp", "2500"]]


def test_discover_refusals(env):
    name = unique("disc")
    env.kinesis.create_stream(StreamName=name, ShardCount=1)
    s3 = {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::nothere", "FileKey": "x.csv"}
    trim = {"InputStartingPosition": "TRIM_HORIZON"}
    code, message, _ = refused(env.ka.discover_input_schema, ResourceARN=stream_arn(name), RoleARN=ROLE,
                               InputStartingPositionConfiguration=trim, S3Configuration=s3)
    assert code == "InvalidArgumentException" and "either" in message, message
    code, message, _ = refused(env.ka.discover_input_schema, S3Configuration=s3)
    assert (code, message) == ("InvalidArgumentException", "Object x.csv in bucket nothere not found.")
    code, message, _ = refused(env.ka.discover_input_schema, ResourceARN=stream_arn("missing-" + name),
                               RoleARN=ROLE, InputStartingPositionConfiguration=trim)
    assert code == "InvalidArgumentException" and "not found" in message, message
    code, message, _ = refused(
        env.ka.discover_input_schema, ResourceARN=stream_arn(name), RoleARN=ROLE,
        InputStartingPositionConfiguration={"InputStartingPosition": "LAST_STOPPED_POINT"})
    assert code == "InvalidArgumentException" and "LAST_STOPPED_POINT" in message, message
    code, message, _ = refused(
        env.ka.discover_input_schema,
        S3Configuration={**s3, "FileKey": "../../meta/analytics/x"})
    assert code == "InvalidArgumentException", message
    # Outside the store through the bucket's name, or a link: refused alike.
    with open(os.path.join(env.data, "d", "secret.csv"), "w") as f:
        f.write("user,password\nroot,hunter2\n")
    for bucket_arn in ("arn:aws:s3:::..", "arn:aws:s3:::.", "arn:aws:s3:::a..b"):
        code, message, _ = refused(env.ka.discover_input_schema, S3Configuration={
            **s3, "BucketARN": bucket_arn, "FileKey": "secret.csv"})
        assert code == "InvalidArgumentException" and "hunter2" not in message, message
    bucket = unique("bkt")
    os.makedirs(os.path.join(env.data, "d", "s3", bucket))
    os.symlink(os.path.join(env.data, "d", "secret.csv"), os.path.join(env.data, "d", "s3", bucket, "l.csv"))
    code, message, _ = refused(env.ka.discover_input_schema, S3Configuration={
        **s3, "BucketARN": f"arn:aws:s3:::{bucket}", "FileKey": "l.csv"})
    assert (code, message) == ("InvalidArgumentException", f"Object l.csv in bucket {bucket} not found.")
    # Lines with no delimiter and no JSON: no schema.
    env.kinesis.put_record(StreamName=name, Data=b"just words", PartitionKey="k")
    code, message, _ = refused(env.ka.discover_input_schema, ResourceARN=stream_arn(name), RoleARN=ROLE,
                               InputStartingPositionConfiguration=trim)
    assert code == "UnableToDetectSchemaException", (code, message)


def test_a_discovered_schema_is_taken_by_create_and_bad_paths_are_not(env):
    """What DiscoverInputSchema answers, keys with dots and quotes included,
    is an InputSchema CreateApplication takes; a JSONPath the decoder does
    not serve is refused naming the column and the path."""
    name = unique("disc")
    env.kinesis.create_stream(StreamName=name, ShardCount=1)
    env.kinesis.put_record(StreamName=name, PartitionKey="k", Data=json.dumps(
        {"it's": True, "a.b": {"q": 2}, "USER": -2.5, "tags": [1, 2]}).encode())
    got = env.ka.discover_input_schema(
        ResourceARN=stream_arn(name), RoleARN=ROLE,
        InputStartingPositionConfiguration={"InputStartingPosition": "TRIM_HORIZON"})
    schema = got["InputSchema"]
    assert [(c["Name"], c["Mapping"]) for c in schema["RecordColumns"]] == [
        ("COL_its", "$['it\\'s']"), ("q", "$['a.b'].q"), ("COL_USER", "$.USER"), ("tags", "$.tags[0:]")]
    source = {"NamePrefix": "SOURCE_SQL_STREAM",
              "KinesisStreamsInput": {"ResourceARN": stream_arn(name), "RoleARN": ROLE}}
    env.create(Inputs=[{**source, "InputSchema": schema}])
    bad = {**schema, "RecordColumns": [{"Name": "T", "Mapping": "$.tags[*]", "SqlType": "VARCHAR(8)"}]}
    code, message, _ = refused(env.ka.create_application, ApplicationName=unique(),
                               Inputs=[{**source, "InputSchema": bad}])
    assert code == "InvalidArgumentException", (code, message)
    assert '"T"' in message and "$.tags[*]" in message and "wildcards" in message, message
