"""Time-split online replay through a live server: every later event is predicted before it is
ingested, as a deployed service would see it.

The events are sorted by time and split at one instant: the past is streamed to a fresh server
(real gRPC, embedded Redis) as the history; then each later event is scored first (the user's
`Recommend(k=10)`: hit and NDCG of the event's item) and ingested second. The last part of the
past is the validation slice the popularity weight is chosen on; the test events are never
used to choose anything.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from interest_client import InterestClient
from tqdm import tqdm

from interest_server.api.app import create_server
from interest_server.config import Settings
from interest_server.engine.engine import Encoder

K = 10
PAST_FRACTION = 0.8
"""--split-time auto: the time at which this share of the events is past."""
VALID_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
"""Popularity weights tried on the validation slice."""
POPULARITY = 1.0
"""popularity_weight 1: the server's decayed popularity list, what a cold user gets (consumed
items excluded, as for every user)."""
REJECTED = 3  # EventAck status of a rejected event


@dataclass(frozen=True)
class ReplayEvent:
    """One event: a rating when `rating` is set, else a view."""

    user_id: str
    item_id: str
    timestamp_s: int
    rating: float | None = None

    def message(self, seq: int) -> dict:
        """The event as the client sends it (event ids unique per replay)."""
        out = {"event_id": f"r{seq}-{self.user_id}-{self.item_id}", "user_id": self.user_id,
               "item_id": self.item_id, "timestamp_ms": self.timestamp_s * 1000}
        if self.rating is None:
            return {**out, "type": "view"}
        return {**out, "type": "rating", "value": self.rating}


@dataclass
class TimeSplit:
    """History (streamed unscored), validation (the past's last events) and test (later)."""

    split_time_s: int
    history: list[ReplayEvent]
    valid: list[ReplayEvent]
    test: list[ReplayEvent]
    later_total: int
    """Events at or after the split time (test holds the first max_events of them)."""


def time_split(events: Iterable[ReplayEvent], split_time_s: int | None = None,
               valid_events: int = 2000, max_events: int | None = 5000) -> TimeSplit:
    """Sort by (time, user, item) and split at `split_time_s` (None: the time at which
    PAST_FRACTION of the events is past): events before it are the past, the rest later.
    The past's last `valid_events` are the validation slice (at most a tenth of the past)."""
    ordered = sorted(events, key=lambda e: (e.timestamp_s, e.user_id, e.item_id))
    if not ordered:
        raise ValueError("no events to replay")
    if split_time_s is None:
        split_time_s = ordered[min(int(len(ordered) * PAST_FRACTION), len(ordered) - 1)] \
            .timestamp_s
    past = [e for e in ordered if e.timestamp_s < split_time_s]
    later = [e for e in ordered if e.timestamp_s >= split_time_s]
    n_valid = min(valid_events, len(past) // 10)
    test = later if max_events is None else later[:max_events]
    return TimeSplit(split_time_s, past[:len(past) - n_valid], past[len(past) - n_valid:],
                     test, len(later))


def hit_ndcg(ranks: Sequence[float], k: int = K) -> dict[str, float]:
    """HR@k and NDCG@k averaged over events, from each event's 0-based rank of its item in the
    list (math.inf when absent); zeros for no events."""
    if not ranks:
        return {f"hr@{k}": 0.0, f"ndcg@{k}": 0.0, "events": 0}
    hits = [r < k for r in ranks]
    gains = [1.0 / math.log2(r + 2.0) if r < k else 0.0 for r in ranks]
    return {f"hr@{k}": sum(hits) / len(ranks), f"ndcg@{k}": sum(gains) / len(ranks),
            "events": len(ranks)}


def _rank(ranked: Sequence[str], item_id: str) -> float:
    return ranked.index(item_id) if item_id in ranked else math.inf


def _choose(valid: dict[str, dict[str, float]]) -> float:
    """The weight with the best validation NDCG@10, then HR@10; the smaller weight on a tie."""
    return min(valid, key=lambda w: (-valid[w][f"ndcg@{K}"], -valid[w][f"hr@{K}"], float(w)))


@dataclass
class ServerRun:
    """One server's scores: per configuration, on validation and on test."""

    name: str
    valid: dict[str, dict[str, float]] = field(default_factory=dict)
    test: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


def _stream(client: InterestClient, events: list[ReplayEvent], first_seq: int, desc: str,
            progress: bool) -> None:
    rejected = 0
    messages = (e.message(first_seq + i) for i, e in enumerate(events))
    with tqdm(total=len(events), desc=desc, unit="event", mininterval=2,
              disable=not progress) as bar:
        for ack in client.stream_events(messages, batch_size=500):
            rejected += ack.status == REJECTED
            bar.update(1)
    if rejected:
        raise RuntimeError(f"{rejected} events were rejected while streaming {desc}")


def _predict_then_ingest(client: InterestClient, events: list[ReplayEvent], first_seq: int,
                         configs: dict[str, float | None], desc: str, progress: bool
                         ) -> dict[str, list[float]]:
    """For each event in order: every configuration's list for its user (popularity_weight;
    None: the server default), then the event is ingested. Returns the ranks per config."""
    ranks: dict[str, list[float]] = {name: [] for name in configs}
    for i, ev in enumerate(tqdm(events, desc=desc, unit="event", mininterval=2,
                                disable=not progress)):
        for name, weight in configs.items():
            resp = client.recommend(ev.user_id, k=K, popularity_weight=weight)
            ranks[name].append(_rank([x.item_id for x in resp.items], ev.item_id))
        ack = client.ingest([ev.message(first_seq + i)])
        if any(a.status == REJECTED for a in ack.acks):
            raise RuntimeError(f"event {ev} was rejected")
    return ranks


def _serve(settings: Settings, items: list[dict], body: Callable[[InterestClient], None],
           encoder: Encoder | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="interest-online-") as tmp:
        if not settings.redis_url:
            settings = settings.replace(data_dir=Path(tmp) / "redis")
        # The replay states no interests: the rules parser spares loading the concept head.
        running = create_server(settings.replace(port=0, host="127.0.0.1",
                                                 concept_extractor="rules"), encoder=encoder)
        try:
            with InterestClient(running.target, timeout_s=120) as client:
                client.wait_ready()
                for start in range(0, len(items), 256):
                    client.upsert_items(items[start:start + 256])
                body(client)
        finally:
            running.stop(grace_s=1.0)


def replay_default(settings: Settings, items: list[dict], split: TimeSplit,
                   weights: Sequence[float] = VALID_WEIGHTS, progress: bool = True,
                   encoder: Encoder | None = None) -> ServerRun:
    """The model without a checkpoint: the popularity weight chosen on validation, then the
    test events scored with w = 0, the chosen w and popularity alone, all from one server."""
    run = ServerRun("default")
    started = time.monotonic()

    def body(client: InterestClient) -> None:
        _stream(client, split.history, 0, "history", progress)
        seq = len(split.history)
        if split.valid:
            configs = {f"{w:g}": w for w in weights}
            ranks = _predict_then_ingest(client, split.valid, seq, configs, "validation",
                                         progress)
            run.valid = {name: hit_ndcg(r) for name, r in ranks.items()}
        chosen = float(_choose(run.valid)) if run.valid else settings.popularity_weight
        run.valid["chosen"] = {"popularity_weight": chosen}
        seq += len(split.valid)
        configs = {"popularity (server's decayed list)": POPULARITY,
                   "default, popularity_weight 0": 0.0,
                   f"default, popularity_weight {chosen:g} (chosen on validation)": chosen}
        if settings.popularity_weight not in (0.0, chosen):
            configs[f"default, popularity_weight {settings.popularity_weight:g} (setting)"] = None
        ranks = _predict_then_ingest(client, split.test, seq, configs, "test", progress)
        run.test = {name: hit_ndcg(r) for name, r in ranks.items()}

    _serve(settings.replace(interest_model_path=""), items, body, encoder)
    run.seconds = time.monotonic() - started
    return run


def replay_checkpoint(settings: Settings, items: list[dict], split: TimeSplit, path: str,
                      progress: bool = True) -> ServerRun:
    """A learned checkpoint: history and validation streamed, test events scored."""
    run = ServerRun(f"learned {Path(path).stem}")
    started = time.monotonic()

    def body(client: InterestClient) -> None:
        _stream(client, split.history + split.valid, 0, "history", progress)
        ranks = _predict_then_ingest(client, split.test, len(split.history) + len(split.valid),
                                     {run.name: None}, "test", progress)
        run.test = {name: hit_ndcg(r) for name, r in ranks.items()}

    _serve(settings.replace(interest_model_path=path), items, body)
    run.seconds = time.monotonic() - started
    return run


def protocol_text(split: TimeSplit) -> str:
    """The protocol, with this run's sizes."""
    return (
        f"Protocol: events sorted by time and split at {split.split_time_s} "
        f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime(split.split_time_s))} UTC; "
        f"`--split-time auto`: the time at which {PAST_FRACTION:.0%} of the events are past). "
        f"The past ({len(split.history) + len(split.valid)} events) is streamed to a live server "
        f"(gRPC, embedded Redis) in time order; its last {len(split.valid)} events are the "
        f"validation slice: each is first predicted (Recommend k={K} per popularity weight "
        f"tried), then ingested, and the weight with the best validation NDCG@{K} is chosen. "
        f"Then the first {len(split.test)} of the {split.later_total} later events "
        f"(`--max-events`) are each predicted before being ingested: HR@{K} and NDCG@{K} of "
        f"the event's item in the user's top {K}, consumed items excluded as the service does "
        "(an event on an item its user already consumed cannot be hit). Every rating is an "
        "event. Popularity: the same server's forward-decayed popularity list "
        "(popularity_weight 1: what a cold user gets), consumed items excluded. Checkpoints: "
        "a separate server, the same events.")


def write_results(split: TimeSplit, runs: list[ServerRun], out_dir: Path,
                  command: str = "") -> dict:
    """JSON, markdown table and bar plot of the test scores (validation in the JSON and md)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {name: metrics for run in runs for name, metrics in run.test.items()}
    result = {"protocol": protocol_text(split), "command": command, "k": K,
              "split_time_s": split.split_time_s, "history_events": len(split.history),
              "valid_events": len(split.valid), "test_events": len(split.test),
              "later_events": split.later_total, "test": rows,
              "valid": {run.name: run.valid for run in runs if run.valid},
              "seconds": {run.name: round(run.seconds, 1) for run in runs}}
    (out_dir / "online_replay.json").write_text(json.dumps(result, indent=2) + "\n")
    pop = next((m for name, m in rows.items() if name.startswith("popularity")), None)
    lines = [f"| test ({len(split.test)} events) | HR@{K} | NDCG@{K} | × popularity (NDCG) |",
             "|---|---|---|---|"]
    for name, m in rows.items():
        ratio = (f"{m[f'ndcg@{K}'] / pop[f'ndcg@{K}']:.2f}" if pop and pop[f"ndcg@{K}"] > 0
                 else "")
        lines.append(f"| {name} | {m[f'hr@{K}']:.4f} | {m[f'ndcg@{K}']:.4f} | {ratio} |")
    valid_lines = [f"| validation ({len(split.valid)} events), popularity_weight | HR@{K} | "
                   f"NDCG@{K} |", "|---|---|---|"]
    for run in runs:
        for name, m in run.valid.items():
            if name != "chosen":
                valid_lines.append(f"| {name} | {m[f'hr@{K}']:.4f} | {m[f'ndcg@{K}']:.4f} |")
    table = "\n".join(lines)
    md = ["# Time-split online replay", "", protocol_text(split), ""]
    if command:
        md += [f"Command: `{command}`", ""]
    md += [table, "", "\n".join(valid_lines), ""]
    (out_dir / "online_replay.md").write_text("\n".join(md))
    _plot(rows, out_dir / "online_replay.png", len(split.test))
    print(table)
    print("\n".join(valid_lines))
    return result


def _plot(rows: dict[str, dict[str, float]], path: Path, n: int) -> None:
    from interest_server.offline.plots import _pyplot

    plt = _pyplot(path)
    if plt is None:
        return
    names = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(names) + 1.5), sharey=True)
    for ax, metric in zip(axes, (f"ndcg@{K}", f"hr@{K}"), strict=True):
        values = [rows[name][metric] for name in names]
        ax.barh(names, values, color="#2f6fbd")
        ax.set_xlabel(metric)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f"Time-split online replay: {n} later events, each predicted before ingest")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def movielens_events(data_dir: str | None) -> tuple[list[dict], list[ReplayEvent]]:
    """MovieLens-100K as catalog items and rating events."""
    from interest_server.offline.movielens import default_data_dir, load_movielens

    data = load_movielens(Path(data_dir) if data_dir else default_data_dir())
    items = [{"item_id": m.item_id, "text": m.text(), "attributes": m.attributes()}
             for m in data.movies]
    events = [ReplayEvent(x.user_id, x.item_id, x.timestamp, x.rating)
              for x in data.interactions]
    return items, events


def write_past(split: TimeSplit, items: list[dict], out_dir: Path) -> tuple[Path, Path]:
    """The events before the split (history and validation slice: everything a model deployed
    at the split time could have been trained on) as a generic events CSV, and the catalog as
    upsert-items JSONL: the input of `interest-server train --events --catalog`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    events_path, catalog_path = out_dir / "past_events.csv", out_dir / "items.jsonl"
    with events_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "type", "value", "timestamp_ms"])
        for e in [*split.history, *split.valid]:
            writer.writerow([e.user_id, e.item_id, "view" if e.rating is None else "rating",
                             "" if e.rating is None else e.rating, e.timestamp_s * 1000])
    with catalog_path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item) + "\n")
    return events_path, catalog_path


def run_online_eval(settings: Settings, data_dir: str | None, split_time: str,
                    model_paths: Sequence[str], out_dir: str, max_events: int,
                    valid_events: int, command: str = "", past_dir: str = "") -> int:
    """`interest-server eval-online`: the replay on MovieLens-100K; results under out_dir.
    With `past_dir`, only write the past's events and the catalog there (see write_past)."""
    items, events = movielens_events(data_dir)
    split = time_split(events, None if split_time == "auto" else int(split_time),
                       valid_events, max_events or None)
    if past_dir:
        events_path, catalog_path = write_past(split, items, Path(past_dir))
        n_past = len(split.history) + len(split.valid)
        print(f"wrote the {n_past} events before {split.split_time_s} to {events_path} and the "
              f"catalog to {catalog_path}; train on them with\n  interest-server train "
              f"--events {events_path} --catalog {catalog_path} --out past.pt")
        return 0
    print(f"split at {split.split_time_s}: {len(split.history)} history, {len(split.valid)} "
          f"validation, {len(split.test)} of {split.later_total} later events scored")
    runs = [replay_default(settings, items, split)]
    runs += [replay_checkpoint(settings, items, split, p) for p in model_paths]
    write_results(split, runs, Path(out_dir), command)
    return 0
