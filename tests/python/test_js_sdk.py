"""The AWS SDK for JavaScript v3 (tests/js/smoke.mjs) against the session's server."""

import os
import subprocess

JS = os.path.join(os.path.dirname(__file__), "..", "js")


def test_javascript_sdk_v3(server):
    assert os.path.isdir(os.path.join(JS, "node_modules")), "run `npm ci` in tests/js (tools/test.sh does)"
    out = subprocess.run(["node", "smoke.mjs"], cwd=JS, capture_output=True, text=True,
                         env=dict(os.environ, RIFFLE_ENDPOINT=server), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_javascript_sdk_v3_kinesis_analytics(server):
    """@aws-sdk/client-kinesis-analytics (tests/js/analytics.mjs): create with an
    input and code, describe, list, a refused and an accepted code update,
    delete."""
    out = subprocess.run(["node", "analytics.mjs"], cwd=JS, capture_output=True, text=True,
                         env=dict(os.environ, RIFFLE_ENDPOINT=server), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
