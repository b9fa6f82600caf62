"""TLS on the native port (`--native-tls-cert/--native-tls-key`) and mutual TLS
on both ports (`--tls-client-ca`): the `riffle` CLI connects over TLS trusting
the server's certificate (`--tls-ca`) and, when the server asks, presents a
client certificate its CA signed (`--tls-cert/--tls-key`); a client without
one, or one that does not speak TLS, is refused. Certificates: `riffle cert`
for the server, openssl for a CA and a client certificate."""

import base64
import os
import socket
import ssl
import subprocess
import tempfile

from conftest import BINARY, ROOT, server_env, start_server_native, stop_server


def certs():
    d = tempfile.mkdtemp(prefix="ntls-", dir=os.path.join(ROOT, "target", "tmp"))
    out = subprocess.run([BINARY, "cert", "--out", d], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # A CA and a client certificate it signed.
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=riffle test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
        "-subj", "/CN=client")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "client.pem", "-days", "2", "-extfile", "client.ext")
    return {n: os.path.join(d, f) for n, f in [
        ("cert", "cert.pem"), ("key", "key.pem"), ("ca", "ca.pem"),
        ("client", "client.pem"), ("client_key", "client.key")]}


def cli(native, *args):
    return subprocess.run([BINARY, "--server", native, *args], capture_output=True, text=True,
                          timeout=60, env=server_env())


def test_the_native_port_over_tls():
    c = certs()
    proc, native, http, data = start_server_native("--native-tls-cert", c["cert"],
                                                   "--native-tls-key", c["key"])
    try:
        tls = ["--tls-ca", c["cert"]]
        out = cli(native, *tls, "stream", "create", "over-tls", "--shards", "2")
        assert out.returncode == 0, out.stderr
        out = cli(native, *tls, "put", "over-tls", "--partition-key", "k", "sealed in transit")
        assert out.returncode == 0, out.stderr
        out = cli(native, *tls, "--json", "get", "over-tls", "--shard", "0")
        out2 = cli(native, *tls, "--json", "get", "over-tls", "--shard", "1")
        assert out.returncode == 0 and out2.returncode == 0, out.stderr + out2.stderr
        assert "c2VhbGVkIGluIHRyYW5zaXQ=" in out.stdout + out2.stdout
        # A record far larger than a TLS record (and rustls's default buffer).
        big = "z" * 300_000
        out = subprocess.run([BINARY, "--server", native, *tls, "put", "over-tls",
                              "--partition-key", "big"], input=big + "\n", capture_output=True,
                             text=True, timeout=60, env=server_env())
        assert out.returncode == 0, out.stderr
        got = cli(native, *tls, "--json", "get", "over-tls", "--shard", "0").stdout + \
            cli(native, *tls, "--json", "get", "over-tls", "--shard", "1").stdout
        assert base64.b64encode(big.encode()).decode() in got
        # A plain client gets no answer it can read; a client trusting another
        # certificate refuses the server's.
        assert cli(native, "stream", "list").returncode != 0
        out = cli(native, "--tls-ca", c["ca"], "stream", "list")
        assert out.returncode != 0 and "certificate" in out.stderr.lower(), out.stderr
    finally:
        stop_server(proc, data)


def test_mutual_tls_on_both_ports():
    c = certs()
    proc, native, http, data = start_server_native(
        "--native-tls-cert", c["cert"], "--native-tls-key", c["key"],
        "--tls-cert", c["cert"], "--tls-key", c["key"], "--tls-client-ca", c["ca"])
    try:
        tls = ["--tls-ca", c["cert"]]
        # Native: no client certificate, refused; the CA's client, served.
        assert cli(native, *tls, "stream", "list").returncode != 0
        out = cli(native, *tls, "--tls-cert", c["client"], "--tls-key", c["client_key"],
                  "stream", "create", "mutual")
        assert out.returncode == 0, out.stderr
        # HTTP: the same rule.
        port = int(http.rsplit(":", 1)[1])

        def health(with_cert):
            ctx = ssl.create_default_context(cafile=c["cert"])
            if with_cert:
                ctx.load_cert_chain(c["client"], c["client_key"])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
                                  b"Connection: close\r\n\r\n")
                        return s.recv(64).split(b" ")[1]
            except (ssl.SSLError, ConnectionError, IndexError):
                return None

        assert health(False) is None
        assert health(True) == b"200"
    finally:
        stop_server(proc, data)
