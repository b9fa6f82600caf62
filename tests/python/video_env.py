"""Helpers of the Kinesis Video Streams tests: media made by ffmpeg, a
PutMedia client (botocore has none: PutMedia is full duplex), a GetMedia
reader that keeps what arrived when it stops, and a small EBML reader to
find the chunks' AWS tags."""

import json
import shutil
import socket
import subprocess
import threading
import time

import boto3
import pytest
from botocore.config import Config

REGION, ACCOUNT = "us-east-1", "000000000000"


def clients(endpoint):
    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="AKIDEXAMPLE",
              aws_secret_access_key="secret", config=Config(retries={"max_attempts": 1},
                                                            read_timeout=60))
    return (boto3.client("kinesisvideo", **kw), boto3.client("kinesis-video-media", **kw),
            boto3.client("kinesis-video-archived-media", **kw))


def ffmpeg():
    path = shutil.which("ffmpeg")
    if path is None:
        pytest.fail("ffmpeg is missing (tools/test.sh installs Debian's ffmpeg)")
    return path


def make_mkv(seconds=4, audio=True, gop=25, extra=(), tracks=None):
    """An MKV as a live producer sends it (ffmpeg's -live 1: unknown sizes),
    25 fps test pattern, a cluster (fragment) per `gop` frames; AAC audio as
    track 2 when `audio`. `tracks`: that many video tracks instead."""
    args = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
            "-i", f"testsrc=size=160x120:rate=25:duration={seconds}"]
    if tracks:
        args += sum((["-map", "0:v"] for _ in range(tracks)), [])
    elif audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate=16000:duration={seconds}"]
    args += ["-c:v", "libx264", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
             "-bf", "0", "-pix_fmt", "yuv420p", "-b:v", "100k"]
    if audio and not tracks:
        args += ["-c:a", "aac"]
    args += [*extra, "-f", "matroska", "-live", "1", "pipe:1"]
    return subprocess.run(args, capture_output=True, check=True).stdout


def probe(path):
    """ffprobe's streams: [(codec_name, frames read)]."""
    out = subprocess.run(
        [shutil.which("ffprobe") or "ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_name,nb_read_frames", "-of", "json", path],
        capture_output=True, text=True, check=True).stdout
    return [(s["codec_name"], int(s["nb_read_frames"])) for s in json.loads(out)["streams"]]


class PutMedia:
    """One PutMedia connection on a raw socket: `send` writes chunks of the
    upload (HTTP chunked encoding), a thread reads the answer's status and
    its acknowledgements as they come (`acks`, and `wait_for`)."""

    def __init__(self, http, stream, start_s=1_700_000_000.5, timecode_type="RELATIVE",
                 headers=None):
        host, port = http.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        hdrs = {"x-amzn-stream-name": stream, "x-amzn-fragment-timecode-type": timecode_type,
                "x-amzn-producer-start-timestamp": str(start_s)}
        if headers is not None:
            hdrs = headers
        lines = ["POST /putMedia HTTP/1.1", f"Host: {http}", "Transfer-Encoding: chunked",
                 "Connection: close"]
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.status = None
        self.acks = []
        self.raw = b""
        self.closed = threading.Event()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def send(self, data, piece=4096):
        for i in range(0, len(data), piece):
            part = data[i:i + piece]
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))

    def end(self):
        self.sock.sendall(b"0\r\n\r\n")

    def _read(self):
        buf = b""
        try:
            while True:
                got = self.sock.recv(65536)
                if not got:
                    break
                buf += got
                self._parse(buf)
        except OSError:
            pass
        finally:
            self._parse(buf)
            self.closed.set()
            with self._cond:
                self._cond.notify_all()

    def _parse(self, buf):
        head, sep, body = buf.partition(b"\r\n\r\n")
        if not sep:
            return
        self.status = int(head.split(b" ")[1])
        # Undo the chunked encoding (or take the body as is).
        data, rest = b"", body
        if b"transfer-encoding: chunked" in head.lower():
            while True:
                line, nl, after = rest.partition(b"\r\n")
                if not nl:
                    break
                size = int(line.split(b";")[0] or b"0", 16)
                if size == 0 or len(after) < size + 2:
                    break
                data += after[:size]
                rest = after[size + 2:]
        else:
            data = body
        self.raw = data
        acks = [json.loads(l) for l in data.decode().splitlines() if l.strip()]
        with self._cond:
            self.acks = acks
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=30):
        """Waits (on the reader's notifications) until `predicate(acks)`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.acks):
                left = deadline - time.monotonic()
                if left <= 0 or (self.closed.is_set() and not predicate(self.acks)):
                    return predicate(self.acks)
                self._cond.wait(left)
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def put_all(http, stream, data, **kw):
    """Uploads `data` whole and gives every acknowledgement."""
    p = PutMedia(http, stream, **kw)
    try:
        p.send(data)
        p.end()
        p.closed.wait(60)
        return p.status, p.acks
    finally:
        p.close()


def of_type(acks, kind):
    return [a for a in acks if a["EventType"] == kind]


class Reader:
    """GetMedia read by a thread: `data` grows as chunks arrive; `until`
    waits for a condition on it."""

    def __init__(self, media, **kw):
        self.answer = media.get_media(**kw)
        self.data = b""
        self.done = threading.Event()
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        # urllib3's read1: what has arrived, without waiting to fill a size.
        raw = self.answer["Payload"]._raw_stream
        try:
            while True:
                part = raw.read1(65536)
                if not part:
                    break
                with self._cond:
                    self.data += part
                    self._cond.notify_all()
        except Exception:
            pass
        finally:
            self.done.set()
            with self._cond:
                self._cond.notify_all()

    def until(self, predicate, timeout=30):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.data):
                left = deadline - time.monotonic()
                if left <= 0 or self.done.is_set():
                    return predicate(self.data)
                self._cond.wait(left)
            return True

    def close(self):
        # Shut the connection down under the reading thread (closing the
        # body alone waits for the server to end it).
        conn = getattr(self.answer["Payload"]._raw_stream, "_connection", None)
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.done.wait(10)


# EBML, enough to walk GetMedia's chunks.

def _vint(data, at, marker):
    first = data[at]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    value = first if marker else first & (0xFF >> length)
    for b in data[at + 1:at + length]:
        value = (value << 8) | b
    return value, length


UNKNOWN = (1 << 56) - 1
MASTERS = {0x18538067, 0x1254C367, 0x7373, 0x67C8}


def tags_in(data):
    """Every (name, value) of the SimpleTags, in order, with the Cluster
    elements in between as ('Cluster', its bytes)."""
    out, at = [], 0
    while at < len(data):
        ident, n = _vint(data, at, True)
        size, m = _vint(data, at + n, False)
        at += n + m
        if ident == 0x18538067 or (ident in MASTERS and size != UNKNOWN and ident != 0x67C8):
            continue  # step into
        if ident == 0x67C8:
            body = data[at:at + size]
            pairs, j = {}, 0
            while j < len(body):
                i2, n2 = _vint(body, j, True)
                s2, m2 = _vint(body, j + n2, False)
                pairs[i2] = body[j + n2 + m2:j + n2 + m2 + s2].decode()
                j += n2 + m2 + s2
            out.append((pairs.get(0x45A3), pairs.get(0x4487)))
        elif ident == 0x1F43B675:
            out.append(("Cluster", bytes(data[at:at + size])))
        at += size
    return out


def chunk_tags(data):
    """Per chunk (a Cluster with the tags before and after it): a dict of
    its AWS tags."""
    chunks, current = [], {}
    for name, value in tags_in(data):
        if name == "Cluster":
            continue
        current[name] = value
        if name == "AWS_KINESISVIDEO_CONTINUATION_TOKEN":
            chunks.append(current)
            current = {}
    return chunks


def clusters(data):
    """Each Cluster's (Timecode, [SimpleBlock bodies without their 4-byte
    head]) in an MKV stream or in GetMedia chunks, in order."""
    out, at = [], 0
    unknown = (1 << 56) - 1
    while at < len(data):
        ident, n = _vint(data, at, True)
        size, m = _vint(data, at + n, False)
        at += n + m
        if ident == 0x18538067:
            continue  # into the Segment
        if ident == 0x1F43B675:
            end = len(data) if size == unknown else at + size
            timecode, blocks, j = None, [], at
            while j < end:
                cid, cn = _vint(data, j, True)
                if cid == 0x1F43B675 or cid == 0x1254C367 or cid == 0x1A45DFA3:
                    break  # an unknown-size cluster ends at the next level-1 element
                csize, cm = _vint(data, j + cn, False)
                body = data[j + cn + cm:j + cn + cm + csize]
                if cid == 0xE7:
                    timecode = int.from_bytes(body, "big")
                elif cid == 0xA3:
                    _, tn = _vint(body, 0, False)
                    blocks.append(bytes(body[tn + 3:]))
                j += cn + cm + csize
            out.append((timecode, blocks))
            at = j
            continue
        at += size
    return out
