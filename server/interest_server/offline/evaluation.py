"""Replay evaluation of the online system on MovieLens-100K, through the real gRPC API."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from interest_client import InterestClient
from tqdm import tqdm

from interest_server.api.app import create_server
from interest_server.config import Settings
from interest_server.offline.movielens import Interaction, MovieLens, load_movielens
from interest_server.offline.plots import metric_bars
from interest_server.offline.protocol import CUTOFFS, Split, leave_one_out, list_rank, rank_metrics

log = logging.getLogger(__name__)

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
    ranks = []
    for user, target in tqdm(sorted(targets.items()), desc=desc, unit="user", mininterval=2):
        if exclude is None:
            resp = client.recommend(user, k=max(CUTOFFS))
        else:  # a user without behaviour: the server's popularity list, history excluded
            resp = client.recommend("eval-popularity-probe", k=max(CUTOFFS),
                                    exclude_item_ids=exclude[user])
        ranked = [i.item_id for i in resp.items]
        if lists is not None:
            lists[user] = ranked
        ranks.append(list_rank(ranked, target.item_id))
    metrics = rank_metrics(ranks)
    return {m: metrics[m] for m in METRICS}


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
    metric_bars(rows, out_dir / "replay_eval.png")
    print(table)
    return result


PROTOCOL = (
    "Protocol: MovieLens-100K, every rating an interaction; leave-one-out by time with the "
    "targets of `loo_split.tsv` (RecBole 1.2.1's split; without it, each user's last two "
    "events by time); the catalog is upserted and every "
    "user's training events are streamed through `StreamEvents` in timestamp order to a live "
    "server, then `Recommend(k=20)` over gRPC for all 943 users scores the validation target; "
    "the validation events are streamed, and `Recommend` again scores the test target. Full "
    "ranking over all 1,682 items, excluding the items consumed before the target (the "
    "server's consumed set). RecBole rows: same split and protocol, run with RecBole 1.2.1.")


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
