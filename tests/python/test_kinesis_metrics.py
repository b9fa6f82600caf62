"""Kinesis Data Streams' CloudWatch metrics (AWS/Kinesis, dimension
StreamName) at GET /metrics, read with Prometheus's own Python parser:
boto3's puts and reads and the riffle CLI's native puts counted exactly,
throttled records under AWS's shard limits, and /health and /ready."""

import os
import subprocess
import urllib.error
import urllib.request
import time
import uuid

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from conftest import BINARY, start_server, start_server_native, stop_server


def kinesis(http):
    return boto3.client("kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
                        aws_access_key_id="AKID", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 1}))


def scrape(http):
    """Every sample of GET /metrics but histogram buckets: {(name, stream): value}."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if "le" not in s.labels:
                out[(s.name, s.labels.get("stream"))] = s.value
    return out


def create(k, name, shards=1):
    k.create_stream(StreamName=name, ShardCount=shards)
    k.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})


def test_puts_and_reads_are_counted_per_stream():
    proc, native, http, data = start_server_native()
    try:
        k = kinesis(http)
        s, quiet = f"m-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}"
        create(k, s)
        create(k, quiet)
        k.put_record(StreamName=s, PartitionKey="a", Data=b"0123456789")
        answer = k.put_records(StreamName=s, Records=[
            {"PartitionKey": "b", "Data": b"x"}, {"PartitionKey": "c", "Data": b"yy"},
            {"PartitionKey": "d", "Data": b"zzz"}])
        assert answer["FailedRecordCount"] == 0
        # A native PutRecord by the CLI.
        out = subprocess.run([BINARY, "--server", native, "put", s, "--partition-key", "n", "four"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        with pytest.raises(k.exceptions.ResourceNotFoundException):
            k.put_record(StreamName="no-such-stream", PartitionKey="a", Data=b"x")
        shard = k.list_shards(StreamName=s)["Shards"][0]["ShardId"]
        it = k.get_shard_iterator(StreamName=s, ShardId=shard,
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got = k.get_records(ShardIterator=it)
        assert [r["Data"] for r in got["Records"]] == [b"0123456789", b"x", b"yy", b"zzz", b"four"]
        k.get_records(ShardIterator=got["NextShardIterator"])

        m = scrape(http)
        p = "riffle_kinesis_"
        assert m[(p + "incoming_records_total", s)] == 5
        assert m[(p + "incoming_bytes_total", s)] == 10 + 6 + 4
        assert m[(p + "put_record_attempts_total", s)] == 2  # boto3's and the CLI's
        assert m[(p + "put_record_success_total", s)] == 2
        assert m[(p + "put_record_bytes_total", s)] == 14
        assert m[(p + "put_record_latency_seconds_count", s)] == 2
        assert m[(p + "put_records_attempts_total", s)] == 1
        assert m[(p + "put_records_total_records_total", s)] == 3
        assert m[(p + "put_records_successful_records_total", s)] == 3
        assert m[(p + "put_records_failed_records_total", s)] == 0
        assert m[(p + "put_records_bytes_total", s)] == 6
        assert m[(p + "get_records_attempts_total", s)] == 2
        assert m[(p + "get_records_success_total", s)] == 2
        assert m[(p + "get_records_records_total", s)] == 5
        assert m[(p + "get_records_bytes_total", s)] == 20
        assert m[(p + "get_records_latency_seconds_count", s)] == 2
        # The second read was at the tip: age 0.
        assert m[(p + "get_records_iterator_age_milliseconds", s)] == 0
        # A stream nothing touched has its series, at zero; none for a
        # stream that does not exist.
        assert m[(p + "incoming_records_total", quiet)] == 0
        assert (p + "incoming_records_total", "no-such-stream") not in m
        # A deleted stream's series go.
        k.delete_stream(StreamName=quiet)
        assert (p + "incoming_records_total", quiet) not in scrape(http)
    finally:
        stop_server(proc, data)


def test_throttled_records_under_aws_shard_limits():
    proc, http, data = start_server("--shard-limits", "aws")
    try:
        k = kinesis(http)
        s = f"t-{uuid.uuid4().hex[:8]}"
        create(k, s)
        # 1.5 MiB at once: an idle shard takes it and then owes 1.5 s of
        # writes, so the next records are refused.
        big = k.put_records(StreamName=s, Records=[
            {"PartitionKey": "k", "Data": bytes([i]) * (512 << 10)} for i in range(3)])
        assert big["FailedRecordCount"] == 0
        failed = k.put_records(StreamName=s, Records=[
            {"PartitionKey": "k", "Data": b"small"} for _ in range(3)])["FailedRecordCount"]
        assert failed > 0
        m = scrape(http)
        p = "riffle_kinesis_"
        assert m[(p + "put_records_total_records_total", s)] == 6
        assert m[(p + "put_records_throttled_records_total", s)] == failed
        assert m[(p + "put_records_failed_records_total", s)] == 0
        assert m[(p + "put_records_successful_records_total", s)] == 6 - failed
        assert m[(p + "incoming_records_total", s)] == 6 - failed
        assert m[(p + "incoming_bytes_total", s)] == 3 * (512 << 10) + 5 * (3 - failed)
        assert m[(p + "put_records_success_total", s)] == 2  # calls, partial failures or not
        assert m[(p + "write_provisioned_throughput_exceeded_total", s)] == failed
    finally:
        stop_server(proc, data)


def test_health_and_readiness_need_no_signature():
    conf_dir = os.path.join(os.path.dirname(BINARY), "..", "tmp")
    os.makedirs(conf_dir, exist_ok=True)
    conf = os.path.join(conf_dir, f"health-{uuid.uuid4().hex[:8]}.toml")
    with open(conf, "w") as f:
        f.write('access_keys = [{ id = "AKIDHEALTH", secret = "s3cr3t" }]\n')
    proc, http, data = start_server("--config", conf, "--auth", "sigv4")
    try:
        for path, body in [("/health", b"ok\n"), ("/ready", b"ready\n")]:
            with urllib.request.urlopen(f"http://{http}{path}", timeout=10) as r:
                assert (r.status, r.read()) == (200, body)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(f"http://{http}/ready", data=b"x"))
        assert e.value.code == 405
        # /metrics takes Basic credentials (an access key and its secret)
        # when auth is on, as Prometheus's basic_auth sends them.
        import base64
        def metrics(user=None, password=None):
            req = urllib.request.Request(f"http://{http}/metrics")
            if user is not None:
                req.add_header("Authorization", "Basic " + base64.b64encode(
                    f"{user}:{password}".encode()).decode())
            return urllib.request.urlopen(req, timeout=10)
        for creds in [(), ("AKIDHEALTH", "wrong"), ("AKIDOTHER", "s3cr3t")]:
            with pytest.raises(urllib.error.HTTPError) as e:
                metrics(*creds)
            assert e.value.code == 401
            assert e.value.headers["WWW-Authenticate"] == 'Basic realm="riffle"'
        with metrics("AKIDHEALTH", "s3cr3t") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        # Not in the audit trail.
        audit = os.path.join(data, "d", "audit")
        assert not any("health" in open(os.path.join(audit, f)).read() or
                       "ready" in open(os.path.join(audit, f)).read()
                       for f in os.listdir(audit))
    finally:
        stop_server(proc, data)
        os.remove(conf)


def test_metrics_are_decided_by_the_scrapers_policies():
    """With IAM policies, /metrics takes a user whose policies allow
    cloudwatch:GetMetricData (the action that reads the same metrics through
    CloudWatch's API); another known key gets 403 with IAM's refusal."""
    import base64
    import json
    conf_dir = os.path.join(os.path.dirname(BINARY), "..", "tmp")
    os.makedirs(conf_dir, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    iam = os.path.join(conf_dir, f"metrics-iam-{tag}.json")
    with open(iam, "w") as f:
        json.dump({"Users": {
            "scraper": {"Policies": [{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "cloudwatch:GetMetricData", "Resource": "*"}]}]},
            "writer": {"Policies": [{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]},
        }}, f)
    conf = os.path.join(conf_dir, f"metrics-{tag}.toml")
    with open(conf, "w") as f:
        f.write('access_keys = [{ id = "AKIDSCRAPER", secret = "s1", user = "scraper" }, '
                '{ id = "AKIDWRITER", secret = "s2", user = "writer" }]\n'
                f'iam_policies = "{iam}"\n')
    proc, http, data = start_server("--config", conf, "--auth", "sigv4")
    try:
        def metrics(user, password):
            req = urllib.request.Request(f"http://{http}/metrics")
            req.add_header("Authorization", "Basic " + base64.b64encode(
                f"{user}:{password}".encode()).decode())
            return urllib.request.urlopen(req, timeout=10)
        with metrics("AKIDSCRAPER", "s1") as r:
            assert r.status == 200
            assert b"riffle_engine_" in r.read()
        with pytest.raises(urllib.error.HTTPError) as e:
            metrics("AKIDWRITER", "s2")
        assert e.value.code == 403
        body = e.value.read().decode()
        assert body.startswith("AccessDeniedException: User: arn:aws:iam::000000000000:user/writer "
                               "is not authorized to perform: cloudwatch:GetMetricData"), body
        with pytest.raises(urllib.error.HTTPError) as e:
            metrics("AKIDWRITER", "wrong")
        assert e.value.code == 401
    finally:
        stop_server(proc, data)
        os.remove(conf)
        os.remove(iam)


def test_cloudwatch_api_serves_the_same_metrics():
    """GetMetricStatistics, GetMetricData and ListMetrics through boto3 and
    `aws cloudwatch get-metric-statistics` (AWS JSON 1.0, as botocore sends
    it), over the minute under way; CloudWatch's errors for what it refuses."""
    import datetime
    import json
    import sys
    proc, http, data = start_server()
    try:
        k = kinesis(http)
        s = f"cw-{uuid.uuid4().hex[:8]}"
        create(k, s)
        k.put_records(StreamName=s, Records=[{"PartitionKey": str(i), "Data": b"abcd"} for i in range(3)])
        k.put_record(StreamName=s, PartitionKey="p", Data=b"xy")
        shard = k.list_shards(StreamName=s)["Shards"][0]["ShardId"]
        it = k.get_shard_iterator(StreamName=s, ShardId=shard,
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        assert len(k.get_records(ShardIterator=it)["Records"]) == 4
        cw = boto3.client("cloudwatch", endpoint_url=f"http://{http}", region_name="us-east-1",
                          aws_access_key_id="AKID", aws_secret_access_key="secret",
                          config=Config(retries={"max_attempts": 1}))
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = now - datetime.timedelta(minutes=10), now + datetime.timedelta(minutes=2)
        dims = [{"Name": "StreamName", "Value": s}]

        def stats(metric, *statistics):
            out = cw.get_metric_statistics(Namespace="AWS/Kinesis", MetricName=metric, Dimensions=dims,
                                           StartTime=start, EndTime=end, Period=60,
                                           Statistics=list(statistics))
            assert out["Label"] == metric
            return out["Datapoints"]

        records = stats("IncomingRecords", "Sum", "SampleCount")
        assert sum(p["Sum"] for p in records) == 4
        # A sample per call: the PutRecords and the PutRecord.
        assert sum(p["SampleCount"] for p in records) == 2
        assert {p["Unit"] for p in records} == {"Count"}
        assert sum(p["Sum"] for p in stats("IncomingBytes", "Sum")) == 14
        assert {p["Unit"] for p in stats("IncomingBytes", "Sum")} == {"Bytes"}
        # One PutRecords call, a success: Average 1 over SampleCount 1.
        ok = stats("PutRecords.Success", "Average", "SampleCount")
        assert [(p["Average"], p["SampleCount"]) for p in ok] == [(1.0, 1.0)]
        latency = stats("GetRecords.Latency", "SampleCount", "Average", "Maximum")
        assert sum(p["SampleCount"] for p in latency) == 1
        assert {p["Unit"] for p in latency} == {"Milliseconds"}
        # Nothing for a stream that does not exist (no error, as CloudWatch).
        assert cw.get_metric_statistics(
            Namespace="AWS/Kinesis", MetricName="IncomingRecords",
            Dimensions=[{"Name": "StreamName", "Value": "nope"}], StartTime=start, EndTime=end,
            Period=60, Statistics=["Sum"])["Datapoints"] == []

        listed = cw.list_metrics(Namespace="AWS/Kinesis", Dimensions=dims)["Metrics"]
        names = {m["MetricName"] for m in listed}
        assert {"IncomingRecords", "IncomingBytes", "PutRecords.Success", "GetRecords.Latency",
                "GetRecords.IteratorAgeMilliseconds"} <= names
        assert all(m["Dimensions"] == dims for m in listed)

        got = cw.get_metric_data(StartTime=start, EndTime=end, ScanBy="TimestampAscending",
                                 MetricDataQueries=[
            {"Id": "r", "MetricStat": {"Metric": {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords",
                                                  "Dimensions": dims}, "Period": 300, "Stat": "Sum"}},
            {"Id": "ok", "Label": "put ok", "MetricStat": {"Metric": {
                "Namespace": "AWS/Kinesis", "MetricName": "PutRecord.Success", "Dimensions": dims},
                "Period": 300, "Stat": "Average"}}])["MetricDataResults"]
        by_id = {r["Id"]: r for r in got}
        assert sum(by_id["r"]["Values"]) == 4 and by_id["r"]["StatusCode"] == "Complete"
        assert by_id["ok"]["Values"] == [1.0] and by_id["ok"]["Label"] == "put ok"
        assert len(by_id["ok"]["Timestamps"]) == 1

        def code(call, **kw):
            with pytest.raises(cw.exceptions.ClientError) as e:
                call(**kw)
            return e.value.response["Error"]["Code"]

        base = dict(Namespace="AWS/Kinesis", MetricName="IncomingRecords", Dimensions=dims,
                    StartTime=start, EndTime=end)
        assert code(cw.get_metric_statistics, Period=61, Statistics=["Sum"], **base) == "InvalidParameterValue"
        assert code(cw.get_metric_statistics, Period=60, **base) == "InvalidParameterCombination"
        assert code(cw.get_metric_data, StartTime=start, EndTime=end, MetricDataQueries=[
            {"Id": "e", "Expression": "SUM(METRICS())"}]) == "InvalidParameterValue"
        query = {"Id": "same", "MetricStat": {"Metric": {"Namespace": "AWS/Kinesis", "MetricName": "IncomingRecords",
                                                          "Dimensions": dims}, "Period": 60, "Stat": "Sum"}}
        assert code(cw.get_metric_data, StartTime=start, EndTime=end,
                    MetricDataQueries=[query, query]) == "InvalidParameterValue"
        # A unit the metric is not in: no datapoints.
        assert cw.get_metric_statistics(Period=60, Statistics=["Sum"], Unit="Bytes", **base)["Datapoints"] == []

        # The AWS CLI, unchanged.
        aws = os.path.join(os.path.dirname(sys.executable), "aws")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="AKID", AWS_SECRET_ACCESS_KEY="secret",
                   AWS_DEFAULT_REGION="us-east-1")
        out = subprocess.run([aws, "cloudwatch", "get-metric-statistics", "--endpoint-url", f"http://{http}",
                              "--namespace", "AWS/Kinesis", "--metric-name", "IncomingRecords",
                              "--dimensions", f"Name=StreamName,Value={s}",
                              "--start-time", start.isoformat(), "--end-time", end.isoformat(),
                              "--period", "60", "--statistics", "Sum"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert sum(p["Sum"] for p in json.loads(out.stdout)["Datapoints"]) == 4
    finally:
        stop_server(proc, data)


def test_the_engines_own_metrics_per_core():
    """riffle_engine_*: per core, the bytes its pumps wrote and their group
    commits, a histogram of fdatasync times, the shards and segments it holds,
    and what waits in its inbox and pumps."""
    proc, http, data = start_server("--cores", "2")
    try:
        k = kinesis(http)
        create(k, "engine-a", shards=4)
        payload = b"y" * 1000
        for _ in range(5):
            k.put_records(StreamName="engine-a", Records=[
                {"Data": payload, "PartitionKey": f"p{i}"} for i in range(100)])

        def engine(name):
            with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
                text = r.read().decode()
            out = {}
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name == name:
                        out[s.labels["core"]] = s.value
            return out

        written = engine("riffle_engine_bytes_written_total")
        assert set(written) == {"0", "1"}
        # 500 records of 1000 bytes went to disk, framed: at least that much.
        assert sum(written.values()) >= 500 * 1000, written
        assert sum(engine("riffle_engine_group_commits_total").values()) >= 1
        assert sum(engine("riffle_engine_fsync_seconds_count").values()) >= 1
        assert sum(engine("riffle_engine_fsync_seconds_sum").values()) > 0
        assert set(engine("riffle_engine_inbox_depth")) == {"0", "1"}
        # The shards and segments are counted by each core once a second.
        deadline = time.monotonic() + 10
        while sum(engine("riffle_engine_shards").values()) < 4:
            assert time.monotonic() < deadline, engine("riffle_engine_shards")
            time.sleep(0.1)
        assert sum(engine("riffle_engine_segments").values()) >= 4
        assert set(engine("riffle_engine_pump_queue_depth")) == {"0", "1"}
    finally:
        stop_server(proc, data)


def test_a_metrics_listener_of_its_own():
    """`--metrics ADDR`: /metrics, /health and /ready on a port of their own,
    and nothing of the AWS API there."""
    proc, http, data = start_server("--metrics", "127.0.0.1:0")
    try:
        line = proc.stdout.readline()
        assert line.startswith("riffle metrics listening on "), line
        metrics = line.split()[-1]
        create(kinesis(http), "on-the-side")
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert 'riffle_kinesis_incoming_records_total{stream="on-the-side"}' in text
        for path in ("/health", "/ready"):
            with urllib.request.urlopen(f"http://{metrics}{path}", timeout=10) as r:
                assert r.status == 200
        req = urllib.request.Request(f"http://{metrics}/", data=b"{}", method="POST", headers={
            "X-Amz-Target": "Kinesis_20131202.ListStreams",
            "Content-Type": "application/x-amz-json-1.1"})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(req, timeout=10)
    finally:
        stop_server(proc, data)


def test_shard_level_metrics_only_when_enhanced_monitoring_asks():
    """EnableEnhancedMonitoring's metrics per shard (labels stream and shard):
    the records each shard took and served, exactly; metrics not enabled,
    and streams that enabled none, have no shard series."""
    proc, http, data = start_server()
    try:
        k = kinesis(http)
        create(k, "per-shard", shards=2)
        create(k, "plain", shards=1)
        k.enable_enhanced_monitoring(StreamName="per-shard", ShardLevelMetrics=[
            "IncomingRecords", "OutgoingRecords", "IteratorAgeMilliseconds"])
        put = k.put_records(StreamName="per-shard", Records=[
            {"Data": b"r%d" % i, "PartitionKey": f"key-{i}"} for i in range(20)])
        k.put_record(StreamName="plain", Data=b"x", PartitionKey="k")
        by_shard = {}
        for r in put["Records"]:
            by_shard[r["ShardId"]] = by_shard.get(r["ShardId"], 0) + 1
        read = {}
        for shard in by_shard:
            it = k.get_shard_iterator(StreamName="per-shard", ShardId=shard,
                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            read[shard] = len(k.get_records(ShardIterator=it)["Records"])
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
            text = r.read().decode()
        series = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if "shard" in s.labels:
                    series[(s.name, s.labels["stream"], s.labels["shard"])] = s.value
        for shard, n in by_shard.items():
            assert series[("riffle_kinesis_shard_incoming_records_total", "per-shard", shard)] == n
            assert series[("riffle_kinesis_shard_outgoing_records_total", "per-shard", shard)] == read[shard]
            assert ("riffle_kinesis_shard_iterator_age_milliseconds", "per-shard", shard) in series
        assert not [key for key in series if key[0].startswith("riffle_kinesis_shard_incoming_bytes")]
        assert not [key for key in series if key[1] == "plain"]
        # The same through CloudWatch's API, dimensions ShardId and StreamName.
        import datetime
        cw = boto3.client("cloudwatch", endpoint_url=f"http://{http}", region_name="us-east-1",
                          aws_access_key_id="AKID", aws_secret_access_key="secret")
        now = datetime.datetime.now(datetime.timezone.utc)

        def shard_sum(metric, shard):
            got = cw.get_metric_statistics(
                Namespace="AWS/Kinesis", MetricName=metric,
                Dimensions=[{"Name": "StreamName", "Value": "per-shard"},
                            {"Name": "ShardId", "Value": shard}],
                StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=2),
                Period=60, Statistics=["Sum"])
            return sum(p["Sum"] for p in got["Datapoints"])
        for shard, n in by_shard.items():
            assert shard_sum("IncomingRecords", shard) == n
            assert shard_sum("OutgoingRecords", shard) == read[shard]
            assert shard_sum("IncomingBytes", shard) == 0
        listed = cw.list_metrics(Namespace="AWS/Kinesis", MetricName="IncomingRecords",
                                 Dimensions=[{"Name": "ShardId"}])["Metrics"]
        assert {d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == "ShardId"} \
            == set(by_shard)
    finally:
        stop_server(proc, data)


def query_client(http, key, secret):
    """A boto3 CloudWatch client that speaks the query protocol (forms and
    XML), as botocore did before 1.42.7: the model it loads says so."""
    import botocore.session
    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    original = loader.load_service_model

    def query_only(service_name, type_name, api_version=None):
        model = original(service_name, type_name, api_version)
        if service_name == "cloudwatch" and type_name == "service-2":
            model = dict(model, metadata=dict(model["metadata"], protocol="query", protocols=["query"]))
        return model
    loader.load_service_model = query_only
    cw = boto3.Session(botocore_session=session).client(
        "cloudwatch", endpoint_url=f"http://{http}", region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret,
        # The server's checks, not botocore's, are under test.
        config=Config(retries={"max_attempts": 1}, parameter_validation=False))
    assert cw.meta.service_model.resolved_protocol == "query"
    return cw


def test_cloudwatch_query_protocol_answers_as_json_does():
    """CloudWatch's query protocol (form in, XML out) through botocore forced
    to it: the same datapoints, metrics and results as JSON 1.0, its errors
    as modelled exceptions, signatures verified and IAM deciding (a denied
    user gets AccessDenied in XML), and a signed GET with the form in its
    query."""
    import datetime
    import json
    import xml.etree.ElementTree as ET
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    conf_dir = os.path.join(os.path.dirname(BINARY), "..", "tmp")
    os.makedirs(conf_dir, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    iam = os.path.join(conf_dir, f"cwq-iam-{tag}.json")
    with open(iam, "w") as f:
        json.dump({"Users": {
            "watcher": {"Policies": [{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["cloudwatch:*", "kinesis:*"], "Resource": "*"}]}]},
            "writer": {"Policies": [{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]},
        }}, f)
    conf = os.path.join(conf_dir, f"cwq-{tag}.toml")
    with open(conf, "w") as f:
        f.write('access_keys = [{ id = "AKIDWATCH", secret = "w", user = "watcher" }, '
                '{ id = "AKIDWRITE", secret = "x", user = "writer" }]\n'
                f'iam_policies = "{iam}"\n')
    proc, http, data = start_server("--config", conf, "--auth", "sigv4")
    try:
        k = boto3.client("kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
                         aws_access_key_id="AKIDWATCH", aws_secret_access_key="w",
                         config=Config(retries={"max_attempts": 1}))
        s = f"cwq-{tag}"
        create(k, s)
        k.put_records(StreamName=s, Records=[{"PartitionKey": str(i), "Data": b"abcd"} for i in range(3)])
        cw_json = boto3.client("cloudwatch", endpoint_url=f"http://{http}", region_name="us-east-1",
                               aws_access_key_id="AKIDWATCH", aws_secret_access_key="w",
                               config=Config(retries={"max_attempts": 1}))
        cw = query_client(http, "AKIDWATCH", "w")
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = now - datetime.timedelta(minutes=10), now + datetime.timedelta(minutes=2)
        dims = [{"Name": "StreamName", "Value": s}]
        ask = dict(Namespace="AWS/Kinesis", MetricName="IncomingRecords", Dimensions=dims,
                   StartTime=start, EndTime=end, Period=60, Statistics=["Sum", "SampleCount"])
        got = cw.get_metric_statistics(**ask)
        assert got["Label"] == "IncomingRecords"
        assert sum(p["Sum"] for p in got["Datapoints"]) == 3
        assert got["Datapoints"] == cw_json.get_metric_statistics(**ask)["Datapoints"]
        assert all(isinstance(p["Timestamp"], datetime.datetime) for p in got["Datapoints"])
        assert got["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "text/xml"
        listed = cw.list_metrics(Namespace="AWS/Kinesis", Dimensions=dims)["Metrics"]
        assert {m["MetricName"] for m in listed} == \
            {m["MetricName"] for m in cw_json.list_metrics(Namespace="AWS/Kinesis", Dimensions=dims)["Metrics"]}
        assert cw.list_metrics(Namespace="Nope/Nothing")["Metrics"] == []
        query = [{"Id": "m1", "MetricStat": {"Metric": {"Namespace": "AWS/Kinesis",
                                                        "MetricName": "IncomingRecords", "Dimensions": dims},
                                             "Period": 60, "Stat": "Sum"}, "ReturnData": True}]
        data_q = cw.get_metric_data(MetricDataQueries=query, StartTime=start, EndTime=end)
        data_j = cw_json.get_metric_data(MetricDataQueries=query, StartTime=start, EndTime=end)
        assert data_q["MetricDataResults"][0]["Values"] == data_j["MetricDataResults"][0]["Values"]
        assert sum(data_q["MetricDataResults"][0]["Values"]) == 3
        assert data_q["MetricDataResults"][0]["Timestamps"] == data_j["MetricDataResults"][0]["Timestamps"]

        # Errors as the modelled exceptions (an ErrorResponse in XML).
        with pytest.raises(cw.exceptions.MissingRequiredParameterException):
            cw.get_metric_statistics(Namespace="AWS/Kinesis", StartTime=start, EndTime=end,
                                     Period=60, Statistics=["Sum"])
        with pytest.raises(cw.exceptions.InvalidParameterValueException):
            cw.get_metric_statistics(**dict(ask, Period=61))
        # IAM decides: a user without cloudwatch:* gets AccessDenied, in XML.
        denied = query_client(http, "AKIDWRITE", "x")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            denied.list_metrics(Namespace="AWS/Kinesis")
        assert e.value.response["Error"]["Code"] == "AccessDenied"
        assert "cloudwatch:ListMetrics" in e.value.response["Error"]["Message"]
        # A wrong secret: the signature refused, in XML.
        wrong = query_client(http, "AKIDWATCH", "nope")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            wrong.list_metrics()
        assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"

        # A signed GET with the form in its query.
        import urllib.parse
        params = {"Action": "ListMetrics", "Version": "2010-08-01", "Namespace": "AWS/Kinesis",
                  "Dimensions.member.1.Name": "StreamName", "Dimensions.member.1.Value": s}
        url = f"http://{http}/?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        req = AWSRequest(method="GET", url=url)
        SigV4Auth(Credentials("AKIDWATCH", "w"), "monitoring", "us-east-1").add_auth(req)
        prepared = req.prepare()
        with urllib.request.urlopen(urllib.request.Request(prepared.url, headers=dict(prepared.headers))) as r:
            assert r.status == 200
            root = ET.fromstring(r.read())
        ns = "{http://monitoring.amazonaws.com/doc/2010-08-01/}"
        names = {m.find(f"{ns}MetricName").text for m in root.iter(f"{ns}member") if m.find(f"{ns}MetricName") is not None}
        assert "IncomingRecords" in names, names
        assert r.headers["x-amzn-RequestId"] == root.find(f"{ns}ResponseMetadata/{ns}RequestId").text
    finally:
        stop_server(proc, data)
        os.remove(conf)
        os.remove(iam)
