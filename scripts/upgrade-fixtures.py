#!/usr/bin/env python3
"""Records the upgrade fixtures: each provider's state after one poll, by a given release.

    python3 scripts/upgrade-fixtures.py path/to/old/connectors

serves the recorded responses of crates/connectors/tests/fixtures/upgrade/manifest.json
on a loopback port, runs `connectors poll NAME` of that binary once per connector, first
with `STATE_DIR` (embedded mode), then against the Redis at REDIS_URL (default
redis://127.0.0.1:6379) under a key prefix of its own, and writes what it left:
`state/NAME.state.json` (the state file, as is) and `redis/NAME.json` (the state hash,
field by field; the prefix's keys are deleted afterwards). `tests/upgrade.rs` then polls
that state with the build under test against the same responses and expects nothing
published. Run it with a release from before a change to identity-bearing code.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

HERE = Path(__file__).resolve().parent.parent / "crates/connectors/tests/fixtures/upgrade"


def route_for(routes, path, query):
    """The first route whose path and query conditions the request meets."""
    for route in routes:
        wanted = route.get("query", {})
        if route["path"] == path and all(query.get(k) == v for k, v in wanted.items()):
            return route
    return None


def serve(routes):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            url = urlsplit(self.path)
            route = route_for(routes, url.path, dict(parse_qsl(url.query)))
            if route is None:
                self.send_response(404)
                self.end_headers()
                return
            if "file" in route:
                body = (HERE / "responses" / route["file"]).read_bytes()
            else:
                body = json.dumps(route["body"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", route.get("type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def redis_cli(url, *args):
    out = subprocess.run(["redis-cli", "-u", url, "--raw", *args], check=True,
                         capture_output=True, text=True)
    return out.stdout


def main():
    binary = Path(sys.argv[1]).resolve()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    manifest = json.loads((HERE / "manifest.json").read_text())
    server = serve(manifest["routes"])
    mock = f"http://127.0.0.1:{server.server_port}"
    work = Path(tempfile.mkdtemp(prefix="upgrade-fixtures-"))
    config = json.dumps({"connectors": manifest["connectors"]}).replace("${MOCK}", mock)
    (work / "connectors.json").write_text(config)
    prefix = f"upgrade-gen-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "REDIS_KEY_PREFIX", "STATE_DIR", "CONNECTOR_NAME")}
    env.update({"CONNECTORS_CONFIG_PATH": str(work / "connectors.json"), "HTTP_PORT": "off",
                "RUST_LOG": "warn"})
    for out in ("state", "redis"):
        (HERE / out).mkdir(exist_ok=True)
    for connector in manifest["connectors"]:
        name = connector["name"]
        embedded = dict(env, STATE_DIR=str(work / "state"))
        done = subprocess.run([str(binary), "poll", name], env=embedded, capture_output=True,
                              text=True)
        if done.returncode != 0:
            sys.exit(f"{name} (state dir): {done.stderr}")
        shutil.copy(work / "state" / f"{name}.state.json", HERE / "state" / f"{name}.state.json")
        shared = dict(env, REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
        done = subprocess.run([str(binary), "poll", name], env=shared, capture_output=True,
                              text=True)
        if done.returncode != 0:
            sys.exit(f"{name} (Redis): {done.stderr}")
        key = f"{prefix}:connector:state:{{{name}}}"
        lines = redis_cli(redis_url, "HGETALL", key).split("\n")[:-1]
        fields = dict(zip(lines[0::2], lines[1::2]))
        (HERE / "redis" / f"{name}.json").write_text(json.dumps(fields, indent=1, sort_keys=True) + "\n")
        print(f"{name}: {len(fields)} state fields", file=sys.stderr)
    for key in redis_cli(redis_url, "--scan", "--pattern", f"{prefix}:*").split():
        redis_cli(redis_url, "DEL", key)
    server.shutdown()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
