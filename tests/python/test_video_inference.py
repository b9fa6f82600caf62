"""The inference hook against the real binary: a video stream's image
generation configuration (AWS's UpdateImageGenerationConfiguration shape)
POSTs images of each stored fragment to a local HTTP function (the
"inference server"), and its notification configuration names the Kinesis
data stream where each of the function's JSON answers is written."""

import http.server
import json
import subprocess
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from video_env import clients, make_mkv, of_type, put_all

REGION, ACCOUNT = "us-east-1", "000000000000"


class Inference:
    """A local HTTP function: keeps each POSTed image and its headers,
    answers JSON about it."""

    def __init__(self):
        self.images = []
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.cond:
                    outer.images.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    outer.cond.notify_all()
                answer = json.dumps({"Labels": [{"Name": "TestPattern", "Confidence": 99.5}],
                                     "Bytes": len(body)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/detect"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count, timeout=60):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.images) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def close(self):
        self.server.shutdown()


@pytest.fixture
def inference():
    fn = Inference()
    yield fn
    fn.close()


def test_images_go_to_the_endpoint_and_answers_to_a_stream(server, inference, tmp_path):
    http = server.removeprefix("http://")
    kvs, _, _ = clients(server)
    kinesis = boto3.client("kinesis", endpoint_url=server, region_name=REGION,
                           aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                           config=Config(retries={"max_attempts": 1}))
    results = f"results-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=results, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=results)
    name = f"cam-{uuid.uuid4().hex[:8]}"
    kvs.create_stream(StreamName=name, DataRetentionInHours=1)
    kvs.update_notification_configuration(StreamName=name, NotificationConfiguration={
        "Status": "ENABLED",
        "DestinationConfig": {"Uri": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{results}"}})
    config = {"Status": "ENABLED", "ImageSelectorType": "PRODUCER_TIMESTAMP",
              "DestinationConfig": {"Uri": inference.url, "DestinationRegion": REGION},
              "SamplingInterval": 400, "Format": "JPEG", "FormatConfig": {"JPEGQuality": "90"},
              "WidthPixels": 80, "HeightPixels": 60}
    kvs.update_image_generation_configuration(StreamName=name, ImageGenerationConfiguration=config)
    assert kvs.describe_image_generation_configuration(StreamName=name)[
        "ImageGenerationConfiguration"] == config

    _, acks = put_all(http, name, make_mkv(seconds=4))
    persisted = [a["FragmentNumber"] for a in of_type(acks, "PERSISTED")]
    # An image every 400 ms of media on the stream's timeline: 4 s of media,
    # 10 or 11 images (the last fragment may reach 4 s), each from the
    # fragment holding its time: two or three a fragment.
    assert inference.wait_for(10)
    inference.wait_for(11, timeout=3)  # an eleventh, if the last fragment reaches 4 s
    posted = list(inference.images)
    start_ms = int(posted[0][0]["x-amz-kinesisvideo-producer-timestamp"])
    stamps = [int(h["x-amz-kinesisvideo-image-timestamp"]) for h, _ in posted]
    assert stamps == [start_ms + 400 * k for k in range(len(stamps))]
    assert len(stamps) in (10, 11)
    fragments = [h["x-amz-kinesisvideo-fragment-number"] for h, _ in posted]
    assert fragments == sorted(fragments) and set(fragments) == set(persisted)
    # Images of one fragment differ (the pattern moves), and are 80x60.
    assert posted[0][1] != posted[1][1]
    first = tmp_path / "first.jpg"
    first.write_bytes(posted[0][1])
    size = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height",
                           "-of", "csv=p=0", str(first)], capture_output=True, text=True)
    assert size.stdout.strip() == "80,60"
    for headers, body in posted:
        assert headers["content-type"] == "image/jpeg" and body[:3] == b"\xff\xd8\xff"
        assert headers["x-amz-kinesisvideo-stream-name"] == name

    # Each answer is a record in the results stream, in order.
    shard = kinesis.list_shards(StreamName=results)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=results, ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records, deadline = [], time.monotonic() + 30
    while len(records) < len(posted):
        got = kinesis.get_records(ShardIterator=it)
        records += [json.loads(r["Data"]) for r in got["Records"]]
        it = got["NextShardIterator"]
        assert time.monotonic() < deadline, records
        if not got["Records"]:
            time.sleep(0.1)
    assert [r["FragmentNumber"] for r in records] == \
        [h["x-amz-kinesisvideo-fragment-number"] for h, _ in posted]
    for r, (_, body) in zip(records, posted):
        assert r["StreamName"] == name
        assert r["Result"] == {"Labels": [{"Name": "TestPattern", "Confidence": 99.5}],
                               "Bytes": len(body)}
        assert r["ImageTimestamp"] >= r["ProducerTimestamp"]

    # Disabled: no more images.
    kvs.update_image_generation_configuration(
        StreamName=name, ImageGenerationConfiguration={**config, "Status": "DISABLED"})
    before = len(inference.images)
    _, acks = put_all(http, name, make_mkv(seconds=2), start_s=1_700_000_100.0)
    assert len(of_type(acks, "PERSISTED")) == 2
    assert not inference.wait_for(before + 1, timeout=3)


def test_configurations_are_checked(server):
    kvs, _, _ = clients(server)
    name = f"cam-{uuid.uuid4().hex[:8]}"
    kvs.create_stream(StreamName=name, DataRetentionInHours=1)
    base = {"Status": "ENABLED", "ImageSelectorType": "SERVER_TIMESTAMP",
            "DestinationConfig": {"Uri": "http://127.0.0.1:9/x", "DestinationRegion": REGION},
            "SamplingInterval": 1000, "Format": "PNG"}
    for bad in [{"DestinationConfig": {"Uri": "s3://bucket/prefix", "DestinationRegion": REGION}},
                {"SamplingInterval": 100}, {"SamplingInterval": 20001},
                {"FormatConfig": {"JPEGQuality": "101"}}]:
        with pytest.raises(ClientError) as e:
            kvs.update_image_generation_configuration(
                StreamName=name, ImageGenerationConfiguration={**base, **bad})
        assert e.value.response["Error"]["Code"] == "InvalidArgumentException", bad
    with pytest.raises(ClientError) as e:
        kvs.update_notification_configuration(StreamName=name, NotificationConfiguration={
            "Status": "ENABLED", "DestinationConfig": {"Uri": "arn:aws:sns:us-east-1:1:topic"}})
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    none = fresh_keeping_nothing(kvs)
    with pytest.raises(ClientError) as e:
        kvs.update_image_generation_configuration(StreamName=none, ImageGenerationConfiguration=base)
    assert e.value.response["Error"]["Code"] == "NoDataRetentionException"
    # Removed with none given.
    kvs.update_image_generation_configuration(StreamName=name, ImageGenerationConfiguration=base)
    kvs.update_image_generation_configuration(StreamName=name)
    assert "ImageGenerationConfiguration" not in kvs.describe_image_generation_configuration(
        StreamName=name)


def fresh_keeping_nothing(kvs):
    name = f"cam-{uuid.uuid4().hex[:8]}"
    kvs.create_stream(StreamName=name)
    return name
