"""Shared benchmark helpers: stats, result files, private Redis, server subprocesses, catalogs."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import redis

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a benchmark never reaches for a model hub

from interest_client import InterestClient  # noqa: E402
from interest_server.config import Settings  # noqa: E402
from interest_server.model import conceptualizer  # noqa: E402
from interest_server.model.concepts import Polarity  # noqa: E402
from interest_server.model.encoder_weights import default_model_dir, model_id_for  # noqa: E402
from interest_server.ops.redis_launcher import EmbeddedRedis  # noqa: E402
from interest_server.recommend.item_index import CatalogItem  # noqa: E402
from interest_server.state.catalog import CatalogStore  # noqa: E402
from interest_server.state.keys import DEFAULT_KEYS  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DIM = 384
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western")
NO_PERSIST = {"appendonly": "no", "save": ""}
"""Redis settings for bulk catalogs whose durability the measurement does not need."""


def stats_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / mean / max in milliseconds of durations given in seconds."""
    a = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3), "max_ms": round(float(a.max()), 3)}


def machine() -> dict[str, Any]:
    """What the numbers were measured on, including the load other work put on it."""
    return {"date": dt.date.today().isoformat(), "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "platform": platform.platform()}


def write_result(name: str, payload: dict[str, Any], started: dict[str, Any]) -> Path:
    """bench/results/<name>.json with the machine state at start and at end."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {"benchmark": name, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "machine_start": started, "machine_end": machine(), **payload}
    path.write_text(json.dumps(body, indent=2, default=_plain) + "\n")
    shown = path.relative_to(BENCH.parent) if path.is_relative_to(BENCH.parent) else path
    print(f"\nwrote {shown}  (load average start "
          f"{started['loadavg']}, end {body['machine_end']['loadavg']})")
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for r in cells:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        return f"{c:,.0f}" if abs(c) >= 1000 else f"{c:.3g}"
    return f"{c:,}" if isinstance(c, int) else str(c)


@contextlib.contextmanager
def private_redis(persist: bool = True) -> Iterator[tuple[EmbeddedRedis, redis.Redis]]:
    """A fresh redis-server in a temporary directory (AOF everysec like the server's default,
    or no persistence for bulk catalogs), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="interest-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp), extra_config=None if persist else NO_PERSIST)
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            yield server, client
        finally:
            client.close()
            server.stop()


class ServerProcess:
    """`bench/serve.py` in a child process, so the server never shares a GIL with the client."""

    def __init__(self, kind: str, redis_url: str = "", *extra: str,
                 env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, str(BENCH / "serve.py"), kind, "--redis-url", redis_url, *extra]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"{kind} server failed to start: {line!r}")
        self.target = f"127.0.0.1:{int(line.split()[1])}"

    @property
    def pid(self) -> int:
        """Process id of the server."""
        return self.proc.pid

    def rss_bytes(self) -> int:
        """Resident set size of the server process."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def client(self, **kwargs: Any) -> InterestClient:
        """An InterestClient to this server."""
        return InterestClient(self.target, **kwargs)

    def stop(self) -> None:
        """Close the server's stdin (it then shuts down) and wait for it."""
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_model_id() -> str:
    """The id the server's default encoder stamps on item vectors (so it never re-embeds)."""
    return model_id_for(default_model_dir())


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """n random unit vectors, float32."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # chunked: 1M x 384 in float64 would be 3 GB
        block = rng.standard_normal((min(100_000, n - start), dim)).astype(np.float32)
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def synthetic_genres(i: int) -> tuple[str, ...]:
    """One to three genres per item, deterministic in the item number."""
    g = len(GENRES)
    picks = {GENRES[i % g], GENRES[(i * 7 + 3) % g], GENRES[(i * 13 + 5) % g]}
    return tuple(sorted(picks))[: 1 + i % 3]


def store_synthetic_catalog(client: redis.Redis, vectors: np.ndarray, model: str,
                            chunk: int = 1000) -> list[str]:
    """Write items s0..s{n-1} with the given vectors straight into Redis (no embedding)."""
    store = CatalogStore(client, stream_maxlen=100_000)
    ids = [f"s{i}" for i in range(len(vectors))]
    for start in range(0, len(ids), chunk):
        store.upsert([CatalogItem(ids[i], f"Item {i}. Genres: {', '.join(synthetic_genres(i))}",
                                  {"genre": synthetic_genres(i)}, vectors[i], model)
                      for i in range(start, min(start + chunk, len(ids)))])
    return ids


def thread_env(n: int) -> dict[str, str]:
    """Environment that pins a child's BLAS / OpenMP pools to n threads."""
    return {k: str(n) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def value_masks(n: int, values_of: Callable[[int], Iterable[str]]) -> Callable[[str], np.ndarray]:
    """mask(value): which of items 0..n-1 carry `value`, built once per value and kept."""
    masks: dict[str, np.ndarray] = {}

    def mask(value: str) -> np.ndarray:
        if value not in masks:
            masks[value] = np.fromiter((value in values_of(i) for i in range(n)), bool, n)
        return masks[value]
    return mask


def boosted_scores(client: InterestClient, rclient: redis.Redis, user: str,
                   vectors: np.ndarray, query: np.ndarray,
                   carriers: Callable[[str], np.ndarray]) -> np.ndarray:
    """The server's score for a user with stated liked concepts, over every item (ranking.py):
    q.x + W max_c w_c a_c(x), a_c = 1 on items carrying a value c is grounded on (`carriers`),
    else cos(c, x); concept vectors and weights as the server stored them in Redis, groundings
    as GetUserState reports them."""
    grounded = {c.phrase: {x.value for x in c.links}
                for c in client.get_user_state(user).concepts}
    per_concept = []
    for c in conceptualizer.loads(rclient.get(DEFAULT_KEYS.user(user).concepts)):
        if c.polarity != Polarity.POSITIVE:
            continue
        sims = vectors @ c.vector
        values = grounded.get(c.phrase, set())
        if values:
            sims = np.where(np.logical_or.reduce([carriers(v) for v in values]),
                            np.float32(1.0), sims)
        per_concept.append(c.weight * sims)
    return vectors @ query + Settings.concept_weight * np.max(per_concept, axis=0)


def store_catalog_rows(client: redis.Redis, rows: Sequence[dict[str, Any]], vectors: np.ndarray,
                       model: str, chunk: int = 1000) -> list[str]:
    """Write {item_id, text, attributes} rows with their precomputed vectors (the vectors of
    `embedding_text(text, attributes)` by the encoder `model`) straight into Redis."""
    store = CatalogStore(client, stream_maxlen=100_000)
    for start in range(0, len(rows), chunk):
        store.upsert([CatalogItem(r["item_id"], r["text"],
                                  {k: tuple(v) for k, v in r["attributes"].items()},
                                  vectors[i], model)
                      for i, r in enumerate(rows[start:start + chunk], start)])
    return [r["item_id"] for r in rows]
