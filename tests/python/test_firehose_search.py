"""Firehose to OpenSearch/Elasticsearch (`_bulk`) and to Splunk (HEC with
indexer acknowledgement), through boto3 against the real server, with small
servers here that check the wire contracts strictly: the OpenSearch one
parses the NDJSON body line by line, wants an explicit `_index` (and `_id`
unless NO_DOCUMENT_ID), a JSON object per document and the `filter_path`
that keeps answers small (and answers as filtered), and can refuse one
document (400 mapper_parsing_exception, with a reason as long as asked),
throttle one (item 429) or the whole request (500); the HEC one checks `Authorization: Splunk <token>` and
`X-Splunk-Request-Channel`, parses events strictly, answers ackIds, and can
withhold acknowledgements or be busy. Documents land in the right (rotated)
index with ids that retries reuse; what fails lands in the backup bucket as
AWS's JSON lines; AllDocuments/AllEvents back everything up; bad
configurations are refused."""

import base64
import datetime
import http.server
import json
import os
import re
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest

from conftest import BINARY, ROOT, start_server, stop_server
from test_firehose import ROLE, client, code, objects, s3_config


def serve(handler, cert=None, key=None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if cert else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


def answer(handler, status, body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


class OpenSearch:
    """`POST /_bulk` by OpenSearch's contract. `whole_failures`: statuses
    answered to the first requests; documents with `"bad": true` are refused
    (400 mapper_parsing_exception, the reason `"reason_bytes"` long when
    given); those with `"busy": true` get an item 429 the first time they
    come. Answers are filtered by the request's `filter_path`, as OpenSearch
    does; Riffle must ask for the one below."""

    FILTER_PATH = "errors,items.*.status,items.*.error.type,items.*.error.reason"

    def __init__(self, cert, key, whole_failures=(), require_ids=True):
        self.whole_failures, self.require_ids = list(whole_failures), require_ids
        self.requests, self.docs, self.violations = [], {}, []
        self.throttled = set()
        self.lock = threading.Lock()
        os_ = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with os_.lock:
                    status, body = os_.bulk(self.path, self.headers, raw)
                answer(self, status, body)

        self.server, self.url = serve(Handler, cert, key)

    def violation(self, why):
        self.violations.append(why)
        return 400, {"error": {"type": "illegal_argument_exception", "reason": why}, "status": 400}

    def bulk(self, path, headers, raw):
        url = urllib.parse.urlsplit(path)
        if url.path != "/_bulk":
            return self.violation(f"path {path}")
        query = urllib.parse.parse_qs(url.query)
        if query != {"filter_path": [self.FILTER_PATH]}:
            return self.violation(f"query {url.query}")
        if headers.get("Content-Type") != "application/x-ndjson":
            return self.violation(f"content type {headers.get('Content-Type')}")
        if not raw.endswith(b"\n"):
            return self.violation("The bulk request must be terminated by a newline [\\n]")
        lines = raw[:-1].split(b"\n")
        if len(lines) % 2:
            return self.violation("an action without a document")
        pairs = []
        for action_line, source_line in zip(lines[::2], lines[1::2]):
            action, source = json.loads(action_line), json.loads(source_line)
            if list(action) != ["index"] or "_index" not in action["index"]:
                return self.violation(f"action {action}")
            if self.require_ids != ("_id" in action["index"]):
                return self.violation(f"_id in {action}")
            if not isinstance(source, dict):
                return self.violation(f"document {source!r}")
            pairs.append((action["index"], source))
        self.requests.append([meta for meta, _ in pairs])
        if self.whole_failures:
            status = self.whole_failures.pop(0)
            return status, {"error": {"type": "es_rejected_execution_exception"}, "status": status}
        items = []
        for meta, source in pairs:
            doc_id = meta.get("_id") or uuid.uuid4().hex
            item = {"_index": meta["_index"], "_id": doc_id}
            if source.get("bad"):
                reason = "failed to parse field [bad]"
                reason += "." * max(0, source.get("reason_bytes", 0) - len(reason))
                item.update(status=400, error={"type": "mapper_parsing_exception",
                                               "reason": reason, "caused_by": {"type": "x"}})
            elif source.get("busy") and doc_id not in self.throttled:
                self.throttled.add(doc_id)
                item.update(status=429, error={"type": "es_rejected_execution_exception"})
            else:
                key = (meta["_index"], meta.get("_type"), doc_id)
                item.update(status=200 if key in self.docs else 201)
                self.docs[key] = source
            items.append({"index": item})
        errors = any(i["index"]["status"] >= 300 for i in items)
        # What filter_path leaves: each item's status and its error's type and reason.
        kept = []
        for i in items:
            item = {"status": i["index"]["status"]}
            if "error" in i["index"]:
                item["error"] = {k: i["index"]["error"][k] for k in ("type", "reason")
                                 if k in i["index"]["error"]}
            kept.append({"index": item})
        return 200, {"errors": errors, "items": kept}

    def close(self):
        self.server.shutdown()


class Hec:
    """Splunk's HTTP Event Collector with indexer acknowledgement: raw and
    event endpoints, `/services/collector/ack`. `withhold`: polls answered
    false before an ack turns true; `busy`: requests answered 503 first;
    `page`: bytes every post is answered 200 with (a proxy's page, not HEC)."""

    def __init__(self, token, withhold=0, busy=0, page=None):
        self.token, self.withhold, self.busy, self.page = token, withhold, busy, page
        self.posts, self.polls, self.acked, self.violations = [], [], {}, []
        self.channels = set()
        self.lock = threading.Lock()
        hec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with hec.lock:
                    status, body = hec.handle(self.path, self.headers, raw)
                answer(self, status, body)

        self.server, self.url = serve(Handler)

    def handle(self, path, headers, raw):
        if self.page is not None:
            self.posts.append(("page", raw))
            return 200, self.page
        if headers.get("Authorization") != f"Splunk {self.token}":
            return 403, {"text": "Invalid token", "code": 4}
        channel = headers.get("X-Splunk-Request-Channel")
        if not channel:
            self.violations.append("no channel")
            return 400, {"text": "Data channel is missing", "code": 10}
        uuid.UUID(channel)
        self.channels.add(channel)
        if path == "/services/collector/ack":
            acks = json.loads(raw)["acks"]
            self.polls.append(acks)
            out = {}
            for a in acks:
                self.acked[a] = self.acked.get(a, 0) + 1
                out[str(a)] = self.acked[a] > self.withhold
            return 200, {"acks": out}
        if self.busy > 0:
            self.busy -= 1
            return 503, {"text": "Server is busy", "code": 9}
        if path == "/services/collector/event":
            events, at, text = [], 0, raw.decode()
            decoder = json.JSONDecoder()
            while at < len(text):
                event, at = decoder.raw_decode(text, at)
                while at < len(text) and text[at].isspace():
                    at += 1
                if "event" not in event:
                    return 400, {"text": "Event field is required", "code": 12}
                events.append(event)
            self.posts.append(("event", events))
        elif path == "/services/collector/raw":
            self.posts.append(("raw", raw))
        else:
            self.violations.append(f"path {path}")
            return 404, {"text": "The requested URL was not found on this server.", "code": 404}
        return 200, {"text": "Success", "code": 0, "ackId": len(self.posts) - 1}

    def close(self):
        self.server.shutdown()


def wait(check, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def failed_lines(data_dir, bucket, error_type):
    return [json.loads(line) for k, v in objects(data_dir, bucket).items()
            if f"{error_type}/" in k for line in v.decode().splitlines()]


@pytest.fixture(scope="module")
def certs():
    out = os.path.join(ROOT, "target", "tmp", "certs-" + uuid.uuid4().hex[:8])
    subprocess.run([BINARY, "cert", "--out", out], check=True, capture_output=True)
    return os.path.join(out, "cert.pem"), os.path.join(out, "key.pem")


@pytest.fixture(scope="module")
def riffle(certs):
    proc, http, data = start_server("--ca-file", certs[0])
    yield client(http), os.path.join(data, "d")
    stop_server(proc, data)


HINTS = {"SizeInMBs": 1, "IntervalInSeconds": 1}


def opensearch_config(url, bucket, **extra):
    return {"RoleARN": ROLE, "ClusterEndpoint": url, "IndexName": "logs", "BufferingHints": HINTS,
            "S3Configuration": s3_config(bucket), **extra}


def put(fh, name, records):
    out = fh.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r} for r in records])
    assert out["FailedPutCount"] == 0


def test_opensearch_documents_indexes_ids_and_failures(riffle, certs):
    fh, data_dir = riffle
    cluster = OpenSearch(*certs)
    try:
        fh.create_delivery_stream(DeliveryStreamName="os-day", AmazonopensearchserviceDestinationConfiguration=
                                  opensearch_config(cluster.url, "os-day"))
        d = fh.describe_delivery_stream(DeliveryStreamName="os-day")["DeliveryStreamDescription"]
        desc = d["Destinations"][0]["AmazonopensearchserviceDestinationDescription"]
        assert desc["ClusterEndpoint"] == cluster.url and desc["IndexName"] == "logs"
        assert desc["IndexRotationPeriod"] == "OneDay"
        assert desc["RetryOptions"] == {"DurationInSeconds": 300}
        assert desc["S3BackupMode"] == "FailedDocumentsOnly"
        assert desc["DocumentIdOptions"] == {"DefaultDocumentIdFormat": "FIREHOSE_DEFAULT"}
        assert desc["S3DestinationDescription"]["BucketARN"] == "arn:aws:s3:::os-day"

        before = datetime.datetime.now(datetime.timezone.utc)
        good = [json.dumps({"n": i, "msg": f"hello {i}"}).encode() + b"\n" for i in range(200)]
        pretty = b'{\n  "n": 1000,\n  "msg": "two\\nlines"\n}\n'
        busy = json.dumps({"n": 2000, "busy": True}).encode()
        bad, garbage = json.dumps({"n": 3000, "bad": True}).encode(), b"not json at all"
        long_bad = json.dumps({"n": 3001, "bad": True, "reason_bytes": 200_000}).encode()
        put(fh, "os-day", good + [pretty, busy, bad, garbage, long_bad])
        wait(lambda: len(cluster.docs) == 202, "indexed")
        after = datetime.datetime.now(datetime.timezone.utc)
        days = {f"logs-{t:%Y-%m-%d}" for t in (before, after)}
        assert {index for index, _, _ in cluster.docs} <= days
        assert sorted(s["n"] for s in cluster.docs.values()) == list(range(200)) + [1000, 2000]
        assert {"n": 1000, "msg": "two\nlines"} in cluster.docs.values()
        ids = [doc_id for _, _, doc_id in cluster.docs]
        assert all(re.fullmatch(r"[0-9a-f]{20}-\d+", i) for i in ids), ids[:3]
        # The throttled document came again with the id it had.
        busy_id = next(i for (_, _, i), s in cluster.docs.items() if s["n"] == 2000)
        assert busy_id in cluster.throttled
        assert [m["_id"] for m in cluster.requests[1]] == [busy_id]

        # The refused document and the one that is no JSON: AWS's lines.
        wait(lambda: len(failed_lines(data_dir, "os-day", "AmazonOpenSearchService-failed")) == 3, "backed up")
        lines = failed_lines(data_dir, "os-day", "AmazonOpenSearchService-failed")
        by_raw = {base64.b64decode(x["rawData"]): x for x in lines}
        assert set(by_raw) == {bad, garbage, long_bad}
        # A long reason is cut to 512 bytes in the document's line.
        cut = by_raw[long_bad]["errorMessage"]
        assert len(cut.encode()) == 512 and cut.endswith("...") and "mapper_parsing_exception" in cut
        refused = by_raw[bad]
        assert refused["errorCode"] == "400" and "mapper_parsing_exception" in refused["errorMessage"]
        assert refused["esIndexName"] in days and re.fullmatch(r"[0-9a-f]{20}-\d+", refused["esDocumentId"])
        assert refused["esTypeName"] == "" and refused["attemptsMade"] == 1
        assert set(refused) == {"attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage",
                                "attemptEndingTimestamp", "esDocumentId", "esIndexName", "esTypeName",
                                "rawData"}
        assert "not valid JSON" in by_raw[garbage]["errorMessage"]
        assert not cluster.violations
    finally:
        cluster.close()


def test_opensearch_retries_reuse_ids_and_run_out(riffle, certs):
    fh, data_dir = riffle
    flaky = OpenSearch(*certs, whole_failures=[500, 429])
    down = OpenSearch(*certs, whole_failures=[500] * 1000)
    try:
        fh.create_delivery_stream(DeliveryStreamName="os-flaky", AmazonopensearchserviceDestinationConfiguration=
                                  opensearch_config(flaky.url, "os-flaky", IndexRotationPeriod="NoRotation"))
        fh.create_delivery_stream(DeliveryStreamName="os-down", AmazonopensearchserviceDestinationConfiguration=
                                  opensearch_config(down.url, "os-down", RetryOptions={"DurationInSeconds": 2}))
        records = [json.dumps({"n": i}).encode() for i in range(50)]
        put(fh, "os-flaky", records)
        put(fh, "os-down", records)
        wait(lambda: len(flaky.docs) == 50, "indexed after retries")
        assert len(flaky.requests) == 3
        assert flaky.requests[0] == flaky.requests[1] == flaky.requests[2]
        assert {index for index, _, _ in flaky.docs} == {"logs"}

        def lines():
            return failed_lines(data_dir, "os-down", "AmazonOpenSearchService-failed")
        wait(lambda: len(lines()) == 50, "backed up after retries ran out")
        got = lines()
        assert sorted(base64.b64decode(x["rawData"]) for x in got) == sorted(records)
        assert {x["errorCode"] for x in got} == {"500"}
        assert all(x["attemptsMade"] >= 2 for x in got)
        # Every attempt carried the same ids.
        assert len(down.requests) >= 2 and all(r == down.requests[0] for r in down.requests)
        assert not flaky.violations and not down.violations
    finally:
        flaky.close()
        down.close()


def test_opensearch_flavors_rotation_backup_all_and_no_ids(riffle, certs):
    fh, data_dir = riffle
    cluster = OpenSearch(*certs)
    anonymous = OpenSearch(*certs, require_ids=False)
    try:
        fh.create_delivery_stream(DeliveryStreamName="es-week", ElasticsearchDestinationConfiguration=
                                  opensearch_config(cluster.url, "es-week", IndexName="es",
                                                    TypeName="doc", IndexRotationPeriod="OneWeek"))
        fh.create_delivery_stream(DeliveryStreamName="os-all", AmazonopensearchserviceDestinationConfiguration=
                                  opensearch_config(cluster.url, "os-all", IndexName="all",
                                                    IndexRotationPeriod="OneHour",
                                                    S3BackupMode="AllDocuments"))
        serverless = opensearch_config(cluster.url, "aoss", IndexName="aoss")
        serverless["CollectionEndpoint"] = serverless.pop("ClusterEndpoint")
        fh.create_delivery_stream(DeliveryStreamName="aoss",
                                  AmazonOpenSearchServerlessDestinationConfiguration=serverless)
        fh.create_delivery_stream(DeliveryStreamName="os-noid", AmazonopensearchserviceDestinationConfiguration=
                                  opensearch_config(anonymous.url, "os-noid", IndexRotationPeriod="OneMonth",
                                                    DocumentIdOptions={"DefaultDocumentIdFormat": "NO_DOCUMENT_ID"}))
        d = fh.describe_delivery_stream(DeliveryStreamName="aoss")["DeliveryStreamDescription"]
        desc = d["Destinations"][0]["AmazonOpenSearchServerlessDestinationDescription"]
        assert desc["CollectionEndpoint"] == cluster.url and "IndexRotationPeriod" not in desc

        for name in ("es-week", "os-all", "aoss", "os-noid"):
            put(fh, name, [json.dumps({"s": name, "n": i}).encode() for i in range(5)]
                + [json.dumps({"s": name, "bad": True}).encode()])
        wait(lambda: sum(1 for s in cluster.docs.values()) == 15 and len(anonymous.docs) == 5, "indexed")
        now = datetime.datetime.now(datetime.timezone.utc)
        indexes = {s["s"]: (index, type_) for (index, type_, _), s in cluster.docs.items()}
        assert re.fullmatch(r"es-\d{4}-w\d{2}", indexes["es-week"][0]) and indexes["es-week"][1] == "doc"
        assert re.fullmatch(rf"all-{now:%Y-%m-%d}-\d{{2}}", indexes["os-all"][0]), indexes
        assert indexes["aoss"] == ("aoss", None)
        assert {index for index, _, _ in anonymous.docs} == {f"logs-{now:%Y-%m}"}

        # AllDocuments: every record in the backup bucket, failed ones again.
        def backed_up():
            return [x for k, v in objects(data_dir, "os-all").items()
                    if "failed/" not in k for x in v.decode().replace("}{", "}\n{").splitlines()]
        wait(lambda: len(backed_up()) == 6, "all documents backed up")
        wait(lambda: failed_lines(data_dir, "aoss", "AmazonOpenSearchService-failed"), "serverless failure")
        wait(lambda: failed_lines(data_dir, "es-week", "AmazonOpenSearchService-failed"), "es failure")
        es = failed_lines(data_dir, "es-week", "AmazonOpenSearchService-failed")
        assert es[0]["esTypeName"] == "doc"
        [aoss] = failed_lines(data_dir, "aoss", "AmazonOpenSearchService-failed")
        assert "osDocumentId" in aoss and aoss["osIndexName"] == "aoss" and "esIndexName" not in aoss
        wait(lambda: failed_lines(data_dir, "os-noid", "AmazonOpenSearchService-failed"), "no-id failure")
        [noid] = failed_lines(data_dir, "os-noid", "AmazonOpenSearchService-failed")
        assert noid["esDocumentId"] is None
        assert not cluster.violations and not anonymous.violations
    finally:
        cluster.close()
        anonymous.close()


def splunk_config(url, bucket, endpoint_type="Raw", token="tok-1", **extra):
    return {"HECEndpoint": url, "HECEndpointType": endpoint_type, "HECToken": token,
            "BufferingHints": HINTS, "S3Configuration": s3_config(bucket), **extra}


def test_splunk_raw_and_event_with_acknowledgements(riffle):
    fh, data_dir = riffle
    raw, event = Hec("tok-1", withhold=3), Hec("tok-1", busy=2)
    try:
        fh.create_delivery_stream(DeliveryStreamName="hec-raw", SplunkDestinationConfiguration=
                                  splunk_config(raw.url, "hec-raw", S3BackupMode="AllEvents"))
        fh.create_delivery_stream(DeliveryStreamName="hec-event", SplunkDestinationConfiguration=
                                  splunk_config(event.url, "hec-event", "Event"))
        d = fh.describe_delivery_stream(DeliveryStreamName="hec-raw")["DeliveryStreamDescription"]
        desc = d["Destinations"][0]["SplunkDestinationDescription"]
        assert desc["HECEndpoint"] == raw.url and desc["HECEndpointType"] == "Raw"
        assert desc["HECAcknowledgmentTimeoutInSeconds"] == 180
        assert desc["RetryOptions"] == {"DurationInSeconds": 3600}
        assert desc["BufferingHints"] == HINTS and desc["S3BackupMode"] == "AllEvents"

        lines = [f"line {i}\n".encode() for i in range(100)]
        put(fh, "hec-raw", lines)
        records = [json.dumps({"n": 1}).encode(), b"plain text",
                   json.dumps({"event": "shaped", "sourcetype": "x"}).encode()]
        put(fh, "hec-event", records)
        wait(lambda: raw.posts and raw.acked.get(0, 0) > 3, "acknowledged")
        # Posted once: withheld acknowledgements are polled, not re-sent.
        assert len(raw.posts) == 1 and raw.posts[0][1] == b"".join(lines)
        assert all(p == [0] for p in raw.polls)
        wait(lambda: event.posts and event.acked, "events acknowledged")
        assert [e for _, events in event.posts for e in events] == [
            {"event": {"n": 1}}, {"event": "plain text"}, {"event": "shaped", "sourcetype": "x"}]
        assert len(raw.channels) == 1 and len(event.channels) == 1 and raw.channels != event.channels
        wait(lambda: b"".join(objects(data_dir, "hec-raw").values()) == b"".join(lines), "AllEvents backup")
        assert not raw.violations and not event.violations
    finally:
        raw.close()
        event.close()


def test_splunk_failures_are_backed_up(riffle):
    fh, data_dir = riffle
    hec = Hec("right-token")
    try:
        fh.create_delivery_stream(DeliveryStreamName="hec-bad", SplunkDestinationConfiguration=
                                  splunk_config(hec.url, "hec-bad", token="wrong-token",
                                                RetryOptions={"DurationInSeconds": 2}))
        records = [f"event {i}\n".encode() for i in range(10)]
        put(fh, "hec-bad", records)
        wait(lambda: len(failed_lines(data_dir, "hec-bad", "splunk-failed")) == 10, "backed up")
        lines = failed_lines(data_dir, "hec-bad", "splunk-failed")
        assert sorted(base64.b64decode(x["rawData"]) for x in lines) == sorted(records)
        assert {x["errorCode"] for x in lines} == {"Splunk.InvalidToken"}
        assert all(x["attemptsMade"] >= 2 for x in lines)
        assert all(re.fullmatch(r"hec-bad-\d+-\d+-\d+\.\d+", x["EventId"]) for x in lines)
        assert set(lines[0]) == {"attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage",
                                 "attemptEndingTimestamp", "rawData", "EventId"}
        assert not hec.posts
    finally:
        hec.close()


def test_splunk_answers_that_are_not_hecs_are_cut_in_the_error_lines(riffle):
    fh, data_dir = riffle
    proxy = Hec("tok-1", page=b"<html>" + b"x" * (4 << 20) + b"</html>")
    try:
        fh.create_delivery_stream(DeliveryStreamName="hec-page", SplunkDestinationConfiguration=
                                  splunk_config(proxy.url, "hec-page",
                                                RetryOptions={"DurationInSeconds": 3}))
        records = [f"event {i}\n".encode() for i in range(20)]
        put(fh, "hec-page", records)

        # While it retries, DescribeDeliveryStream reports the cut message.
        def reported():
            d = fh.describe_delivery_stream(DeliveryStreamName="hec-page")["DeliveryStreamDescription"]
            seen.append(d.get("FailureDescription", {}).get("Details"))
            return seen[-1]
        seen = []
        wait(reported, "failure reported")
        details = seen[-1]
        assert details.startswith("Splunk.ServerError: HEC's answer is not JSON: <html>xxx")
        assert len(details.encode()) == len("Splunk.ServerError: ") + 512

        wait(lambda: len(failed_lines(data_dir, "hec-page", "splunk-failed")) == 20, "backed up")
        lines = failed_lines(data_dir, "hec-page", "splunk-failed")
        assert {x["errorCode"] for x in lines} == {"Splunk.ServerError"}
        for x in lines:
            assert x["errorMessage"].startswith("HEC's answer is not JSON: <html>xxx")
            assert len(x["errorMessage"].encode()) == 512 and x["errorMessage"].endswith("...")
        assert len(proxy.posts) >= 2
    finally:
        proxy.close()


def test_invalid_configurations_are_refused(riffle):
    fh, _ = riffle
    domain = "arn:aws:es:us-east-1:123456789012:domain/logs"
    base = opensearch_config("https://127.0.0.1:1", "b-bad")
    cases = [
        ("AmazonopensearchserviceDestinationConfiguration",
         {k: v for k, v in base.items() if k != "ClusterEndpoint"} | {"DomainARN": domain},
         "InvalidArgumentException", "ClusterEndpoint"),
        ("ElasticsearchDestinationConfiguration", base | {"DomainARN": domain},
         "InvalidArgumentException", "not both"),
        ("AmazonopensearchserviceDestinationConfiguration", base | {"IndexName": "Logs"},
         "InvalidArgumentException", "lowercase"),
        ("AmazonopensearchserviceDestinationConfiguration", base | {"ClusterEndpoint": "http://127.0.0.1:1"},
         "ValidationException", "https"),
        ("AmazonopensearchserviceDestinationConfiguration", base | {"VpcConfiguration": {
            "SubnetIds": ["s"], "RoleARN": ROLE, "SecurityGroupIds": ["g"]}},
         "InvalidArgumentException", "VPC"),
        ("SplunkDestinationConfiguration", splunk_config("http://127.0.0.1:1", "b-bad", token=""),
         "InvalidArgumentException", "HECToken"),
        ("SplunkDestinationConfiguration", splunk_config("splunk.local:8088", "b-bad"),
         "InvalidArgumentException", "HECEndpoint"),
    ]
    for member, config, error, says in cases:
        c, m = code(fh.create_delivery_stream, DeliveryStreamName="bad-config", **{member: config})
        assert c == error and says in m, (member, c, m)
    assert "bad-config" not in fh.list_delivery_streams(Limit=100)["DeliveryStreamNames"]
    # AllEvents cannot go back to FailedEventsOnly.
    fh.create_delivery_stream(DeliveryStreamName="hec-mode", SplunkDestinationConfiguration=splunk_config(
        "http://127.0.0.1:1", "hec-mode", S3BackupMode="AllEvents"))
    c, m = code(fh.update_destination, DeliveryStreamName="hec-mode", CurrentDeliveryStreamVersionId="1",
                DestinationId="destinationId-000000000001",
                SplunkDestinationUpdate={"S3BackupMode": "FailedEventsOnly"})
    assert c == "InvalidArgumentException" and "AllEvents" in m, m
    fh.delete_delivery_stream(DeliveryStreamName="hec-mode")
