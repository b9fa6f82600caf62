"""The native protocol's identity: on a server that checks signatures
(`--auth sigv4`), a native connection authenticates with an access key (a
challenge and an HMAC proof of the secret: no secret on the wire) and every
request is decided by the key's user's IAM policies, as the HTTP API's calls
are. The `riffle` CLI takes credentials as AWS's tools do: options, the
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables, or AWS_PROFILE's section of
a credentials file."""

import json
import os
import subprocess
import tempfile

from conftest import BINARY, ROOT, server_env, start_server_native, stop_server

ACCOUNT = "000000000000"
KEYS = {"AKIDADMIN": "admin", "AKIDREADER": "reader"}


def arn(name):
    return f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}"


def write_config(dirname):
    policies = {"Users": {
        "admin": {"Policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]},
        "reader": {"Policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kinesis:Get*", "kinesis:List*", "kinesis:Describe*"],
             "Resource": arn("orders")}]}]},
    }}
    iam = os.path.join(dirname, "iam.json")
    with open(iam, "w") as f:
        json.dump(policies, f)
    keys = ", ".join(f'{{ id = "{k}", secret = "{k}-secret", user = "{u}" }}'
                     for k, u in KEYS.items())
    conf = os.path.join(dirname, "riffle.toml")
    with open(conf, "w") as f:
        f.write(f"access_keys = [{keys}]\niam_policies = \"{iam}\"\n")
    return conf


def cli(native, *args, env=None, stdin=None):
    base = {k: v for k, v in server_env().items() if not k.startswith("AWS_")}
    base["HOME"] = tempfile.mkdtemp(prefix="home-", dir=os.path.join(ROOT, "target", "tmp"))
    base.update(env or {})
    return subprocess.run([BINARY, "--server", native, *args], capture_output=True, text=True,
                          timeout=60, env=base, input=stdin)


def test_native_calls_are_authenticated_and_decided_by_policies():
    conf_dir = tempfile.mkdtemp(prefix="nauth-", dir=os.path.join(ROOT, "target", "tmp"))
    proc, native, http, data = start_server_native("--config", write_config(conf_dir),
                                                   "--auth", "sigv4")
    try:
        admin = ["--access-key-id", "AKIDADMIN", "--secret-access-key", "AKIDADMIN-secret"]
        # No credentials: refused, saying why.
        out = cli(native, "stream", "list")
        assert out.returncode != 0
        assert "AccessDeniedException" in out.stderr and "not authenticated" in out.stderr, \
            out.stderr
        # A wrong secret: refused when connecting.
        out = cli(native, "--access-key-id", "AKIDADMIN", "--secret-access-key", "wrong",
                  "stream", "list")
        assert out.returncode != 0 and "proof does not match" in out.stderr, out.stderr
        # An unknown key.
        out = cli(native, "--access-key-id", "AKIDNOBODY", "--secret-access-key", "x",
                  "stream", "list")
        assert out.returncode != 0 and "AKIDNOBODY" in out.stderr, out.stderr
        # The admin may do everything.
        for stream in ("orders", "other"):
            out = cli(native, *admin, "stream", "create", stream)
            assert out.returncode == 0, out.stderr
        out = cli(native, *admin, "put", "orders", "--partition-key", "k", "hello")
        assert out.returncode == 0, out.stderr

        # The reader, from AWS's environment variables: reads orders...
        reader_env = {"AWS_ACCESS_KEY_ID": "AKIDREADER",
                      "AWS_SECRET_ACCESS_KEY": "AKIDREADER-secret"}
        out = cli(native, "--json", "get", "orders", "--shard", "0", env=reader_env)
        assert out.returncode == 0, out.stderr
        assert [json.loads(l)["data"] for l in out.stdout.splitlines()] == ["aGVsbG8="]
        # ...may not write to it, nor read another stream: AWS's words.
        out = cli(native, "put", "orders", "--partition-key", "k", "no", env=reader_env)
        assert out.returncode != 0
        assert (f"User: arn:aws:iam::{ACCOUNT}:user/reader is not authorized to perform: "
                f"kinesis:PutRecord on resource: {arn('orders')}") in out.stderr, out.stderr
        out = cli(native, "get", "other", "--shard", "0", env=reader_env)
        assert out.returncode != 0 and "kinesis:GetShardIterator" in out.stderr, out.stderr

        # The same reader from a profile of a credentials file.
        creds = os.path.join(conf_dir, "credentials")
        with open(creds, "w") as f:
            f.write("[default]\naws_access_key_id = AKIDADMIN\n"
                    "aws_secret_access_key = wrong\n\n"
                    "[reader]\naws_access_key_id = AKIDREADER\n"
                    "aws_secret_access_key = AKIDREADER-secret\n")
        out = cli(native, "--json", "get", "orders", "--shard", "0",
                  env={"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_PROFILE": "reader"})
        assert out.returncode == 0, out.stderr
        out = cli(native, "stream", "delete", "orders",
                  env={"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_PROFILE": "reader"})
        assert out.returncode != 0 and "kinesis:DeleteStream" in out.stderr, out.stderr
    finally:
        stop_server(proc, data)


def test_a_server_without_signatures_takes_authenticated_and_plain_connections():
    proc, native, http, data = start_server_native()
    try:
        out = cli(native, "--access-key-id", "AKIDANY", "--secret-access-key", "any",
                  "stream", "create", "open")
        assert out.returncode == 0, out.stderr
        out = cli(native, "stream", "list")
        assert out.returncode == 0 and "open" in out.stdout, out.stderr
    finally:
        stop_server(proc, data)
