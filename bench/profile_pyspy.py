"""Sample a server process with py-spy during a benchmark and summarise where its CPU time goes."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import RESULTS

CANDIDATES = (os.environ.get("PYSPY", ""), shutil.which("py-spy") or "", "/tmp/pyspy/bin/py-spy")


def binary() -> str | None:
    """py-spy from $PYSPY, PATH or /tmp/pyspy (`pip install --target /tmp/pyspy py-spy`)."""
    return next((c for c in CANDIDATES if c and Path(c).is_file()), None)


def start(pid: int, seconds: float, name: str) -> tuple[subprocess.Popen[bytes], Path] | None:
    """Start sampling `pid` (active threads only, GIL holders only) for `seconds`."""
    exe = binary()
    if exe is None:
        print("py-spy not found; no profile", file=sys.stderr)
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"{name}.pyspy.txt"
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(int(max(1, seconds))),
           "--format", "raw", "--nolineno", "--gil", "--rate", "200", "--output", str(raw)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), raw


def finish(handle: tuple[subprocess.Popen[bytes], Path] | None, top: int = 15) -> dict[str, Any]:
    """Wait for py-spy; return the functions with the most inclusive and self GIL time."""
    if handle is None:
        return {}
    proc, raw = handle
    proc.wait(timeout=120)
    if not raw.is_file():
        return {"error": "py-spy wrote nothing (ptrace not permitted?)"}
    summary = summarise(raw.read_text(), top)
    seconds = float(proc.args[proc.args.index("--duration") + 1])  # type: ignore[union-attr]
    summary["gil_held_pct"] = round(100 * summary.get("samples", 0) / (200 * seconds), 1)
    raw.unlink()  # the collapsed stacks are large; the summary goes into the results JSON
    return summary


def summarise(text: str, top: int = 15) -> dict[str, Any]:
    """Inclusive and self share of samples per function, from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        total += n
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    if not total:
        return {"samples": 0}
    pct = lambda c: [[f, round(100 * n / total, 1)] for f, n in c.most_common(top)]  # noqa: E731
    return {"samples": total, "inclusive_pct": pct(inclusive), "self_pct": pct(own)}


def _short(frame: str) -> str:
    """'apply_events (interest_server/user_store.py)' -> 'user_store.apply_events'."""
    name, _, where = frame.partition(" (")
    module = Path(where.rstrip(")").split(":")[0]).stem
    return f"{module}.{name}" if module else name


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1]).read_text()))
