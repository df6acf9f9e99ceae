"""`interest-server train-concepts`: train the learned concept head (model/concept_head.py).

Data: generated labelled texts (offline/concept_generator.py; en/fr/zh plus some es/de) and the
hand-labelled dataset's train rows, oversampled because they are real writing. The encoder's token
states are computed once (the encoder is frozen); the head is trained with Adam on BIO tags (cross
entropy) and strength (squared error inside spans), and the epoch kept is the one with the best
span F1 on the dataset's dev rows. The test split is never read here.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from interest_server.model.concept_extractor import default_head_path
from interest_server.model.concept_head import ConceptHead, char_ids, save_head
from interest_server.model.concept_spans import LABELS, bio_tags, decode, like_margins
from interest_server.model.concepts import Polarity, parse_concepts
from interest_server.model.encoder import TextEncoder
from interest_server.model.encoder_weights import default_model_dir, resolve_model_dir
from interest_server.offline import concept_metrics
from interest_server.offline.concept_dataset import load_concept_rows

logger = logging.getLogger(__name__)

_STRENGTH_LOSS_WEIGHT = 0.5


@dataclass
class Example:
    """One training or dev text with its gold spans and, once encoded, its tensors."""

    text: str
    lang: str
    spans: list[tuple[int, int, Polarity, float]]
    states: np.ndarray | None = None  # float16 (tokens, dim) to halve memory
    offsets: list[tuple[int, int]] | None = None
    chars: np.ndarray | None = None
    tags: np.ndarray | None = None
    strength: np.ndarray | None = None


def generated_examples(n: int, seed: int) -> list[Example]:
    """n texts from the generator, in its default language mix (en, fr, zh, some es, de)."""
    if n <= 0:
        return []
    from interest_server.offline.concept_generator import generate

    return [Example(t.text, t.lang, [(s.start, s.end, s.polarity, s.strength) for s in t.spans])
            for t in generate(n, seed=seed)]


def dataset_examples(split: str) -> list[Example]:
    """The hand-labelled rows of one split (train or dev; never test)."""
    if split == "test":
        raise ValueError("the test split is scored once by the lead, never trained or tuned on")
    try:
        rows = load_concept_rows(split=split)
    except FileNotFoundError:
        return []
    return [Example(r.text, r.lang, [(s.start, s.end, s.polarity, s.strength) for s in r.spans])
            for r in rows]


def encode(encoder: TextEncoder, examples: Sequence[Example], buckets: int, desc: str,
           chunk: int = 1024) -> None:
    """Fill each example's token states, offsets, character ids and gold tags, once."""
    # Sorted by length over all texts (token_states sorts only within a call), so batches
    # carry little padding; chunks only pace the progress bar.
    examples = sorted(examples, key=lambda e: len(e.text))
    with tqdm(total=len(examples), desc=desc, unit="text", mininterval=2) as bar:
        for start in range(0, len(examples), chunk):
            part = examples[start : start + chunk]
            for ex, (states, offsets) in zip(part, encoder.token_states([e.text for e in part]),
                                             strict=True):
                ex.states = states.astype(np.float16)
                ex.offsets = offsets
                ex.chars = char_ids(ex.text, offsets, buckets)
                tags, strength = bio_tags(ex.text, offsets, ex.spans)
                ex.tags = np.asarray(tags, dtype=np.int64)
                ex.strength = np.asarray(strength, dtype=np.float32)
            bar.update(len(part))


def _batch(examples: Sequence[Example]) -> tuple[torch.Tensor, ...]:
    width = max(1, max(len(e.offsets or ()) for e in examples))
    dim = next(e.states.shape[1] for e in examples if e.states is not None)
    states = np.zeros((len(examples), width, dim), dtype=np.float32)
    chars = np.zeros((len(examples), width), dtype=np.int64)
    tags = np.full((len(examples), width), -100, dtype=np.int64)  # -100: ignored by the loss
    strength = np.zeros((len(examples), width), dtype=np.float32)
    lengths = np.ones(len(examples), dtype=np.int64)
    for row, e in enumerate(examples):
        n = len(e.offsets or ())
        if n:
            states[row, :n] = e.states
            chars[row, :n] = e.chars
            tags[row, :n] = e.tags
            strength[row, :n] = e.strength
            lengths[row] = n
    return tuple(torch.from_numpy(a) for a in (states, chars, tags, strength, lengths))


def predict(head: ConceptHead, examples: Sequence[Example],
            batch_size: int = 128) -> list[list[concept_metrics.Span]]:
    """Decoded (start, end, polarity) spans per example."""
    head.eval()
    out: list[list[concept_metrics.Span]] = []
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            part = examples[start : start + batch_size]
            states, chars, _, _, lengths = _batch(part)
            logits, strength = head(states, chars, lengths)
            for row, e in enumerate(part):
                n = len(e.offsets or ())
                spans = decode(e.text, e.offsets or [], logits[row, :n].argmax(-1).tolist(),
                               strength[row, :n].tolist(),
                               like_margins(logits[row, :n].softmax(-1).tolist()))
                out.append([(s.start, s.end, s.polarity) for s in spans])
    return out


def gold(e: Example) -> list[concept_metrics.Span]:
    return [(s, t, p) for s, t, p, _ in e.spans]


def score_head(head: ConceptHead, examples: Sequence[Example]) -> dict[str, dict[str, Any]]:
    predicted = predict(head, examples)
    return concept_metrics.score_by_lang(
        (e.lang, gold(e), p) for e, p in zip(examples, predicted, strict=True))


def score_rules(examples: Sequence[Example]) -> dict[str, dict[str, Any]]:
    """The rule parser (model/concepts.py) on the same rows, its phrases located in the text."""
    return concept_metrics.score_by_lang(
        (e.lang, gold(e),
         concept_metrics.phrase_spans(e.text, [(c.phrase, c.polarity)
                                               for c in parse_concepts(e.text)]))
        for e in examples)


def train(encoder: TextEncoder, train_set: list[Example], dev_set: list[Example], *,
          epochs: int, seed: int, batch_size: int = 128, lr: float = 3e-3,
          patience: int = 3, hidden: int = 128) -> tuple[ConceptHead, dict[str, Any]]:
    """The head of the epoch with the best dev span F1 less the dev inversion rate (an
    inversion is the worst error, so it costs as much as a missed and a spurious span), and the
    per-epoch history. Batches of 128 keep the GRU's sequential steps few on a CPU."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = ConceptHead(encoder.dim, hidden=hidden)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    history: dict[str, Any] = {"epoch": [], "loss": [], "dev_f1": [], "dev_inversions": []}
    best: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] = {}
    best_epoch, stale = 0, 0
    for epoch in range(1, epochs + 1):
        head.train()
        # Batches of similar length (little padding), in a random order each epoch.
        order = sorted(range(len(train_set)), key=lambda i: (len(train_set[i].offsets or ()),
                                                              rng.random()))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        rng.shuffle(batches)
        total, count = 0.0, 0
        for idx in tqdm(batches, desc=f"epoch {epoch}", unit="batch", mininterval=2,
                        leave=False):
            states, chars, tags, strength, lengths = _batch([train_set[i] for i in idx])
            logits, predicted = head(states, chars, lengths)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(LABELS)),
                                                     tags.reshape(-1), ignore_index=-100)
            inside = (tags > 0).float()
            if inside.sum() > 0:
                loss = loss + _STRENGTH_LOSS_WEIGHT * (
                    ((predicted - strength) ** 2) * inside).sum() / inside.sum()
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimiser.step()
            total += loss.item() * len(idx)
            count += len(idx)
        scores = score_head(head, dev_set)["all"]
        history["epoch"].append(epoch)
        history["loss"].append(total / max(count, 1))
        history["dev_f1"].append(scores["f1"])
        history["dev_inversions"].append(scores["inversions"])
        logger.info("epoch %d: loss %.4f, dev F1 %.4f, inversions %d", epoch,
                    history["loss"][-1], scores["f1"], scores["inversions"])
        key = (scores["f1"] - scores["inversions"] / max(scores["gold"], 1), scores["f1"])
        if best is None or key > best:
            best, best_epoch, stale = key, epoch, 0
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    head.load_state_dict(best_state)
    head.eval()
    history["best_epoch"] = best_epoch
    return head, history


def run(out: Path | None, generated: int, epochs: int, seed: int, model_dir: str,
        train_repeat: int = 4) -> dict[str, Any]:
    """Train and write the head, its JSON report and training curve; the report."""
    began = time.perf_counter()
    encoder = TextEncoder(model_dir)
    if out is None:
        if resolve_model_dir(model_dir) != resolve_model_dir(default_model_dir()):
            raise SystemExit("--out is required with --model-dir: the shipped head belongs to "
                             "the default encoder")
        out = default_head_path()
    rows = dataset_examples("train")
    dev_set = dataset_examples("dev")
    train_set = generated_examples(generated, seed) + rows * train_repeat
    if not dev_set:  # no written dev rows yet: select on held-out generated texts instead
        rng = random.Random(seed)
        rng.shuffle(train_set)
        cut = max(1, len(train_set) // 20)
        dev_set, train_set = train_set[:cut], train_set[cut:]
    buckets = ConceptHead(encoder.dim, hidden=1).sizes["char_buckets"]
    # Repeated rows are the same objects: each distinct text is encoded once.
    encode(encoder, list({id(e): e for e in train_set}.values()), buckets,
           "token states (train)")
    encode(encoder, dev_set, buckets, "token states (dev)")
    head, history = train(encoder, train_set, dev_set, epochs=epochs, seed=seed)
    dev_head = score_head(head, dev_set)
    dev_rules = score_rules(dev_set)
    seconds = round(time.perf_counter() - began, 1)
    summary = {
        "generated": generated, "dataset_train_rows": len(rows), "train_repeat": train_repeat,
        "train_texts": len(train_set), "dev_texts": len(dev_set), "epochs": epochs,
        "best_epoch": history["best_epoch"], "seed": seed, "seconds": seconds,
        "dev_f1": dev_head["all"]["f1"], "dev_inversions": dev_head["all"]["inversions"],
    }
    save_head(head, out, encoder.model_id, summary)
    report = {"head": _shown_path(out), "encoder_model_id": encoder.model_id, **summary,
              "history": history, "dev": {"head": dev_head, "rules": dev_rules}}
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    from interest_server.offline.plots import concept_training_curve

    concept_training_curve(history, out.with_suffix(".png"))
    print(concept_metrics.summary_line("head", dev_head))
    print(concept_metrics.summary_line("rules", dev_rules))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {seconds:.0f} s")
    return report


def _shown_path(path: Path) -> str:
    """The head's path for the report: relative to the working directory (the repository when
    run from it) or just the file name, never an absolute path that leaks a machine's layout."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def main(argv: list[str] | None = None) -> int:
    """Entry point of `interest-server train-concepts`."""
    parser = argparse.ArgumentParser(
        prog="interest-server train-concepts",
        description="Train the learned concept extractor's head on generated and written text.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="head file to write (default: the shipped head, default encoder "
                             "only); a .json report and .png curve go next to it")
    parser.add_argument("--generated", type=int, default=10000,
                        help="generated training texts")
    parser.add_argument("--epochs", type=int, default=10, help="at most this many epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", default="",
                        help="encoder model directory (default: the packaged encoder)")
    parser.add_argument("--train-repeat", type=int, default=4,
                        help="times each written train row is repeated")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    run(args.out, args.generated, args.epochs, args.seed, args.model_dir, args.train_repeat)
    return 0
