"""The TypeScript (Node) client in client/typescript against a live server.

The Node scenario (client/typescript/examples/scenario.ts) ingests events (unary and streamed),
encodes "I love mystery films, I hate romance", asks for recommendations and prints one JSON
object; the assertions below are on that JSON. `npm ci` runs first when node_modules is missing
(CI should run it in .ci/run: `cd client/typescript && npm ci --ignore-scripts`); the test skips
when node/npm are absent or the npm registry cannot be reached.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from interest.v1 import interest_pb2 as pb
from interest_server.api.app import RunningServer

from .conftest import GENRES

TS_DIR = Path(__file__).resolve().parents[2] / "client" / "typescript"
# npm's codes for "the registry cannot be reached" (DNS, refused, reset, timeouts, proxy).
OFFLINE = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|"
                     r"EHOSTUNREACH|ERR_SOCKET_TIMEOUT|network request .* failed")
NODE_MIN_MAJOR = 18


def _run(cmd: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    return subprocess.run(cmd, cwd=TS_DIR, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def _installed() -> bool:
    # npm ci writes node_modules/.package-lock.json; older than the lockfile means stale.
    marker = TS_DIR / "node_modules" / ".package-lock.json"
    lock = TS_DIR / "package-lock.json"
    return marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime


@pytest.fixture(scope="session")
def ts_client() -> Path:
    """client/typescript installed (npm ci if needed) and built (proto types + tsc)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not on PATH: the TypeScript client test needs Node.js >= 18 and npm")
    version = _run([node, "--version"], 30).stdout.strip()
    major = re.match(r"v(\d+)", version)
    if major is None or int(major.group(1)) < NODE_MIN_MAJOR:
        pytest.skip(f"node {version or '?'} is older than {NODE_MIN_MAJOR}")
    if not _installed():
        # --ignore-scripts: no dependency needs an install script (protobufjs' only checks
        # versions), and none may download anything outside the registry.
        ci = _run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], 600)
        if ci.returncode != 0:
            output = ci.stdout + ci.stderr
            offline = [line for line in output.splitlines() if OFFLINE.search(line)]
            if offline:
                pytest.skip("npm registry unreachable, cannot install the TypeScript client: "
                            + offline[0].strip())
            pytest.fail(f"npm ci failed ({ci.returncode}):\n{output[-4000:]}")
    build = _run([npm, "run", "build"], 300)
    assert build.returncode == 0, \
        f"npm run build failed:\n{build.stdout[-4000:]}{build.stderr[-4000:]}"
    return TS_DIR


def test_node_unit_tests(ts_client: Path) -> None:
    """The client's own tests (node:test): retries, backoff, deadlines, stream resume."""
    result = _run(["node", "--test", "--test-reporter=tap", "dist/test/"], 120)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-4000:]
    assert re.search(r"^# fail 0$", result.stdout, re.M), result.stdout[-4000:]


def test_typescript_client_against_live_server(
    ts_client: Path, server: RunningServer, catalog: list[pb.Item]
) -> None:
    # ts_client comes first, so a machine without Node skips before the model loads.
    result = _run(["node", "dist/examples/scenario.js", "--target", server.target], 90)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])

    assert out["health"] == "SERVING"
    assert out["upsert"]["upserted"] == 1 and out["upsert"]["catalogSize"] == len(GENRES) + 1

    # Every event acknowledged APPLIED, one ack per event in input order; resending the same
    # event ids is DUPLICATE.
    assert [a["status"] for a in out["ingest"]["acks"]] == ["ACK_STATUS_APPLIED"] * 2
    assert out["ingest"]["acks"][-1]["userVersion"] >= 1
    stream = out["stream"]
    assert [a["eventId"] for a in stream] == [f"ev-{i}" for i in range(7)]
    assert {a["status"] for a in stream} == {"ACK_STATUS_APPLIED"}
    assert [a["eventId"] for a in out["streamReplay"]] == [a["eventId"] for a in stream]
    assert {a["status"] for a in out["streamReplay"]} == {"ACK_STATUS_DUPLICATE"}

    concepts = {(c["phrase"], c["polarity"], link) for c in out["encode"]["concepts"]
                for link in c["links"]}
    assert any("mystery" in phrase and polarity == "POLARITY_POSITIVE" and link == "genre=Mystery"
               for phrase, polarity, link in concepts), concepts
    assert any("romance" in phrase and polarity == "POLARITY_NEGATIVE" and link == "genre=Romance"
               for phrase, polarity, link in concepts), concepts

    rec = out["recommend"]
    items = rec["items"]
    got = [i["itemId"] for i in items]
    assert rec["strategy"] == "behaviour+concepts" and len(items) == 8, rec
    # The genres the server returned are the catalog's.
    assert all(set(i["genres"]) == GENRES[i["itemId"]] for i in items), items
    # No Romance item at all; every Romance item was removed by the stated dislike.
    assert not any("Romance" in GENRES[i] for i in got), got
    assert rec["removedByDislikes"] == sum("Romance" in g for g in GENRES.values())
    # Mystery items first: at least 6 of the 8, and none after a non-Mystery item.
    mystery = ["Mystery" in GENRES[i] for i in got]
    assert sum(mystery) >= 6, got
    assert mystery == sorted(mystery, reverse=True), got
    assert "mystery" in items[0]["reason"], items[0]
    # The liked films are consumed, so not recommended again.
    assert not {"13", "16"} & set(got)

    assert out["state"]["version"] == rec["userVersion"] >= 1
    assert out["deleteUser"]["keysDeleted"] > 0 and out["deleteUser"]["versionAfter"] == 0
    # A bad request is INVALID_ARGUMENT after one attempt (only UNAVAILABLE is retried).
    assert out["invalidRequest"]["code"] == "INVALID_ARGUMENT"
    assert out["invalidRequest"]["attempts"] == 1
