"""Run every benchmark one after another at a chosen scale (quick, default or full)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCALES: dict[str, dict[str, list[str]]] = {
    "quick": {
        "ingest": ["--duration", "3", "--redis-n", "20000"],
        "freshness": ["--trials", "50", "--push-trials", "50", "--items", "2000"],
        "recommend": ["--sizes", "10000", "--requests", "50", "--tput-s", "2"],
        "encode": ["--texts", "300", "--rounds", "1", "--single", "10", "--calls", "20"],
        "memory": ["--users", "100", "--items", "20000"],
        "recommend_movielens": ["--users", "5", "--requests", "30"],
    },
    "default": {"ingest": ["--profile", "4"], "freshness": [], "recommend": ["--profile"],
                "encode": [], "memory": [], "recommend_movielens": []},
    "full": {
        "ingest": ["--duration", "60", "--profile", "10"],
        "freshness": ["--trials", "1000"],
        "recommend": ["--full", "--requests", "500", "--profile"],
        "encode": ["--rounds", "3", "--calls", "300"],
        "memory": ["--full"],
        "recommend_movielens": ["--users", "100", "--requests", "1000"],
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--only", default="", help="comma-separated subset, e.g. ingest,memory")
    args = parser.parse_args()
    chosen = [n for n in SCALES[args.scale] if not args.only or n in args.only.split(",")]
    failed = []
    for name in chosen:
        cmd = [sys.executable, str(BENCH / f"{name}.py"), *SCALES[args.scale][name]]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        if subprocess.run(cmd, cwd=BENCH).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
