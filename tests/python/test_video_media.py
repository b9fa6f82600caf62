"""Kinesis Video Streams' media path against the real binary, with ffmpeg
as the producer and ffprobe and ffmpeg as the players: PutMedia's
acknowledgements, ListFragments, GetMedia (from the start, live, by
continuation token and by time), GetMediaForFragmentList, HLS and DASH
sessions, GetClip, GetImages, the refusals AWS gives, and fragments kept
byte for byte across a restart."""

import base64
import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import ROOT, start_on, start_server, stop_server
from video_env import (PutMedia, Reader, chunk_tags, clients, clusters, make_mkv, of_type,
                       probe, put_all, tags_in)

START_S = 1_700_000_000.5


@pytest.fixture(scope="module")
def env(server):
    kvs, media, archived = clients(server)
    return server.removeprefix("http://"), kvs, media, archived


@pytest.fixture(scope="module")
def av():
    """Four seconds of H.264 and AAC, a fragment a second."""
    return make_mkv(seconds=4)


def fresh(kvs, retention=1):
    name = f"cam-{uuid.uuid4().hex[:10]}"
    kvs.create_stream(StreamName=name, DataRetentionInHours=retention)
    return name


def numbers(acks, kind):
    return [a["FragmentNumber"] for a in of_type(acks, kind)]


def test_acks_come_in_order_for_each_fragment(env, av):
    http, kvs, _, archived = env
    name = fresh(kvs)
    status, acks = put_all(http, name, av)
    assert status == 200
    # Each fragment's acks in order (a fragment's BUFFERING may come before
    # the PERSISTED of the one before it: stores overlap the reading).
    per_fragment = {}
    for a in acks:
        per_fragment.setdefault(a["FragmentNumber"], []).append(a["EventType"])
    assert list(per_fragment.values()) == [["BUFFERING", "RECEIVED", "PERSISTED"]] * 4, acks
    persisted = numbers(acks, "PERSISTED")
    assert numbers(acks, "BUFFERING") == persisted == numbers(acks, "RECEIVED")
    assert all(re.fullmatch(r"[0-9]{47}", n) for n in persisted)
    assert persisted == sorted(persisted) and len(set(persisted)) == 4
    timecodes = [a["FragmentTimecode"] for a in of_type(acks, "PERSISTED")]
    assert timecodes == sorted(timecodes) and timecodes[0] == 0

    listed = archived.list_fragments(StreamName=name)["Fragments"]
    assert [f["FragmentNumber"] for f in listed] == persisted
    for f, tc in zip(listed, timecodes):
        # RELATIVE: the producer start plus the cluster's timecode (ms).
        assert f["ProducerTimestamp"].timestamp() == pytest.approx(START_S + tc / 1000, abs=0.001)
        assert abs(f["ServerTimestamp"].timestamp() - time.time()) < 60
        assert 900 <= f["FragmentLengthInMilliseconds"] <= 1100
        assert f["FragmentSizeInBytes"] > 0


def test_list_fragments_by_time_and_pages(env, av):
    http, kvs, _, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    every = archived.list_fragments(StreamName=name)["Fragments"]
    second, third = every[1]["ProducerTimestamp"], every[2]["ProducerTimestamp"]
    sel = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
           "TimestampRange": {"StartTimestamp": second, "EndTimestamp": third}}
    got = archived.list_fragments(StreamName=name, FragmentSelector=sel)["Fragments"]
    assert [f["FragmentNumber"] for f in got] == [f["FragmentNumber"] for f in every[1:3]]
    seen, token = [], None
    while True:
        kw = {"StreamName": name, "MaxResults": 3}
        if token:
            kw["NextToken"] = token
        page = archived.list_fragments(**kw)
        seen += [f["FragmentNumber"] for f in page["Fragments"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == [f["FragmentNumber"] for f in every]


def test_get_media_from_the_start_plays_what_was_put(env, av, tmp_path):
    http, kvs, media, _ = env
    name = fresh(kvs)
    _, acks = put_all(http, name, av)
    persisted = numbers(acks, "PERSISTED")
    reader = Reader(media, StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
    assert reader.answer["ContentType"] == "video/webm"
    assert reader.until(lambda d: len(chunk_tags(d)) == 4)
    reader.close()
    chunks = chunk_tags(reader.data)
    assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunks] == persisted
    assert [c["AWS_KINESISVIDEO_CONTINUATION_TOKEN"] for c in chunks] == persisted
    for c in chunks:
        assert re.fullmatch(r"[0-9]+\.[0-9]{3}", c["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"])
        assert int(c["AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"]) >= 0
    # Each chunk's cluster: the producer's frames, its Timecode made absolute
    # (the producer start plus the cluster's own, in ms).
    sent, served = clusters(av), clusters(reader.data)
    assert [b for _, b in served] == [b for _, b in sent]
    assert [tc for tc, _ in served] == [round(START_S * 1000) + tc for tc, _ in sent]
    # The player reads every frame the producer made.
    src, out = tmp_path / "src.mkv", tmp_path / "out.mkv"
    src.write_bytes(av)
    out.write_bytes(reader.data)
    assert probe(str(out)) == probe(str(src))


def test_get_media_follows_live_and_resumes_by_token(env, av):
    http, kvs, media, _ = env
    name = fresh(kvs)
    live = Reader(media, StreamName=name, StartSelector={"StartSelectorType": "NOW"})
    p = PutMedia(http, name, start_s=START_S)
    try:
        # Half the upload: the reader gets what is stored, as it is stored.
        cut = len(av) // 2
        p.send(av[:cut])
        assert p.wait_for(lambda a: len(of_type(a, "PERSISTED")) >= 1)
        first = numbers(p.acks, "PERSISTED")[0]
        assert live.until(lambda d: any(
            c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] == first for c in chunk_tags(d)))
        p.send(av[cut:])
        p.end()
        assert p.wait_for(lambda a: len(of_type(a, "PERSISTED")) == 4)
        persisted = numbers(p.acks, "PERSISTED")
        assert live.until(lambda d: len(chunk_tags(d)) == 4)
        assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(live.data)] == persisted
    finally:
        p.close()
        live.close()
    # A new GetMedia from the second chunk's token starts at the third.
    token = chunk_tags(live.data)[1]["AWS_KINESISVIDEO_CONTINUATION_TOKEN"]
    again = Reader(media, StreamName=name, StartSelector={
        "StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": token})
    assert again.until(lambda d: len(chunk_tags(d)) == 2)
    again.close()
    assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(again.data)] == persisted[2:]
    after = Reader(media, StreamName=name, StartSelector={
        "StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": persisted[0]})
    assert after.until(lambda d: len(chunk_tags(d)) == 3)
    after.close()
    assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(after.data)] == persisted[1:]


def test_get_media_by_producer_time(env, av):
    http, kvs, media, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    every = archived.list_fragments(StreamName=name)["Fragments"]
    # A time inside the third fragment starts there.
    inside = every[2]["ProducerTimestamp"].timestamp() + 0.3
    r = Reader(media, StreamName=name, StartSelector={
        "StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": inside})
    assert r.until(lambda d: len(chunk_tags(d)) == 2)
    r.close()
    assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(r.data)] == \
        [f["FragmentNumber"] for f in every[2:]]


def test_media_for_a_fragment_list(env, av, tmp_path):
    http, kvs, _, archived = env
    name = fresh(kvs)
    _, acks = put_all(http, name, av)
    persisted = numbers(acks, "PERSISTED")
    def fetch(*which):
        got = archived.get_media_for_fragment_list(StreamName=name, Fragments=list(which))
        data = got["Payload"].read()
        assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(data)] == list(which)
        out = tmp_path / f"{len(which)}.mkv"
        out.write_bytes(data)
        return dict(probe(str(out)))
    # Fragments in the order named; each plays.
    fetch(persisted[3], persisted[1])
    for n in persisted:
        streams = fetch(n)
        assert streams["h264"] >= 24 and streams["aac"] >= 1, streams
    with pytest.raises(ClientError) as e:
        archived.get_media_for_fragment_list(StreamName=name, Fragments=["9" * 47])
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_bad_uploads_get_aws_error_ids(env):
    http, kvs, _, archived = env
    name = fresh(kvs)
    # Not MKV at all.
    status, acks = put_all(http, name, b"this is not a matroska file" * 100)
    assert status == 200
    assert [(a["EventType"], a.get("ErrorId")) for a in acks] == [("ERROR", 4006)]
    # A fragment of 12 s (a key frame every 300 frames at 25 fps).
    # (ffmpeg cuts a cluster at 5 s by default: not here.)
    long_cluster = ["-cluster_time_limit", "20000", "-cluster_size_limit", "50000000"]
    _, acks = put_all(http, name, make_mkv(seconds=13, audio=False, gop=300, extra=long_cluster))
    errors = of_type(acks, "ERROR")
    assert errors and errors[0]["ErrorId"] == 4002
    # Four tracks.
    _, acks = put_all(http, name, make_mkv(seconds=2, tracks=4))
    assert [a.get("ErrorId") for a in of_type(acks, "ERROR")] == [4012]
    # Only the last second of the 13 s upload (its own cluster) was kept.
    kept = archived.list_fragments(StreamName=name)["Fragments"]
    assert len(kept) == 1 and kept[0]["FragmentLengthInMilliseconds"] <= 10_000


def test_refusals_before_the_upload_starts(env):
    http, kvs, media, _ = env
    p = PutMedia(http, "no-such-stream")
    try:
        p.end()
        p.closed.wait(10)
        assert p.status == 404
    finally:
        p.close()
    name = fresh(kvs)
    p = PutMedia(http, name, headers={"x-amzn-stream-name": name})
    try:
        p.end()
        p.closed.wait(10)
        assert p.status == 400
    finally:
        p.close()
    with pytest.raises(ClientError) as e:
        media.get_media(StreamName="no-such-stream", StartSelector={"StartSelectorType": "NOW"})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_three_readers_at_most(env):
    _, kvs, media, _ = env
    name = fresh(kvs)
    readers = [Reader(media, StreamName=name, StartSelector={"StartSelectorType": "NOW"})
               for _ in range(3)]
    try:
        with pytest.raises(ClientError) as e:
            media.get_media(StreamName=name, StartSelector={"StartSelectorType": "NOW"})
        assert e.value.response["Error"]["Code"] == "ConnectionLimitExceededException"
    finally:
        for r in readers:
            r.close()


def test_idle_uploads_get_idle_acks(env, av):
    http, kvs, _, _ = env
    name = fresh(kvs)
    p = PutMedia(http, name)
    try:
        p.send(av[:200])
        assert p.wait_for(lambda a: len(of_type(a, "IDLE")) >= 1, timeout=10)
    finally:
        p.close()


def test_fragments_are_kept_across_a_restart(av):
    proc, http, data = start_server()
    try:
        kvs, media, archived = clients(f"http://{http}")
        name = fresh(kvs)
        _, acks = put_all(http, name, av)
        persisted = numbers(acks, "PERSISTED")
        before = archived.get_media_for_fragment_list(StreamName=name, Fragments=persisted)
        before = before["Payload"].read()
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        proc, http = start_on(data)
        kvs, media, archived = clients(f"http://{http}")
        listed = archived.list_fragments(StreamName=name)["Fragments"]
        assert [f["FragmentNumber"] for f in listed] == persisted
        after = archived.get_media_for_fragment_list(StreamName=name, Fragments=persisted)
        after = after["Payload"].read()
        # The same clusters and tags but for how far behind now they are.
        strip = lambda d: [t for t in tags_in(d) if t[0] != "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"]
        assert strip(after) == strip(before)
        assert len(strip(after)) == 4 * 5
        # New fragments go on after the old numbers.
        _, acks = put_all(http, name, av)
        assert min(numbers(acks, "PERSISTED")) > max(persisted)
    finally:
        stop_server(proc, data)


def test_now_starts_after_what_is_stored(env, av):
    http, kvs, media, _ = env
    name = fresh(kvs)
    _, first = put_all(http, name, av)
    live = Reader(media, StreamName=name, StartSelector={"StartSelectorType": "NOW"})
    try:
        # A second session, later in producer time.
        _, second = put_all(http, name, av, start_s=START_S + 100)
        assert live.until(lambda d: len(chunk_tags(d)) >= 4)
    finally:
        live.close()
    got = [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(live.data)]
    assert got == numbers(second, "PERSISTED")
    assert not set(got) & set(numbers(first, "PERSISTED"))


def test_server_timestamp_start(env, av):
    http, kvs, media, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    every = archived.list_fragments(StreamName=name)["Fragments"]
    stamps = [f["ServerTimestamp"] for f in every]
    # From the newest fragment's server time: the first fragment that began
    # arriving then (fragments of one upload may share a millisecond).
    first = stamps.index(stamps[-1])
    r = Reader(media, StreamName=name, StartSelector={
        "StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": stamps[-1]})
    assert r.until(lambda d: len(chunk_tags(d)) == len(every) - first)
    r.close()
    assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(r.data)] == \
        [f["FragmentNumber"] for f in every[first:]]


def test_a_stream_that_keeps_nothing(env, av):
    http, kvs, media, archived = env
    name = fresh(kvs, retention=0)
    _, acks = put_all(http, name, av)
    # RECEIVED is the last ack of each fragment; nothing to list or get.
    assert sorted(a["EventType"] for a in acks) == ["BUFFERING"] * 4 + ["RECEIVED"] * 4
    assert not of_type(acks, "PERSISTED")
    assert archived.list_fragments(StreamName=name)["Fragments"] == []
    with pytest.raises(ClientError):
        archived.get_media_for_fragment_list(
            StreamName=name, Fragments=[acks[1]["FragmentNumber"]])
    # GetMedia still reads the stream (AWS: from its short buffer).
    r = Reader(media, StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
    assert r.until(lambda d: len(chunk_tags(d)) == 4)
    r.close()


def test_timecodes_going_back_drop_those_fragments(env, av):
    http, kvs, _, archived = env
    name = fresh(kvs)
    # The same clusters twice in one upload: the second four go back in time.
    first_cluster = av.index(b"\x1f\x43\xb6\x75")
    _, acks = put_all(http, name, av + av[first_cluster:])
    assert len(of_type(acks, "PERSISTED")) == 4
    assert [a["ErrorId"] for a in of_type(acks, "ERROR")] == [4004] * 4
    assert len(archived.list_fragments(StreamName=name)["Fragments"]) == 4


def test_deleting_the_stream_ends_uploads_and_readers(env, av):
    http, kvs, media, _ = env
    name = fresh(kvs)
    live = Reader(media, StreamName=name, StartSelector={"StartSelectorType": "NOW"})
    p = PutMedia(http, name)
    try:
        cut = len(av) // 2
        p.send(av[:cut])
        assert p.wait_for(lambda a: len(of_type(a, "PERSISTED")) >= 1)
        arn = kvs.describe_stream(StreamName=name)["StreamInfo"]["StreamARN"]
        kvs.delete_stream(StreamARN=arn)
        try:
            p.send(av[cut:])
            p.end()
        except OSError:
            pass
        assert p.wait_for(lambda a: any(e.get("ErrorId") == 4008 for e in of_type(a, "ERROR")))
        # The reader's answer ends (it had the fragments stored before).
        assert live.done.wait(10)
    finally:
        p.close()
        live.close()


def test_a_reader_gone_gives_its_place_back(env):
    _, kvs, media, _ = env
    name = fresh(kvs)
    readers = [Reader(media, StreamName=name, StartSelector={"StartSelectorType": "NOW"})
               for _ in range(3)]
    try:
        readers[0].close()
        # The server notices the closed connection while it waits (each
        # second): a fourth reader gets in then.
        deadline = time.monotonic() + 10
        while True:
            try:
                readers.append(Reader(media, StreamName=name,
                                      StartSelector={"StartSelectorType": "NOW"}))
                break
            except ClientError as e:
                assert e.response["Error"]["Code"] == "ConnectionLimitExceededException"
                assert time.monotonic() < deadline, "the place was not given back"
                time.sleep(0.1)
    finally:
        for r in readers:
            r.close()


def test_two_sessions_into_one_stream(env, av):
    http, kvs, media, archived = env
    name = fresh(kvs)
    a, b = PutMedia(http, name), PutMedia(http, name, start_s=START_S + 1000)
    try:
        # Interleaved: a piece of each in turn.
        piece = 2048
        for i in range(0, len(av), piece):
            a.send(av[i:i + piece])
            b.send(av[i:i + piece])
        a.end()
        b.end()
        assert a.wait_for(lambda x: len(of_type(x, "PERSISTED")) == 4)
        assert b.wait_for(lambda x: len(of_type(x, "PERSISTED")) == 4)
    finally:
        a.close()
        b.close()
    both = sorted(numbers(a.acks, "PERSISTED") + numbers(b.acks, "PERSISTED"))
    listed = [f["FragmentNumber"] for f in archived.list_fragments(StreamName=name)["Fragments"]]
    assert listed == both
    r = Reader(media, StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
    assert r.until(lambda d: len(chunk_tags(d)) == 8)
    r.close()
    assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(r.data)] == both


def test_fragments_over_a_record_go_in_parts(env):
    http, kvs, _, archived = env
    name = fresh(kvs)
    # Lossless noise: some MB a fragment, more than one 1 MiB record each.
    big = make_mkv(seconds=2, audio=False,
                   extra=["-vf", "scale=320:240,noise=alls=100:allf=t", "-qp", "0",
                          "-cluster_size_limit", "50000000", "-cluster_time_limit", "20000"])
    sent = clusters(big)
    _, acks = put_all(http, name, big)
    persisted = numbers(acks, "PERSISTED")
    assert len(persisted) == len(sent)
    listed = archived.list_fragments(StreamName=name)["Fragments"]
    assert max(f["FragmentSizeInBytes"] for f in listed) > 2 << 20
    got = archived.get_media_for_fragment_list(StreamName=name, Fragments=persisted)
    served = clusters(got["Payload"].read())
    assert [b for _, b in served] == [b for _, b in sent]


def image_size(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    codec, w, h = out.stdout.strip().split(",")
    return codec, int(w), int(h)


def test_get_images_jpeg_and_png(env, av, tmp_path):
    http, kvs, _, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    start = datetime.datetime.fromtimestamp(START_S, datetime.timezone.utc)
    kw = dict(StreamName=name, ImageSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=start,
              EndTimestamp=start + datetime.timedelta(seconds=6), SamplingInterval=1000)
    got = archived.get_images(Format="JPEG", WidthPixels=80, HeightPixels=60, **kw)
    images = got["Images"]
    # 0..6 s every second: four seconds of media (the last fragment may
    # reach 4 s), nothing at 5 and 6 s.
    assert [i["TimeStamp"].timestamp() for i in images] == [START_S + k for k in range(7)]
    assert [i.get("Error") for i in images[:4]] == [None] * 4
    assert [i.get("Error") for i in images[5:]] == ["NO_MEDIA"] * 2
    # The test pattern moves: images a second apart differ.
    assert images[0]["ImageContent"] != images[2]["ImageContent"]
    for k, i in enumerate(images[:4]):
        data = base64.b64decode(i["ImageContent"])
        assert data[:3] == b"\xff\xd8\xff"
        path = tmp_path / f"{k}.jpg"
        path.write_bytes(data)
        assert image_size(path) == ("mjpeg", 80, 60)
    png = archived.get_images(Format="PNG", MaxResults=2, **kw)
    assert len(png["Images"]) == 2 and "NextToken" in png
    data = base64.b64decode(png["Images"][0]["ImageContent"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "a.png").write_bytes(data)
    assert image_size(tmp_path / "a.png") == ("png", 160, 120)
    rest = archived.get_images(Format="PNG", NextToken=png["NextToken"], **kw)
    assert [i["TimeStamp"].timestamp() for i in rest["Images"]] == \
        [START_S + k for k in range(2, 7)]


def test_get_images_refusals(env, av):
    http, kvs, _, archived = env
    name = fresh(kvs)
    start = datetime.datetime.fromtimestamp(START_S, datetime.timezone.utc)
    kw = dict(StreamName=name, ImageSelectorType="SERVER_TIMESTAMP", StartTimestamp=start,
              Format="JPEG")
    with pytest.raises(ClientError) as e:
        archived.get_images(EndTimestamp=start + datetime.timedelta(seconds=301), **kw)
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        archived.get_images(EndTimestamp=start, WidthPixels=100, **kw)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    empty = fresh(kvs, retention=0)
    with pytest.raises(ClientError) as e:
        archived.get_images(**{**kw, "StreamName": empty}, EndTimestamp=start)
    assert e.value.response["Error"]["Code"] == "NoDataRetentionException"


def ffprobe_json(target):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_name,nb_read_frames:format=format_name,duration", "-of", "json", target],
        capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    return json.loads(out.stdout)


def whole_range(start_offset_s=0, seconds=10):
    start = datetime.datetime.fromtimestamp(START_S + start_offset_s, datetime.timezone.utc)
    return {"StartTimestamp": start, "EndTimestamp": start + datetime.timedelta(seconds=seconds)}


def test_hls_on_demand_plays_in_ffmpeg(env, av, tmp_path):
    http, kvs, _, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    url = archived.get_hls_streaming_session_url(
        StreamName=name, PlaybackMode="ON_DEMAND",
        HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                             "TimestampRange": whole_range()})["HLSStreamingSessionURL"]
    assert url.startswith(f"http://{http}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=")
    master = urllib.request.urlopen(url).read().decode()
    assert master.startswith("#EXTM3U") and 'CODECS="avc1.' in master and "RESOLUTION=160x120" in master
    got = ffprobe_json(url)
    assert got["format"]["format_name"] == "hls"
    assert float(got["format"]["duration"]) == pytest.approx(4.0, abs=0.2)
    src = tmp_path / "src.mkv"
    src.write_bytes(av)
    frames = {s["codec_name"]: int(s["nb_read_frames"]) for s in got["streams"]}
    assert frames == dict(probe(str(src)))
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", url, "-c", "copy", "-f", "null", "-"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_hls_live_lists_the_newest_fragments(env, av):
    http, kvs, _, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    put_all(http, name, av, start_s=START_S + 10)
    url = archived.get_hls_streaming_session_url(
        StreamName=name, MaxMediaPlaylistFragmentResults=3,
        DisplayFragmentTimestamp="ALWAYS")["HLSStreamingSessionURL"]
    master = urllib.request.urlopen(url).read().decode()
    media_url = url.rsplit("/", 1)[0] + "/" + master.strip().splitlines()[-1]
    playlist = urllib.request.urlopen(media_url).read().decode()
    assert "#EXT-X-ENDLIST" not in playlist
    # The three newest, by their producer timestamps.
    shown = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", playlist)
    newest = archived.list_fragments(StreamName=name)["Fragments"][-3:]
    assert shown == [f["ProducerTimestamp"].astimezone(datetime.timezone.utc)
                     .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for f in newest]
    # Each segment is there to fetch.
    for seg in re.findall(r"^(getMP4MediaFragment\S+)$", playlist, re.M):
        data = urllib.request.urlopen(url.rsplit("/", 1)[0] + "/" + seg).read()
        assert data[4:8] == b"moof"
    # Reloaded, the same fragments keep their sequence numbers.
    again = urllib.request.urlopen(media_url).read().decode()
    assert re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", again).group(1) == \
        re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist).group(1)
    # A session token nobody made.
    bad = url.split("SessionToken=")[0] + "SessionToken=nope"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad)
    assert e.value.code == 403


def test_dash_on_demand_plays_in_ffmpeg(env, av):
    http, kvs, _, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    url = archived.get_dash_streaming_session_url(
        StreamName=name, PlaybackMode="ON_DEMAND",
        DASHFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                              "TimestampRange": whole_range()})["DASHStreamingSessionURL"]
    assert "/dash/v1/getDASHManifest.mpd?SessionToken=" in url
    got = ffprobe_json(url)
    assert got["format"]["format_name"] == "dash"
    assert {s["codec_name"] for s in got["streams"]} == {"h264", "aac"}
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", url, "-c", "copy", "-f", "null", "-"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_get_clip_is_a_whole_mp4(env, av, tmp_path):
    http, kvs, _, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    got = archived.get_clip(StreamName=name, ClipFragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": whole_range()})
    assert got["ContentType"] == "video/mp4"
    clip = got["Payload"].read()
    assert b"moof" not in clip and b"moov" in clip
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip)
    info = ffprobe_json(str(path))
    assert info["format"]["format_name"].startswith("mov,mp4")
    assert float(info["format"]["duration"]) == pytest.approx(4.0, abs=0.2)
    src = tmp_path / "src.mkv"
    src.write_bytes(av)
    assert {s["codec_name"]: int(s["nb_read_frames"]) for s in info["streams"]} == dict(probe(str(src)))
    # Part of the range: the fragments in it only.
    part = archived.get_clip(StreamName=name, ClipFragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": whole_range(start_offset_s=1.5, seconds=1)})["Payload"].read()
    (tmp_path / "part.mp4").write_bytes(part)
    assert float(ffprobe_json(str(tmp_path / "part.mp4"))["format"]["duration"]) == \
        pytest.approx(1.0, abs=0.2)
    with pytest.raises(ClientError) as e:
        archived.get_clip(StreamName=name, ClipFragmentSelector={
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": whole_range(start_offset_s=100)})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_playback_refusals(env):
    _, kvs, _, archived = env
    keeps_nothing = fresh(kvs, retention=0)
    with pytest.raises(ClientError) as e:
        archived.get_hls_streaming_session_url(StreamName=keeps_nothing)
    assert e.value.response["Error"]["Code"] == "NoDataRetentionException"
    name = fresh(kvs)
    for kw in [{"ContainerFormat": "MPEG_TS"},
               {"PlaybackMode": "ON_DEMAND"},
               {"HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
                                        "TimestampRange": whole_range()}}]:
        with pytest.raises(ClientError) as e:
            archived.get_hls_streaming_session_url(StreamName=name, **kw)
        assert e.value.response["Error"]["Code"] == "InvalidArgumentException", kw


def test_playback_urls_need_no_signature_when_signatures_are_verified():
    conf_dir = tempfile.mkdtemp(prefix="auth-", dir=os.path.join(ROOT, "target", "tmp"))
    conf = os.path.join(conf_dir, "riffle.toml")
    with open(conf, "w") as f:
        f.write('access_keys = [{ id = "AKIDRIFFLE", secret = "s3cr3t/key+value" }]\n')
    proc, http, data = start_server("--config", conf, "--auth", "sigv4")
    try:
        # A player's unsigned GET reaches the service, which judges its token.
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://{http}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=x")
        assert e.value.code == 403
        assert e.value.headers["x-amzn-ErrorType"] == "NotAuthorizedException"
        # Everything else still needs a signature.
        req = urllib.request.Request(f"http://{http}/listStreams", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        assert e.value.code in (400, 403)
        assert e.value.headers["x-amzn-ErrorType"] != "NotAuthorizedException"
        # A signed client works.
        kvs = boto3.client("kinesisvideo", endpoint_url=f"http://{http}", region_name="us-east-1",
                           aws_access_key_id="AKIDRIFFLE", aws_secret_access_key="s3cr3t/key+value")
        kvs.create_stream(StreamName="signed")
        assert [s["StreamName"] for s in kvs.list_streams()["StreamInfoList"]] == ["signed"]
    finally:
        stop_server(proc, data)
        shutil.rmtree(conf_dir, ignore_errors=True)


def test_live_replay_grows_from_its_start(env, av):
    http, kvs, _, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    url = archived.get_hls_streaming_session_url(
        StreamName=name, PlaybackMode="LIVE_REPLAY", MaxMediaPlaylistFragmentResults=10,
        HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                             "TimestampRange": {"StartTimestamp": datetime.datetime.fromtimestamp(
                                 START_S, datetime.timezone.utc)}})["HLSStreamingSessionURL"]
    media_url = url.replace("getHLSMasterPlaylist.m3u8", "getHLSMediaPlaylist.m3u8")
    # At first only what the time since the session began reaches: the first
    # fragment (its start is the range's start); more as time passes.
    first = urllib.request.urlopen(media_url).read().decode()
    assert first.count("#EXTINF") == 1 and "#EXT-X-ENDLIST" not in first
    deadline = time.monotonic() + 10
    while urllib.request.urlopen(media_url).read().decode().count("#EXTINF") < 2:
        assert time.monotonic() < deadline, "the replay did not grow"
        time.sleep(0.1)


def test_a_dash_replay_before_its_first_fragment_waits_for_it_live(env, av):
    """A LIVE_REPLAY DASH session whose range starts 3 s before the stream's
    first fragment lists nothing until the replay reaches it: a dynamic
    manifest with a placeholder Period (an MPD has one), not a static
    (finished) one; then the fragments appear, available as they are
    listed, on the timeline the first manifest fixed."""
    import xml.etree.ElementTree as ET
    http, kvs, _, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    url = archived.get_dash_streaming_session_url(
        StreamName=name, PlaybackMode="LIVE_REPLAY",
        DASHFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                              "TimestampRange": {"StartTimestamp": datetime.datetime.fromtimestamp(
                                  START_S - 3, datetime.timezone.utc)}})["DASHStreamingSessionURL"]
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    first = ET.fromstring(urllib.request.urlopen(url).read())
    assert first.get("type") == "dynamic" and first.get("minimumUpdatePeriod"), ET.tostring(first)
    assert [p.get("id") for p in first.findall("d:Period", ns)] == ["waiting"]
    assert first.find(".//d:S", ns) is None
    deadline = time.monotonic() + 20
    while True:
        mpd = ET.fromstring(urllib.request.urlopen(url).read())
        segments = mpd.findall(".//d:SegmentTimeline/d:S", ns)
        if segments:
            break
        assert time.monotonic() < deadline, "the replay did not reach the first fragment"
        time.sleep(0.2)
    assert mpd.get("availabilityStartTime") == first.get("availabilityStartTime")
    period = mpd.find("d:Period", ns)
    template = period.find(".//d:SegmentTemplate", ns)
    # The first segment is available: availabilityStartTime + Period start
    # + (t - presentationTimeOffset) + d, within 2 s of the server's time.
    parse = lambda t: datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    start = float(period.get("start").removeprefix("PT").removesuffix("S"))
    s0 = segments[0]
    available = (parse(mpd.get("availabilityStartTime")) + start
                 + (int(s0.get("t")) - int(template.get("presentationTimeOffset")) + int(s0.get("d"))) / 1000)
    assert available <= parse(mpd.find("d:UTCTiming", ns).get("value")) + 2


def test_an_eleventh_session_revokes_the_oldest(env, av):
    http, kvs, _, archived = env
    name = fresh(kvs)
    put_all(http, name, av)
    urls = [archived.get_hls_streaming_session_url(StreamName=name)["HLSStreamingSessionURL"]
            for _ in range(11)]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urls[0])
    assert e.value.code == 403
    for u in urls[1:]:
        assert urllib.request.urlopen(u).status == 200
    # A deleted stream's sessions end with it.
    kvs.delete_stream(StreamARN=kvs.describe_stream(StreamName=name)["StreamInfo"]["StreamARN"])
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urls[-1])
    assert e.value.code == 403


def test_a_disconnect_mid_fragment_stores_nothing_of_it(env, av):
    http, kvs, media, archived = env
    name = fresh(kvs)
    clusters_at = [i for i in range(len(av)) if av.startswith(b"\x1f\x43\xb6\x75", i)]
    # Two whole fragments (the third cluster's start ends the second), then
    # half of the third, then the connection goes.
    cut = (clusters_at[2] + clusters_at[3]) // 2
    p = PutMedia(http, name)
    try:
        p.send(av[:cut])
        assert p.wait_for(lambda a: len(of_type(a, "PERSISTED")) == 2)
    finally:
        p.close()
    persisted = numbers(p.acks, "PERSISTED")
    # A new upload goes on; the half fragment is nowhere. (The server
    # notices the disconnect at its next wake-up, within its 3 s IDLE tick:
    # until then the half fragment's number holds listings back.)
    _, acks = put_all(http, name, av, start_s=START_S + 100)
    assert len(of_type(acks, "PERSISTED")) == 4
    want = persisted + numbers(acks, "PERSISTED")
    deadline = time.monotonic() + 10
    while True:
        listed = [f["FragmentNumber"]
                  for f in archived.list_fragments(StreamName=name)["Fragments"]]
        if listed == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert listed == want
    r = Reader(media, StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
    assert r.until(lambda d: len(chunk_tags(d)) == 6)
    r.close()
    assert [b for _, b in clusters(r.data)] == \
        [b for _, b in clusters(av)][:2] + [b for _, b in clusters(av)]


def test_aws_kinesisvideo_metrics_count_uploads_reads_and_clips(env, av):
    """AWS/KinesisVideo at GET /metrics (label stream): PutMedia's requests,
    fragments, frames and bytes, its PERSISTED latency, GetMedia's chunks and
    bytes, GetClip's requests and bytes, counted for the stream they name."""
    from prometheus_client.parser import text_string_to_metric_families
    http, kvs, media, archived = env
    name = fresh(kvs)
    status, acks = put_all(http, name, av)
    assert status == 200
    persisted = len(of_type(acks, "PERSISTED"))
    sent = clusters(av)
    reader = Reader(media, StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
    assert reader.until(lambda d: len(chunk_tags(d)) == persisted)
    reader.close()
    clip = archived.get_clip(StreamName=name, ClipFragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP", "TimestampRange": whole_range()})
    clip_bytes = len(clip["Payload"].read())

    def metrics():
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.labels.get("stream") == name and "le" not in s.labels:
                    out[s.name] = s.value
        return out

    m = metrics()
    p = "riffle_kinesisvideo_"
    assert m[p + "put_media_requests_total"] == 1
    assert m[p + "put_media_incoming_fragments_total"] == len(sent)
    assert m[p + "put_media_incoming_frames_total"] == sum(len(b) for _, b in sent)
    assert m[p + "put_media_incoming_bytes_total"] >= sum(sum(map(len, b)) for _, b in sent)
    assert m[p + "put_media_error_ack_count_total"] == 0
    assert m[p + "put_media_persisted_ack_latency_seconds_count"] == persisted
    assert m[p + "put_media_active_connections"] == 0
    assert m[p + "get_media_requests_total"] == 1
    assert m[p + "get_media_outgoing_fragments_total"] == persisted
    assert m[p + "get_media_outgoing_bytes_total"] >= sum(sum(map(len, b)) for _, b in sent)
    assert m[p + "get_clip_requests_total"] == 1
    assert m[p + "get_clip_outgoing_bytes_total"] == clip_bytes

    # The same through CloudWatch's API (namespace AWS/KinesisVideo).
    cw = boto3.client("cloudwatch", endpoint_url=f"http://{http}", region_name="us-east-1",
                      aws_access_key_id="AKID", aws_secret_access_key="secret")
    now = datetime.datetime.now(datetime.timezone.utc)

    def summed(metric, statistic="Sum"):
        out = cw.get_metric_statistics(
            Namespace="AWS/KinesisVideo", MetricName=metric,
            Dimensions=[{"Name": "StreamName", "Value": name}],
            StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=2),
            Period=60, Statistics=[statistic])
        return sum(d[statistic] for d in out["Datapoints"])
    assert summed("PutMedia.Requests") == 1
    assert summed("PutMedia.IncomingFragments") == len(sent)
    assert summed("PutMedia.IncomingFrames") == sum(len(b) for _, b in sent)
    assert summed("PutMedia.PersistedAckLatency", "SampleCount") == persisted
    assert summed("GetMedia.OutgoingFragments") == persisted
    assert summed("GetClip.OutgoingBytes") == clip_bytes
