"""The web console (`/console/`) in Debian's headless Chromium, driven by
Playwright, on a server that checks signatures: the browser's Basic
credentials open the page and its calls; what it shows matches the APIs
(streams, their shards with hash ranges and lineage after a split,
consumers, a delivery stream, an application with its SQL, a video stream);
the throughput chart has points; a consumer's lag after a subscription; a
delivery stream's deliveries (records delivered, success) and charts; the
audit trail's last events; create and delete of a stream from the page for a
user whose policies allow them, and no such actions for one whose policies
do not; no console error; a user whose policy does not allow a call sees it
named as not shown; no credentials, no page. A screenshot is saved under
target/tmp/artifacts."""

import base64
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config

from conftest import ROOT, start_server, stop_server

ACCOUNT = "000000000000"
KEYS = {"AKIDADMIN": "admin", "AKIDREADER": "reader"}
SQL = ('CREATE OR REPLACE STREAM "DEST" (n INTEGER);\n'
       'CREATE OR REPLACE PUMP "P" AS INSERT INTO "DEST" SELECT STREAM "n" FROM "SOURCE_SQL_STREAM_001";')


def write_config(dirname):
    policies = {"Users": {
        "admin": {"Policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}]},
        # Kinesis only: the console's other calls are refused.
        "reader": {"Policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kinesis:List*", "kinesis:Describe*",
                                           "cloudwatch:GetMetricStatistics"], "Resource": "*"}]}]},
    }}
    iam = os.path.join(dirname, "iam.json")
    with open(iam, "w") as f:
        json.dump(policies, f)
    keys = ", ".join(f'{{ id = "{k}", secret = "{k}-secret", user = "{u}" }}'
                     for k, u in KEYS.items())
    conf = os.path.join(dirname, "riffle.toml")
    with open(conf, "w") as f:
        f.write(f"access_keys = [{keys}]\niam_policies = \"{iam}\"\n")
    return conf


def client(service, http):
    return boto3.client(service, endpoint_url=f"http://{http}", region_name="us-east-1",
                        aws_access_key_id="AKIDADMIN", aws_secret_access_key="AKIDADMIN-secret",
                        config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing (tools/test.sh installs Debian's chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


def test_the_console_shows_what_the_apis_answer(browser):
    conf_dir = tempfile.mkdtemp(prefix="console-", dir=os.path.join(ROOT, "target", "tmp"))
    proc, http, data = start_server("--config", write_config(conf_dir), "--auth", "sigv4")
    try:
        kinesis = client("kinesis", http)
        kinesis.create_stream(StreamName="orders", ShardCount=2)
        kinesis.get_waiter("stream_exists").wait(StreamName="orders", WaiterConfig={"Delay": 0.1})
        kinesis.put_records(StreamName="orders", Records=[
            {"Data": b"x" * 10, "PartitionKey": f"k{i}"} for i in range(50)])
        shards = kinesis.list_shards(StreamName="orders")["Shards"]
        # A split: two children with their parent (lineage).
        parent = shards[0]
        lo, hi = int(parent["HashKeyRange"]["StartingHashKey"]), int(parent["HashKeyRange"]["EndingHashKey"])
        kinesis.split_shard(StreamName="orders", ShardToSplit=parent["ShardId"],
                            NewStartingHashKey=str((lo + hi) // 2))
        kinesis.get_waiter("stream_exists").wait(StreamName="orders", WaiterConfig={"Delay": 0.1})
        arn = kinesis.describe_stream_summary(StreamName="orders")["StreamDescriptionSummary"]["StreamARN"]
        consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="audit")["Consumer"]
        kinesis.get_waiter("stream_exists").wait(StreamName="orders", WaiterConfig={"Delay": 0.1})
        while kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])[
                "ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
            time.sleep(0.05)
        # One event to the consumer: its lag is measured.
        open_shard = [s for s in kinesis.list_shards(StreamName="orders")["Shards"]
                      if "EndingSequenceNumber" not in s["SequenceNumberRange"]][0]["ShardId"]
        events = kinesis.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"], ShardId=open_shard,
                                            StartingPosition={"Type": "TRIM_HORIZON"})["EventStream"]
        for event in events:
            assert "SubscribeToShardEvent" in event
            break
        events._event_generator.close() if hasattr(events, "_event_generator") else None
        firehose = client("firehose", http)
        firehose.create_delivery_stream(
            DeliveryStreamName="to-lake", ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/f", "BucketARN": "arn:aws:s3:::lake",
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}})
        firehose.put_record_batch(DeliveryStreamName="to-lake",
                                  Records=[{"Data": f"r{i}\n".encode()} for i in range(3)])
        cw = client("cloudwatch", http)
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc)
        deadline = time.monotonic() + 30
        while sum(p["Sum"] for p in cw.get_metric_statistics(
                Namespace="AWS/Firehose", MetricName="DeliveryToS3.Records",
                Dimensions=[{"Name": "DeliveryStreamName", "Value": "to-lake"}],
                StartTime=now - datetime.timedelta(minutes=5), EndTime=now + datetime.timedelta(minutes=5),
                Period=60, Statistics=["Sum"])["Datapoints"]) < 3:
            assert time.monotonic() < deadline, "the three records were not delivered"
            time.sleep(0.1)
        analytics = client("kinesisanalytics", http)
        analytics.create_application(ApplicationName="counts", ApplicationCode=SQL)
        video = client("kinesisvideo", http)
        video.create_stream(StreamName="door", MediaType="video/h264", DataRetentionInHours=2)
        # Four seconds of ffmpeg's test pattern, uploaded as a camera would.
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        from video_env import make_mkv, put_all

        class StreamedBody(SigV4Auth):
            def payload(self, request):
                return "UNSIGNED-PAYLOAD"
        put = AWSRequest(method="POST", url=f"http://{http}/putMedia", headers={
            "x-amzn-stream-name": "door", "x-amzn-fragment-timecode-type": "RELATIVE",
            "x-amzn-producer-start-timestamp": str(time.time() - 5),
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        StreamedBody(Credentials("AKIDADMIN", "AKIDADMIN-secret"), "kinesisvideo", "us-east-1").add_auth(put)
        status, acks = put_all(http, "door", make_mkv(seconds=4, audio=False), headers=dict(put.headers))
        assert status == 200, acks

        want_shards = kinesis.list_shards(StreamName="orders")["Shards"]
        base = f"http://{http}/console/"

        # No credentials, or wrong ones: no page, and a Basic challenge.
        for headers in ({}, {"Authorization": "Basic QUtJREFETUlOOndyb25n"}):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(urllib.request.Request(base, headers=headers))
            assert e.value.code == 401
            assert e.value.headers["WWW-Authenticate"] == 'Basic realm="riffle"'

        # Another site cannot make a browser call the API as its console user:
        # without the console's header (a form's or a simple request's), or
        # from another origin, a call is refused before anything runs.
        basic = {"Authorization": "Basic " + base64.b64encode(b"AKIDADMIN:AKIDADMIN-secret").decode()}

        def console_call(headers):
            req = urllib.request.Request(f"http://{http}/console/api/deleteStream", method="POST",
                                         data=b'{"StreamName": "door"}',
                                         headers={**basic, "Content-Type": "text/plain", **headers})
            try:
                return urllib.request.urlopen(req).status
            except urllib.error.HTTPError as e:
                return e.code

        assert console_call({}) == 403
        assert console_call({"X-Riffle-Console": "1", "Origin": "http://evil.example"}) == 403
        assert "door" in [s["StreamName"] for s in video.list_streams()["StreamInfoList"]]

        context = browser.new_context(http_credentials={
            "username": "AKIDADMIN", "password": "AKIDADMIN-secret"})
        page = context.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        assert page.goto(base).status == 200
        page.wait_for_selector("body[data-loaded]", timeout=30_000)
        assert page.inner_text("#status").startswith("as of"), page.inner_text("#status")

        card = page.locator('.stream[data-stream="orders"]')
        rows = card.locator("tr.shard")
        assert rows.count() == len(want_shards)
        shown = {}
        for i in range(rows.count()):
            cells = rows.nth(i).locator("td").all_inner_texts()
            shown[cells[0]] = cells
        for sh in want_shards:
            cells = shown[sh["ShardId"]]
            assert cells[2] == sh["HashKeyRange"]["StartingHashKey"]
            assert cells[3] == sh["HashKeyRange"]["EndingHashKey"]
            closed = "EndingSequenceNumber" in sh["SequenceNumberRange"]
            assert cells[1] == ("closed" if closed else "open")
            if "ParentShardId" in sh:
                assert sh["ParentShardId"] in cells[4]
        assert "3 open shards" in card.locator(".facts").inner_text()
        assert card.locator(".consumers td").first.inner_text() == "audit"
        lag = card.locator('.consumers tr[data-consumer="audit"] td.lag').inner_text()
        assert lag.isdigit(), lag
        # The throughput chart has the minute's IncomingRecords.
        chart = card.locator('svg[data-title="IncomingRecords"]')
        assert int(chart.get_attribute("data-points")) >= 1
        assert chart.locator("polyline").count() == 1

        assert page.locator('tr[data-delivery="to-lake"] td').nth(1).inner_text() == "ACTIVE"
        delivery = page.locator('tr[data-delivery="to-lake"]')
        assert delivery.locator("td.delivered").inner_text() == "3"
        assert delivery.locator("td.success").inner_text() == "100 %"
        delivered = page.locator('[data-delivery-charts="to-lake"] svg[data-title="DeliveryToS3.Records"]')
        assert int(delivered.get_attribute("data-points")) >= 1
        # The audit trail's last events, newest first: the setup's calls among them.
        audit = page.locator("#audit-table tbody tr")
        assert audit.count() >= 5
        events = [audit.nth(i).locator("td").all_inner_texts() for i in range(audit.count())]
        assert any(e[2] == "kinesis.amazonaws.com" and e[3] == "CreateStream"
                   and e[1] == f"arn:aws:iam::{ACCOUNT}:user/admin" for e in events), events
        assert events[0][0] >= events[-1][0]
        # Actions the admin's policies allow: create a stream, then delete it.
        page.on("dialog", lambda d: d.accept())
        page.fill("#new-stream-name", "made-here")
        page.fill("#new-stream-shards", "2")
        loaded = int(page.get_attribute("body", "data-loaded"))
        page.click("button.create-stream")
        page.wait_for_selector(f'body:not([data-loaded="{loaded}"])', timeout=30_000)
        assert kinesis.describe_stream_summary(StreamName="made-here")[
            "StreamDescriptionSummary"]["OpenShardCount"] == 2
        made = page.locator('.stream[data-stream="made-here"]')
        assert made.count() == 1
        loaded = int(page.get_attribute("body", "data-loaded"))
        made.locator("button.delete-stream").click()
        page.wait_for_selector(f'body:not([data-loaded="{loaded}"])', timeout=30_000)
        assert "made-here" not in kinesis.list_streams()["StreamNames"] or \
            kinesis.describe_stream_summary(StreamName="made-here")[
                "StreamDescriptionSummary"]["StreamStatus"] == "DELETING"
        app = page.locator('.application[data-application="counts"]')
        assert app.locator("pre.sql").inner_text().strip() == SQL
        assert "READY" in app.locator(".facts").inner_text()
        door = page.locator('tr[data-video="door"] td').all_inner_texts()
        assert door[:4] == ["door", "ACTIVE", "video/h264", "2"]
        # Live playback in the page: the HLS session's segments in the browser's player.
        page.locator('tr[data-video="door"] button.play').click()
        page.wait_for_selector('#player video[data-stream="door"][data-state="playing"]', timeout=30_000)
        assert int(page.get_attribute("#player video", "data-segments")) >= 1
        assert errors == [], errors
        artifacts = os.path.join(ROOT, "target", "tmp", "artifacts")
        os.makedirs(artifacts, exist_ok=True)
        page.screenshot(path=os.path.join(artifacts, "console.png"), full_page=True)
        context.close()

        # A user whose policy allows only Kinesis's reads: the rest is named
        # as not shown, with AWS's refusal.
        context = browser.new_context(http_credentials={
            "username": "AKIDREADER", "password": "AKIDREADER-secret"})
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base)
        page.wait_for_selector("body[data-loaded]", timeout=30_000)
        status = page.inner_text("#status")
        assert "delivery streams" in status and "AccessDeniedException" in status, status
        assert page.locator('.stream[data-stream="orders"]').count() == 1
        # Read-only for this user: no create form, no delete buttons.
        assert page.locator("#stream-create input").count() == 0
        assert page.locator("button.delete-stream").count() == 0
        assert errors == [], errors
        context.close()
    finally:
        stop_server(proc, data)


def test_an_open_server_shows_no_audit_trail_and_offers_no_actions():
    """Without signatures there is no user: the audit trail (the operator's,
    its files 0600) is not served, and no action is allowed."""
    proc, http, data = start_server()
    try:
        kinesis = boto3.client("kinesis", endpoint_url=f"http://{http}", region_name="us-east-1",
                               aws_access_key_id="AKID", aws_secret_access_key="secret",
                               config=Config(retries={"max_attempts": 1}))
        kinesis.create_stream(StreamName="open", ShardCount=1)
        with urllib.request.urlopen(f"http://{http}/console/audit") as r:
            got = json.loads(r.read())
        assert got["Enabled"] is False and got["Events"] == []
        assert "--auth sigv4" in got["Note"]
        req = urllib.request.Request(
            f"http://{http}/console/allowed", method="POST",
            data=json.dumps({"Checks": [{"Action": "kinesis:DeleteStream",
                                         "Resource": "arn:aws:kinesis:us-east-1:000000000000:stream/open"}]}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            assert json.loads(r.read()) == {"Allowed": [False]}
    finally:
        stop_server(proc, data)
