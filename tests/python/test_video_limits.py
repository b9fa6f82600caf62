"""Kinesis Video Streams at its limits and on its error paths, against the
real binary: GetClip's 200-fragment cap, GetImages' MEDIA_ERROR for frames
that do not decode, DASH LIVE played by ffmpeg while the stream is being
uploaded, the inference hook's error records, and a GetMedia reader that
stops reading while a producer keeps uploading."""

import base64
import datetime
import hashlib
import http.server
import json
import socket
import subprocess
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import free_port
from video_env import (REGION, ACCOUNT, PutMedia, _vint, chunk_tags, clients, clusters,
                       make_mkv, of_type, put_all)

START_S = 1_700_000_000.5
CLUSTER = b"\x1f\x43\xb6\x75"
TOKEN_TAG = b"AWS_KINESISVIDEO_CONTINUATION_TOKEN"


@pytest.fixture(scope="module")
def env(server):
    kvs, media, archived = clients(server)
    return server.removeprefix("http://"), kvs, media, archived


def fresh(kvs):
    name = f"lim-{uuid.uuid4().hex[:10]}"
    kvs.create_stream(StreamName=name, DataRetentionInHours=1)
    return name


def archived_for(kvs, name, api):
    """The archived-media client on the endpoint GetDataEndpoint names."""
    endpoint = kvs.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"]
    return clients(endpoint)[2]


def at(offset_s):
    return datetime.datetime.fromtimestamp(START_S + offset_s, datetime.timezone.utc)


def persisted(acks):
    return [a["FragmentNumber"] for a in of_type(acks, "PERSISTED")]


def ffprobe(path, entries, *extra):
    out = subprocess.run(["ffprobe", "-v", "error", *extra, "-show_entries", entries, "-of", "json",
                          str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return json.loads(out.stdout)


# 1. GetClip: at most 200 fragments from the range's first one.

def test_get_clip_holds_the_first_200_fragments(env, tmp_path):
    http, kvs, _, _ = env
    name = fresh(kvs)
    # 205 fragments of 120 ms: a key frame every 3 frames at 25 fps, and a
    # cluster cut after 100 ms (so at each key frame).
    mkv = make_mkv(seconds=24.6, audio=False, gop=3, extra=["-cluster_time_limit", "100"])
    sent = clusters(mkv)
    assert len(sent) == 205 and {len(b) for _, b in sent} == {3}
    status, acks = put_all(http, name, mkv)
    assert status == 200 and len(persisted(acks)) == 205 and not of_type(acks, "ERROR")
    archived = archived_for(kvs, name, "GET_CLIP")

    def clip(start_s, path):
        got = archived.get_clip(StreamName=name, ClipFragmentSelector={
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": at(start_s), "EndTimestamp": at(60)}})
        assert got["ContentType"] == "video/mp4"
        path.write_bytes(got["Payload"].read())
        info = ffprobe(path, "stream=codec_name,nb_read_frames:format=format_name,duration:"
                       "packet=data_hash", "-count_frames", "-show_data_hash", "MD5")
        # It plays: ffmpeg decodes every frame without a word.
        out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stderr == "", out.stderr
        return info

    def md5s(fragments):
        return ["MD5:" + hashlib.md5(b).hexdigest() for _, blocks in fragments for b in blocks]

    # The whole range: the first 200 fragments (600 frames, 24.0 s), not 205.
    info = clip(0, tmp_path / "all.mp4")
    assert info["format"]["format_name"].startswith("mov,mp4")
    assert [(s["codec_name"], int(s["nb_read_frames"])) for s in info["streams"]] == [("h264", 600)]
    assert [p["data_hash"] for p in info["packets"]] == md5s(sent[:200])
    span_s = (sent[200][0] - sent[0][0]) / 1000
    assert span_s == pytest.approx(24.0, abs=0.001)
    assert float(info["format"]["duration"]) == pytest.approx(span_s, abs=0.041)
    # From the 11th fragment on: the 195 left, the last one included.
    info = clip(1.19, tmp_path / "rest.mp4")
    assert [p["data_hash"] for p in info["packets"]] == md5s(sent[10:])
    assert float(info["format"]["duration"]) == pytest.approx(195 * 0.12, abs=0.041)


# 2. GetImages: MEDIA_ERROR where the frames do not decode.

def spoiled(mkv, which):
    """`mkv` with every frame of the clusters numbered in `which` overwritten
    by 0xFF bytes: sizes, block heads, the tracks and codec private data
    kept, so it is still a valid MKV whose frames do not decode."""
    out, pos, index = bytearray(mkv), 0, -1
    while pos < len(out):
        ident, n = _vint(out, pos, True)
        size, m = _vint(out, pos + n, False)
        pos += n + m
        if ident == 0x1F43B675:
            index += 1
        if ident in (0x18538067, 0x1F43B675, 0xA0):  # Segment, Cluster, BlockGroup: step in
            continue
        if ident in (0xA3, 0xA1) and index in which:  # SimpleBlock, Block
            _, tn = _vint(out, pos, False)
            head = tn + 3  # track number, timecode, flags
            out[pos + head:pos + size] = b"\xff" * (size - head)
        pos += size
    return bytes(out)


@pytest.mark.parametrize("bad", [{0, 1, 2}, {1}, set()], ids=["all-bad", "middle-bad", "good"])
def test_get_images_media_error_for_frames_that_do_not_decode(env, bad, tmp_path):
    http, kvs, _, _ = env
    name = fresh(kvs)
    good = make_mkv(seconds=3, audio=False)
    mkv = spoiled(good, bad)
    assert len(mkv) == len(good) and (mkv != good) == bool(bad)
    assert [len(b) for _, b in clusters(mkv)] == [len(b) for _, b in clusters(good)] == [25] * 3
    status, acks = put_all(http, name, mkv)
    assert status == 200 and len(persisted(acks)) == 3 and not of_type(acks, "ERROR")
    archived = archived_for(kvs, name, "GET_IMAGES")
    # Every 500 ms from 1.25 s before the media to 1.75 s after its 3 s.
    offsets = [-1.25 + 0.5 * k for k in range(13)]
    got = archived.get_images(StreamName=name, ImageSelectorType="PRODUCER_TIMESTAMP",
                              StartTimestamp=at(offsets[0]), EndTimestamp=at(offsets[-1]),
                              SamplingInterval=500, Format="JPEG")
    images = got["Images"]
    assert "NextToken" not in got
    assert [round(i["TimeStamp"].timestamp() - START_S, 3) for i in images] == offsets
    want = ["NO_MEDIA" if not 0 <= o < 3 else "MEDIA_ERROR" if int(o) in bad else None
            for o in offsets]
    assert [i.get("Error") for i in images] == want
    for k, (i, w) in enumerate(zip(images, want)):
        if w is not None:
            assert "ImageContent" not in i
            continue
        jpeg = base64.b64decode(i["ImageContent"])
        assert jpeg[:3] == b"\xff\xd8\xff" and jpeg[-2:] == b"\xff\xd9"
        path = tmp_path / f"{k}.jpg"
        path.write_bytes(jpeg)
        assert ffprobe(path, "stream=codec_name,width,height")["streams"] == \
            [{"codec_name": "mjpeg", "width": 160, "height": 120}]


# 3. DASH LIVE, played by ffmpeg while the producer uploads.

class Camera:
    """A PutMedia upload of `mkv` at a camera's pace: its header and first
    `ahead` clusters at once, then a cluster every `pace_s` from a thread
    (the pace is the stimulus, not a synchronisation), until `stop`."""

    def __init__(self, http, name, mkv, ahead=3, pace_s=1.0, start_s=None):
        self.starts = [i for i in range(len(mkv)) if mkv.startswith(CLUSTER, i)]
        self.put = PutMedia(http, name, start_s=start_s or START_S)
        self.put.send(mkv[:self.starts[ahead]])
        self.stopping = threading.Event()
        ends = self.starts[ahead + 1:] + [len(mkv)]
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       args=(mkv, zip(self.starts[ahead:], ends), pace_s))
        self.thread.start()

    def _run(self, mkv, pieces, pace_s):
        try:
            for a, b in pieces:
                if self.stopping.wait(pace_s):
                    break
                self.put.send(mkv[a:b])
            self.put.end()
        except OSError:
            pass

    def stop(self):
        self.stopping.set()
        self.thread.join(30)
        assert self.put.closed.wait(30)
        self.put.close()
        return self.put.acks

    def stop_quietly(self):
        """`stop` for a `finally`: None instead of raising when the upload
        did not end (so that the test's own failure shows)."""
        self.stopping.set()
        self.thread.join(30)
        closed = self.put.closed.wait(30)
        self.put.close()
        return self.put.acks if closed else None


def frame_md5s(target, frames=None, timeout=60):
    """ffmpeg decodes `target`'s video: each frame's MD5, and its stderr."""
    limit = ["-frames:v", str(frames)] if frames else []
    try:
        out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(target), "-map", "0:v", *limit,
                              "-f", "framemd5", "-"], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired as e:
        done = (e.stdout or b"").count(b"\n0,")
        pytest.fail(f"ffmpeg did not read {frames} frames of {target} in {timeout} s "
                    f"(about {done} frames came): {(e.stderr or b'')[-2000:]!r}")
    assert out.returncode == 0, out.stderr
    return [line.rsplit(",", 1)[1].strip() for line in out.stdout.splitlines()
            if line and not line.startswith("#")], out.stderr


def mpd_segments(text):
    """A live manifest's (availabilityStartTime, [(Period id, number, t)]):
    each segment's number (the template's startNumber on) and start time."""
    import xml.etree.ElementTree as ET
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    root = ET.fromstring(text)
    segments = []
    for period in root.findall("d:Period", ns):
        template = period.find(".//d:SegmentTemplate", ns)
        number = int(template.get("startNumber"))
        for i, s in enumerate(template.findall("d:SegmentTimeline/d:S", ns)):
            segments.append((period.get("id"), number + i, int(s.get("t"))))
    return root.get("availabilityStartTime"), segments


def test_dash_live_keeps_its_timeline_while_the_window_slides(env, tmp_path):
    """A LIVE DASH manifest is reloaded by the player and slides over the
    newest fragments: between reloads a fragment keeps its number and its
    time (a player tells new segments from played ones by them; a timeline
    restarting at 0 each reload left players stuck on the first window), the
    window moves on, and players read it: ffprobe sees the stream, ffmpeg
    decodes the first window's frames in order. (ffmpeg 5.1's DASH reader
    does not follow a sliding live window further: with a template it asks
    for numbers past the live edge and skips on 404; the check is the
    manifest's, and HLS LIVE is played end to end in test_video_media.)"""
    import urllib.request
    http, kvs, _, _ = env
    name = fresh(kvs)
    mkv = make_mkv(seconds=30, audio=False, extra=["-s", "320x180"])
    src = tmp_path / "src.mkv"
    src.write_bytes(mkv)
    source, _ = frame_md5s(src)
    assert len(source) == 750
    cam = Camera(http, name, mkv, start_s=time.time())
    try:
        # More than a window (5) stored before the session starts.
        assert cam.put.wait_for(lambda a: len(of_type(a, "PERSISTED")) >= 6)
        archived = archived_for(kvs, name, "GET_DASH_STREAMING_SESSION_URL")
        url = archived.get_dash_streaming_session_url(
            StreamName=name, PlaybackMode="LIVE")["DASHStreamingSessionURL"]
        first_text = urllib.request.urlopen(url).read().decode()
        start, first = mpd_segments(first_text)
        assert 'type="dynamic"' in first_text and len(first) == 5
        # Consecutive numbers, times going on by a fragment's duration (1 s).
        assert [n for _, n, _ in first] == list(range(first[0][1], first[0][1] + 5))
        assert all(b[2] - a[2] == 1000 for a, b in zip(first, first[1:]))
        # Two more fragments later (the camera's pace is the stimulus).
        stored = len(of_type(cam.put.acks, "PERSISTED"))
        assert cam.put.wait_for(lambda a: len(of_type(a, "PERSISTED")) >= stored + 2)
        later_start, later = mpd_segments(urllib.request.urlopen(url).read().decode())
        assert later_start == start
        assert len(later) == 5 and later[0][1] > first[0][1]
        # Every fragment is where the first listing put it: one Period, its
        # time that of the first listed plus a second per number (so a
        # fragment listed in both is at the same time under the same number).
        period, n0, t0 = first[0]
        assert all(p == period and t == t0 + 1000 * (n - n0) for p, n, t in first + later)
        assert later[-1][1] > first[-1][1]
        info = ffprobe(url, "stream=codec_name,width,height:format=format_name")
        assert info["format"]["format_name"] == "dash"
        assert info["streams"] == [{"codec_name": "h264", "width": 320, "height": 180}]
        played, errors = frame_md5s(url, frames=100, timeout=30)
        assert errors == ""
        first_frame = source.index(played[0])
        assert first_frame % 25 == 0  # from a fragment's start
        assert played == source[first_frame:first_frame + 100]
    finally:
        acks = cam.stop()
    assert not of_type(acks, "ERROR")


class Endpoint:
    """A local inference function answering every POST with `status` and
    `body`; keeps what was POSTed."""

    def __init__(self, status, body):
        self.posted = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posted.append((self.headers["Content-Type"], data))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/detect"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("kind", ["http-500", "not-json", "closed-port"])
def test_inference_errors_become_error_records(server, env, kind):
    http, kvs, _, _ = env
    kinesis = boto3.client("kinesis", endpoint_url=server, region_name=REGION,
                           aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                           config=Config(retries={"max_attempts": 1}))
    endpoint = None
    if kind == "http-500":
        endpoint = Endpoint(500, b'{"message": "model crashed"}')
    elif kind == "not-json":
        endpoint = Endpoint(200, b"<html>labels: cat</html>")
    closed = free_port()  # nothing listens there
    uri = endpoint.url if endpoint else f"http://127.0.0.1:{closed}/detect"
    try:
        results = f"results-{uuid.uuid4().hex[:8]}"
        kinesis.create_stream(StreamName=results, ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(StreamName=results)
        name = fresh(kvs)
        kvs.update_notification_configuration(StreamName=name, NotificationConfiguration={
            "Status": "ENABLED",
            "DestinationConfig": {"Uri": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{results}"}})
        kvs.update_image_generation_configuration(StreamName=name, ImageGenerationConfiguration={
            "Status": "ENABLED", "ImageSelectorType": "PRODUCER_TIMESTAMP",
            "DestinationConfig": {"Uri": uri, "DestinationRegion": REGION},
            "SamplingInterval": 1000, "Format": "JPEG", "WidthPixels": 80, "HeightPixels": 60})
        _, acks = put_all(http, name, make_mkv(seconds=2, audio=False))
        numbers = persisted(acks)
        assert len(numbers) == 2
        # An image a second of media: two records, one from each fragment.
        shard = kinesis.list_shards(StreamName=results)["Shards"][0]["ShardId"]
        it = kinesis.get_shard_iterator(StreamName=results, ShardId=shard,
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records, deadline = [], time.monotonic() + 30
        while len(records) < 2:
            got = kinesis.get_records(ShardIterator=it)
            records += [(r["PartitionKey"], json.loads(r["Data"])) for r in got["Records"]]
            it = got["NextShardIterator"]
            assert time.monotonic() < deadline, records
            if not got["Records"]:
                time.sleep(0.1)
    finally:
        if endpoint:
            endpoint.close()
    assert [key for key, _ in records] == [name, name]
    records = [r for _, r in records]
    assert [r["FragmentNumber"] for r in records] == numbers
    assert [r["ImageTimestamp"] - r["ProducerTimestamp"] for r in records] == [0, 0]
    assert records[1]["ImageTimestamp"] - records[0]["ImageTimestamp"] == 1000
    for r in records:
        assert r["StreamName"] == name and "Result" not in r, r
        assert isinstance(r.get("Error"), str) and r["Error"], r
    errors = [r["Error"] for r in records]
    if kind == "http-500":
        assert all("500" in e and "model crashed" in e for e in errors), errors
    elif kind == "not-json":
        assert all("not JSON" in e for e in errors), errors
    else:
        assert all(f"127.0.0.1:{closed}" in e and "refused" in e.lower() for e in errors), errors
    if endpoint:
        # The images did reach the endpoint.
        assert [(ct, img[:3]) for ct, img in endpoint.posted] == [("image/jpeg", b"\xff\xd8\xff")] * 2


# 5. A GetMedia reader that stops reading.

class RawGetMedia:
    """GetMedia (EARLIEST) on a raw socket whose receive buffer is `rcvbuf`
    bytes (a small one fills soon when nothing is read), with `Connection:
    close`, so the answer's end is the connection's. `reading`: a thread
    reads as data comes, counting the chunks (`wait_chunks`); otherwise
    nothing is read until `drain`."""

    def __init__(self, http, name, rcvbuf=None, reading=False):
        host, port = http.rsplit(":", 1)
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, int(port)))
        body = json.dumps({"StreamName": name,
                           "StartSelector": {"StartSelectorType": "EARLIEST"}}).encode()
        self.sock.sendall(b"POST /getMedia HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json"
                          b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                          % (http.encode(), len(body), body))
        self.parts, self.chunks, self.ended = [], 0, False
        self.cond = threading.Condition()
        if reading:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def _read(self):
        tail = b""
        try:
            while part := self.sock.recv(1 << 20):
                with self.cond:
                    self.parts.append(part)
                    self.chunks += (tail + part).count(TOKEN_TAG)
                    tail = (tail + part)[1 - len(TOKEN_TAG):]
                    self.cond.notify_all()
        except OSError:
            pass  # a reset, or our own shutdown
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def wait_chunks(self, count, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.chunks >= count or self.ended, timeout) \
                and self.chunks >= count

    def drain(self, timeout):
        """Reads on to EOF (or a reset) within `timeout`: (the status line,
        the chunked body decoded, whether its last chunk came)."""
        self.sock.settimeout(timeout)
        self._read()
        return self.answer()

    def answer(self):
        """What came, the connection shut down first."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if hasattr(self, "thread"):
            self.thread.join(10)
        self.sock.close()
        head, _, rest = b"".join(self.parts).partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower(), head
        data, complete = [], False
        while True:
            line, sep, after = rest.partition(b"\r\n")
            if not sep:
                break
            size = int(line.split(b";")[0], 16)
            if size == 0:
                complete = True
                break
            if len(after) < size + 2:
                break
            data.append(after[:size])
            rest = after[size + 2:]
        return head.split(b"\r\n")[0], b"".join(data), complete


def test_a_reader_that_stops_reading_is_cut_off(env):
    http, kvs, media, _ = env
    name = fresh(kvs)
    # Lossless noise: 8 fragments of about 4 MB, some 33 MB in all.
    big = make_mkv(seconds=8, audio=False, extra=[
        "-vf", "scale=320:240,noise=alls=100:allf=t", "-qp", "0", "-preset", "ultrafast",
        "-cluster_size_limit", "50000000", "-cluster_time_limit", "20000"])
    sent = clusters(big)
    assert len(sent) == 8 and len(big) > 30_000_000
    stalled = RawGetMedia(http, name, rcvbuf=64 << 10)
    # Two readers that read take the stream's other two places.
    readers = [RawGetMedia(http, name, reading=True) for _ in range(2)]
    try:
        status, acks = put_all(http, name, big)
        assert status == 200 and not of_type(acks, "ERROR")
        first = persisted(acks)
        assert len(first) == 8
        big_done = time.monotonic()
        # A camera goes on with small fragments, so that the readers that
        # read always have a new one (none ends for want of fragments).
        cam = Camera(http, name, make_mkv(seconds=60, audio=False), ahead=1,
                     start_s=START_S + 100)
        try:
            # The stalled reader's place comes back once the server has
            # ended it: a fourth reader gets in then.
            while True:
                try:
                    media.get_media(StreamName=name, StartSelector={
                        "StartSelectorType": "NOW"})["Payload"].close()
                    break
                except ClientError as e:
                    assert e.response["Error"]["Code"] == "ConnectionLimitExceededException"
                    assert time.monotonic() - big_done < 40, "the stalled reader was not cut off"
                    time.sleep(0.25)
            cut_after = time.monotonic() - big_done
        finally:
            acks = cam.stop()
        # Every fragment of the camera's was PERSISTED too.
        second = persisted(acks)
        assert len(second) >= 5 and second == [a["FragmentNumber"] for a in of_type(acks, "BUFFERING")]
        assert not of_type(acks, "ERROR")
        # Not before it had been stalled a while: its wait began while the
        # big fragments were being stored.
        assert cut_after > 20, cut_after
        # Its answer ended (the last chunk, then EOF) with the fragments it
        # had taken before it stopped: the first ones only.
        line, data, complete = stalled.drain(timeout=20)
        assert line == b"HTTP/1.1 200 OK" and complete
        got = [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(data)]
        assert 0 < len(got) < len(first) and got == first[:len(got)], got
        # The readers that read have every fragment of both uploads, whole.
        for r in readers:
            assert r.wait_chunks(len(first + second), timeout=30), r.chunks
            line, data, _ = r.answer()
            assert line == b"HTTP/1.1 200 OK"
            assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(data)] == \
                first + second
            assert [b for _, b in clusters(data)][:8] == [b for _, b in sent]
    finally:
        for r in [stalled, *readers]:
            r.sock.close()


# 6. A producer that stops reading its acknowledgements.

class StalledPut:
    """PutMedia on a raw socket with a small receive buffer whose answer is
    not read until `drain`: a thread sends the upload (and blocks when the
    server stops reading it); `sent` is how far it got."""

    def __init__(self, http, name, data):
        host, port = http.rsplit(":", 1)
        self.sock = socket.socket()
        # Small buffers both ways: the answer fills the receive side soon,
        # and the upload stalls as soon as the server stops reading it
        # (whatever the host's tcp_wmem allows).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
        self.sock.connect((host, int(port)))
        self.sock.sendall(("POST /putMedia HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n"
                           "Connection: close\r\nx-amzn-stream-name: %s\r\n"
                           "x-amzn-fragment-timecode-type: RELATIVE\r\n"
                           "x-amzn-producer-start-timestamp: %s\r\n\r\n"
                           % (http, name, START_S)).encode())
        self.sent, self.done = 0, threading.Event()
        threading.Thread(target=self._send, args=(data,), daemon=True).start()

    def _send(self, data):
        try:
            for i in range(0, len(data), 4096):
                part = data[i:i + 4096]
                self.sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                self.sent = i + len(part)
            self.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            self.done.set()

    def stalled_for(self, seconds, timeout):
        """Waits until the upload made no progress for `seconds` (the sender
        blocked: the sockets are full)."""
        deadline = time.monotonic() + timeout
        last, since = self.sent, time.monotonic()
        while time.monotonic() < deadline and not self.done.is_set():
            time.sleep(0.25)
            if self.sent != last:
                last, since = self.sent, time.monotonic()
            elif time.monotonic() - since >= seconds:
                return True
        return False

    def drain(self, timeout):
        """Reads the answer to its end (EOF, or a reset: the server closes
        with the upload unread): (status line, the whole acknowledgements)."""
        self.sock.settimeout(timeout)
        data = b""
        try:
            while part := self.sock.recv(1 << 16):
                data += part
        except OSError:
            pass
        head, _, body = data.partition(b"\r\n\r\n")
        text, rest = b"", body
        while True:
            line, nl, after = rest.partition(b"\r\n")
            if not nl or not line:
                break
            size = int(line.split(b";")[0], 16)
            if size == 0 or len(after) < size:
                text += after[:size]
                break
            text += after[:size]
            rest = after[size + 2:]
        # A reset may cut the last line short.
        lines = text.decode(errors="replace").split("\n")[:-1]
        return head.split(b"\r\n")[0], [json.loads(l) for l in lines if l.strip()]


def stored_count(archived, name):
    out = archived.list_fragments(StreamName=name, MaxResults=1000)
    n = len(out["Fragments"])
    while out.get("NextToken"):
        out = archived.list_fragments(StreamName=name, MaxResults=1000, NextToken=out["NextToken"])
        n += len(out["Fragments"])
    return n


def test_an_uploader_that_stops_reading_acks_is_cut_off(env):
    """A PutMedia client that reads none of its acknowledgements: they fill
    the sockets (some 3.5 MB of them on loopback), then the server stops
    reading the upload, and once an acknowledgement has waited 10 s for room
    it ends the upload. Meanwhile another stream takes its upload. Reading
    the answer afterwards does not start the upload again: it ends, with
    acknowledgements of what was stored, and the rest was never taken."""
    http, kvs, _, archived = env
    name, other = fresh(kvs), fresh(kvs)
    # A fragment per frame (every frame a keyframe, 16x16): 60,000 of them.
    data = make_mkv(seconds=2400, audio=False, gop=1, extra=["-cluster_time_limit", "1", "-s", "16x16"])
    total = len(clusters(data))
    assert total == 60_000
    stalled = StalledPut(http, name, data)
    try:
        # The server stops reading once the acknowledgements fill up.
        assert stalled.stalled_for(3, timeout=120), "the upload never stalled"
        stalled_at = time.monotonic()
        assert stalled.sent < len(data)
        # Other streams are served meanwhile.
        status, acks = put_all(http, other, make_mkv(seconds=2, audio=False))
        assert status == 200 and len(of_type(acks, "PERSISTED")) == 2
        # The cut is the server's 10 s wait for room: nothing to wait on
        # but the time (reading would make the room). The stored fragments
        # stay as they are for longer than that: the server is not merely
        # slow (a slow disk would also stall the upload).
        before, steady_since = stored_count(archived, name), time.monotonic()
        while time.monotonic() - max(stalled_at, steady_since) < 13:
            time.sleep(0.5)
            now = stored_count(archived, name)
            if now != before:
                before, steady_since = now, time.monotonic()
            assert time.monotonic() - stalled_at < 120, "the server never stopped storing"
        line, acks = stalled.drain(timeout=30)
    finally:
        stalled.sock.close()
    assert line == b"HTTP/1.1 200 OK"
    assert of_type(acks, "PERSISTED") and not of_type(acks, "ERROR")
    # What the answer acknowledged is what is stored, and reading it did not
    # start the upload again.
    after = stored_count(archived, name)
    assert before <= after < total, (before, after, total)
    assert len(of_type(acks, "PERSISTED")) <= after
    assert stored_count(archived, name) == after
