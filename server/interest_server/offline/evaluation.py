"""Replay evaluation of the online system on MovieLens-100K, through the real gRPC API."""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from interest_client import InterestClient
from tqdm import tqdm

from interest_server.api.app import create_server
from interest_server.config import Settings
from interest_server.offline.movielens import Interaction, MovieLens, load_movielens, user_sequences

log = logging.getLogger(__name__)

CUTOFFS = (10, 20)
METRICS = ("recall@10", "ndcg@10", "mrr@10", "recall@20", "ndcg@20")
# RecBole 1.2.1 on the same split and protocol (history excluded), measured by the author.
RECBOLE_REFERENCE = {
    "RecBole Pop": {"recall@10": 0.0710, "ndcg@10": 0.0354, "mrr@10": 0.0246,
                    "recall@20": 0.1177, "ndcg@20": 0.0473},
    "RecBole ItemKNN": {"recall@10": 0.1145, "ndcg@10": 0.0629, "mrr@10": 0.0473,
                        "recall@20": 0.1824, "ndcg@20": 0.0799},
    "RecBole BPR": {"recall@10": 0.1241, "ndcg@10": 0.0673, "mrr@10": 0.0502,
                    "recall@20": 0.1951, "ndcg@20": 0.0850},
    "RecBole SASRec": {"recall@10": 0.2100, "ndcg@10": 0.1044, "mrr@10": 0.0728,
                       "recall@20": 0.3065, "ndcg@20": 0.1286},
}


@dataclass
class Split:
    """Leave-one-out split: per user the training history and the two targets."""

    train: dict[str, list[Interaction]]
    valid: dict[str, Interaction]
    test: dict[str, Interaction]


def leave_one_out(data: MovieLens) -> Split:
    """Targets from the loo table (RecBole's split) when present, else the last two by time."""
    sequences = user_sequences(data.interactions)
    split = Split({}, {}, {})
    for user, seq in sequences.items():
        target = data.loo.get(user) if data.loo else None
        valid_id = target.valid_item_id if target else seq[-2].item_id
        test_id = target.test_item_id if target else seq[-1].item_id
        by_item = {x.item_id: x for x in seq}
        split.valid[user] = by_item[valid_id]
        split.test[user] = by_item[test_id]
        split.train[user] = [x for x in seq if x.item_id not in (valid_id, test_id)]
    return split


def rank_metrics(ranked: Sequence[str], target: str) -> dict[str, float]:
    """Recall, NDCG and MRR at the cutoffs for one user with one target."""
    rank = ranked.index(target) + 1 if target in ranked else math.inf
    out = {}
    for k in CUTOFFS:
        hit = rank <= k
        out[f"recall@{k}"] = float(hit)
        out[f"ndcg@{k}"] = 1.0 / math.log2(rank + 1) if hit else 0.0
        out[f"mrr@{k}"] = 1.0 / rank if hit else 0.0
    return out


def mean_metrics(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Average per-user metrics."""
    rows = list(rows)
    return {m: sum(r[m] for r in rows) / len(rows) for m in METRICS}


def _event(user: str, x: Interaction, tag: str) -> dict:
    return {"event_id": f"{tag}-{user}-{x.item_id}", "user_id": user, "item_id": x.item_id,
            "type": "rating", "value": x.rating, "timestamp_ms": x.timestamp * 1000}


@dataclass
class ModelRun:
    """Scores of one served model, plus popularity from the same server."""

    name: str
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    popularity_test: dict[str, float] = field(default_factory=dict)
    concepts: dict = field(default_factory=dict)
    seconds: float = 0.0


def _stream(client: InterestClient, events: list[dict], desc: str) -> None:
    rejected = 0
    with tqdm(total=len(events), desc=desc, unit="event", mininterval=2) as bar:
        for ack in client.stream_events(events, batch_size=500):
            rejected += ack.status == 3
            bar.update(1)
    if rejected:
        raise RuntimeError(f"{rejected} events were rejected while streaming {desc}")


def _score_users(client: InterestClient, targets: dict[str, Interaction], desc: str,
                 exclude: dict[str, list[str]] | None = None,
                 lists: dict[str, list[str]] | None = None) -> dict[str, float]:
    rows = []
    for user, target in tqdm(sorted(targets.items()), desc=desc, unit="user", mininterval=2):
        if exclude is None:
            resp = client.recommend(user, k=max(CUTOFFS))
        else:  # a user without behaviour: the server's popularity list, history excluded
            resp = client.recommend("eval-popularity-probe", k=max(CUTOFFS),
                                    exclude_item_ids=exclude[user])
        ranked = [i.item_id for i in resp.items]
        if lists is not None:
            lists[user] = ranked
        rows.append(rank_metrics(ranked, target.item_id))
    return mean_metrics(rows)


def replay(settings: Settings, data: MovieLens, split: Split, name: str,
           probes: list[dict] | None = None) -> ModelRun:
    """Stream the training events through a fresh server and score every user, twice."""
    run = ModelRun(name)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="interest-eval-") as tmp:
        if not settings.redis_url:
            settings = settings.replace(data_dir=Path(tmp) / "redis")
        running = create_server(settings.replace(port=0, host="127.0.0.1"))
        try:
            with InterestClient(running.target, timeout_s=120) as client:
                client.wait_ready()
                items = [{"item_id": m.item_id, "text": m.text(), "attributes": m.attributes()}
                         for m in data.movies]
                for start in range(0, len(items), 256):
                    client.upsert_items(items[start:start + 256])
                train = sorted(((u, x) for u, seq in split.train.items() for x in seq),
                               key=lambda ux: ux[1].timestamp)
                _stream(client, [_event(u, x, "t") for u, x in train], f"{name}: train events")
                run.valid = _score_users(client, split.valid, f"{name}: valid")
                valid = sorted(split.valid.items(), key=lambda ux: ux[1].timestamp)
                _stream(client, [_event(u, x, "v") for u, x in valid], f"{name}: valid events")
                test_lists: dict[str, list[str]] = {}
                run.test = _score_users(client, split.test, f"{name}: test", lists=test_lists)
                consumed = {u: [x.item_id for x in split.train[u]] + [split.valid[u].item_id]
                            for u in split.test}
                run.popularity_test = _score_users(client, split.test, f"{name}: popularity",
                                                   exclude=consumed)
                if probes is not None:
                    from interest_server.offline.concept_eval import evaluate_concepts

                    run.concepts = evaluate_concepts(client, data, split, probes, test_lists)
        finally:
            running.stop(grace_s=1.0)
    run.seconds = time.monotonic() - started
    return run


def write_results(runs: list[ModelRun], out_dir: Path) -> dict:
    """Markdown table, JSON and a PNG comparing our models with RecBole's reference rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, float]] = dict(RECBOLE_REFERENCE)
    if runs:
        rows["Popularity (this server, cold start)"] = runs[0].popularity_test
    for run in runs:
        rows[run.name] = run.test
    result = {"protocol": PROTOCOL, "test": rows,
              "valid": {run.name: run.valid for run in runs},
              "concepts": {run.name: run.concepts for run in runs if run.concepts},
              "seconds": {run.name: round(run.seconds, 1) for run in runs}}
    (out_dir / "replay_eval.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| model (test) | " + " | ".join(METRICS) + " |",
             "|---|" + "---|" * len(METRICS)]
    for name, metrics in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{metrics[m]:.4f}" for m in METRICS) + " |")
    table = "\n".join(lines)
    from interest_server.offline.concept_eval import concept_tables

    concept_md = "".join(f"\n\n## Concepts: {run.name}\n\n" + concept_tables(run.concepts)
                         for run in runs if run.concepts)
    (out_dir / "replay_eval.md").write_text(
        "# Replay evaluation on MovieLens-100K\n\n" + PROTOCOL + "\n\n" + table + concept_md
        + "\n")
    _plot(rows, out_dir / "replay_eval.png")
    print(table)
    return result


def _plot(rows: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(names) + 1.5), sharey=True)
    for ax, metric in zip(axes, ("ndcg@10", "recall@10"), strict=True):
        values = [rows[n][metric] for n in names]
        colours = ["#9aa5b1" if n.startswith("RecBole") else "#2f6fbd" for n in names]
        ax.barh(names, values, color=colours)
        ax.set_xlabel(metric)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("MovieLens-100K, leave-one-out, full ranking, history excluded (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


PROTOCOL = (
    "Protocol: MovieLens-100K, every rating an interaction; leave-one-out by time with the "
    "targets of `loo_split.tsv` (RecBole 1.2.1's split); the catalog is upserted and every "
    "user's training events are streamed through `StreamEvents` in timestamp order to a live "
    "server, then `Recommend(k=20)` over gRPC for all 943 users scores the validation target; "
    "the validation events are streamed, and `Recommend` again scores the test target. Full "
    "ranking over all 1,682 items, excluding the items consumed before the target (the "
    "server's consumed set). RecBole rows: same split and protocol, from issue 3.")


def run_eval(settings: Settings, data_path: str | None, model_paths: list[str],
             out_dir: str, include_baseline: bool = True, probes_path: str | None = None) -> int:
    """Evaluate the decayed average and each given checkpoint; write the results."""
    from interest_server.offline.concept_eval import load_probes
    from interest_server.offline.movielens import default_data_dir

    data = load_movielens(Path(data_path) if data_path else default_data_dir())
    split = leave_one_out(data)
    probes = load_probes(probes_path)
    runs = []
    if include_baseline:
        runs.append(replay(settings.replace(interest_model_path=""), data, split,
                           "decayed average (this server)", probes))
    for path in model_paths:
        runs.append(replay(settings.replace(interest_model_path=path), data, split,
                           f"learned {Path(path).stem} (this server)", probes))
    write_results(runs, Path(out_dir))
    return 0
