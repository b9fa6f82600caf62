"""Live DASH in a browser: dash.js (tests/js/node_modules) in Debian's
headless Chromium (driven by Playwright) plays a LIVE session while a
camera uploads, following the manifest as its window slides (ffmpeg 5.1's
DASH reader does not)."""

import os
import shutil
import time

import pytest

from conftest import ROOT
from test_video_limits import Camera, archived_for, env, fresh  # noqa: F401 (env: a fixture)
from video_env import make_mkv, of_type

DASHJS = os.path.join(ROOT, "tests", "js", "node_modules", "dashjs", "dist", "modern", "umd",
                      "dash.all.min.js")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing (tools/test.sh installs Debian's chromium)")
    if not os.path.exists(DASHJS):
        pytest.fail(f"{DASHJS} is missing (tools/test.sh runs npm ci in tests/js)")
    with sync_playwright() as p:
        # The page is not of the server's origin: the test lets it read the
        # server's answers anyway.
        b = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-web-security", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


def test_dashjs_follows_a_live_session(env, browser):  # noqa: F811
    http, kvs, _, _ = env
    name = fresh(kvs)
    cam = Camera(http, name, make_mkv(seconds=90, audio=False, extra=["-s", "320x180"]),
                 start_s=time.time())
    page = browser.new_page()
    try:
        assert cam.put.wait_for(lambda a: len(of_type(a, "PERSISTED")) >= 4)
        url = archived_for(kvs, name, "GET_DASH_STREAMING_SESSION_URL").get_dash_streaming_session_url(
            StreamName=name, PlaybackMode="LIVE")["DASHStreamingSessionURL"]
        manifests = []
        page.on("request", lambda r: manifests.append(r.url) if "getDASHManifest" in r.url else None)
        console_errors = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.set_content("<video id='v' muted autoplay></video>")
        page.add_script_tag(path=DASHJS)
        page.evaluate("""url => {
            window.errors = [];
            window.seeks = 0;
            const player = dashjs.MediaPlayer().create();
            player.on(dashjs.MediaPlayer.events.ERROR, e => window.errors.push(JSON.stringify(e.error || e)));
            const v = document.getElementById('v');
            player.initialize(v, url, true);
            window.player = player;
        }""", url)
        # Playing from the live edge on, well past the first window (5
        # fragments of 1 s): the player follows the manifest as it slides.
        page.wait_for_function("() => document.getElementById('v').currentTime > 0", timeout=30_000)
        started, frames_before = page.evaluate("""() => {
            const v = document.getElementById('v');
            // dash.js jumps a gap (or a stall) by seeking: none after the start.
            v.addEventListener('seeking', () => window.seeks++);
            return [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames];
        }""")
        page.wait_for_function(
            f"() => document.getElementById('v').currentTime > {started} + 12", timeout=40_000)
        state = page.evaluate("""() => {
            const v = document.getElementById('v');
            const q = v.getVideoPlaybackQuality();
            return {errors: window.errors, seeks: window.seeks,
                    dropped: q.droppedVideoFrames, frames: q.totalVideoFrames, played: v.currentTime,
                    live: window.player.isDynamic(), width: v.videoWidth, height: v.videoHeight};
        }""")
        assert state["errors"] == [], state
        assert state["live"] and (state["width"], state["height"]) == (320, 180)
        # No gap jumped, no seek, no frame dropped: 25 frames a second of
        # what was played since, each decoded.
        assert (state["seeks"], state["dropped"]) == (0, 0), state
        played = state["played"] - started
        assert state["frames"] - frames_before >= round(played * 25) - 2, state
        # The manifest was reloaded all along (once a second).
        assert len(manifests) >= 8, len(manifests)
        assert not [e for e in console_errors if "dash" in e.lower()], console_errors
    finally:
        page.close()
        acks = cam.stop_quietly()
    assert acks is not None and not of_type(acks, "ERROR")
