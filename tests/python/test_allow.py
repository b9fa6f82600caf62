"""Address allow-lists of the listeners (`--allow`, `--http-allow`,
`--native-allow`): a connection from outside its listener's list is closed
before a byte is read, on the HTTP port (even /health) and on the native port;
one from inside is served; a list that is not one refuses to start the
server, naming the offending item."""

import http.client
import subprocess

from conftest import BINARY, server_env, start_server_native, stop_server


def http_status(address):
    """GET /health's status, or None when the connection is closed first."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status
    except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
        return None
    finally:
        conn.close()


def native_ok(native):
    out = subprocess.run([BINARY, "--server", native, "stream", "list"], capture_output=True,
                         text=True, timeout=60, env=server_env())
    return out.returncode == 0, out.stderr


def test_a_listener_takes_only_the_addresses_its_list_allows():
    # Loopback (127.0.0.1) is outside 10.0.0.0/8: both ports refuse it.
    proc, native, http, data = start_server_native("--allow", "10.0.0.0/8")
    try:
        assert http_status(http) is None
        ok, err = native_ok(native)
        assert not ok, "the native port served a connection from outside --allow"
    finally:
        stop_server(proc, data)
    # Inside the list: served.
    proc, native, http, data = start_server_native("--allow", "10.0.0.0/8, 127.0.0.0/8, ::1")
    try:
        assert http_status(http) == 200
        ok, err = native_ok(native)
        assert ok, err
    finally:
        stop_server(proc, data)
    # Each listener's own list instead of --allow.
    proc, native, http, data = start_server_native(
        "--allow", "10.0.0.0/8", "--http-allow", "127.0.0.1")
    try:
        assert http_status(http) == 200
        assert not native_ok(native)[0]
    finally:
        stop_server(proc, data)
    proc, native, http, data = start_server_native(
        "--http-allow", "192.0.2.0/24", "--native-allow", "127.0.0.1/32")
    try:
        assert http_status(http) is None
        ok, err = native_ok(native)
        assert ok, err
    finally:
        stop_server(proc, data)


def test_a_list_that_is_not_one_stops_the_server(tmp_path):
    for flag, value, named in [("--allow", "10.0.0.0/8,10.0.0.0/33", "10.0.0.0/33"),
                               ("--native-allow", "localhost", "localhost"),
                               ("--http-allow", " , ", "names no range")]:
        out = subprocess.run([BINARY, "server", "--data-dir", str(tmp_path / "d"), "--listen",
                              "127.0.0.1:0", "--http", "127.0.0.1:0", flag, value],
                             capture_output=True, text=True, timeout=60, env=server_env())
        assert out.returncode != 0, (flag, value)
        assert named in out.stderr and flag.lstrip("-") in out.stderr, out.stderr
