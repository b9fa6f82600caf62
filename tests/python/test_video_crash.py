"""Kill -9 during several PutMedia uploads: after the restart every fragment
that was acknowledged PERSISTED is listed and served, its frames byte for byte
those the producer sent, and nothing half-written is listed or served."""

import os
import signal
import threading
import time
import uuid

from conftest import plain_keyring, start_on, start_server, stop_server
from video_env import PutMedia, chunk_tags, clients, clusters, make_mkv, of_type

UPLOADS = 3
SECONDS = 8


def test_kill_during_uploads_keeps_every_persisted_fragment():
    # With a keyring: the fragments are encrypted on disk, as on AWS.
    keyring = plain_keyring()
    proc, http, data = start_server("--kms-keyring", keyring)
    try:
        kvs, media, archived = clients(f"http://{http}")
        source = make_mkv(seconds=SECONDS, extra=["-b:v", "1M"])
        sent = clusters(source)
        # ffmpeg also cuts clusters by size: more than one a second here.
        assert len(sent) >= SECONDS
        names = [f"crash-{uuid.uuid4().hex[:8]}" for _ in range(UPLOADS)]
        for n in names:
            kvs.create_stream(StreamName=n, DataRetentionInHours=1)
        uploads = [PutMedia(http, n) for n in names]
        # Each upload sends its first half, then the rest in small pieces
        # from a thread, so the kill lands while fragments are on the way.
        half = len(source) // 2
        for u in uploads:
            u.send(source[:half])
        for u in uploads:
            assert u.wait_for(lambda a: len(of_type(a, "PERSISTED")) >= 2)
        go_on = [threading.Thread(target=_send_rest, args=(u, source[half:]), daemon=True)
                 for u in uploads]
        for t in go_on:
            t.start()
        # Once one more fragment of the first upload is durable, kill.
        before = len(of_type(uploads[0].acks, "PERSISTED"))
        assert uploads[0].wait_for(lambda a: len(of_type(a, "PERSISTED")) > before)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for u in uploads:
            u.closed.wait(10)
            u.close()
        persisted = [[a["FragmentNumber"] for a in of_type(u.acks, "PERSISTED")] for u in uploads]
        # The kill came mid-upload: some fragments were not acknowledged.
        assert sum(len(p) for p in persisted) < UPLOADS * len(sent), persisted

        proc, http = start_on(data, "--kms-keyring", keyring)
        kvs, media, archived = clients(f"http://{http}")
        for name, numbers in zip(names, persisted):
            listed = [f["FragmentNumber"] for f in archived.list_fragments(StreamName=name)["Fragments"]]
            # Every PERSISTED one is there; a fragment stored but not yet
            # acknowledged may be there too (it was durable), nothing else.
            assert set(numbers) <= set(listed), (name, numbers, listed)
            got = archived.get_media_for_fragment_list(StreamName=name, Fragments=listed)
            chunks = got["Payload"].read()
            assert [c["AWS_KINESISVIDEO_FRAGMENT_NUMBER"] for c in chunk_tags(chunks)] == listed
            served = clusters(chunks)
            assert len(served) == len(listed)
            # The i-th fragment stored is the producer's i-th cluster, whole:
            # the same frames, byte for byte.
            for i, (_, blocks) in enumerate(served):
                assert blocks == sent[i][1], (name, i)
    finally:
        stop_server(proc, data)


def _send_rest(upload, rest, piece=4096):
    """The rest of an upload at a camera's pace (a piece every 2 ms)."""
    try:
        for i in range(0, len(rest), piece):
            upload.send(rest[i:i + piece])
            time.sleep(0.002)
        upload.end()
    except OSError:
        pass  # the server died under it
