"""Measure how concept phrases ground on MovieLens genres, and pick the grounding and theta bars."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# Before transformers is imported: a benchmark must never reach for a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from interest_server.model.encoder import TextEncoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ITEMS = ROOT.parent / "shared" / "datasets" / "ml-100k" / "ml-100k.item"
DEFAULT_OUT = ROOT / "bench" / "results" / "concept_grounding.json"

# Gold links: the genres a phrase names. "Tolerated" genres are defensible readings that are
# counted neither right nor wrong (e.g. "kids' stuff" -> Animation), so the threshold is not
# tuned against a judgement call.
GOLD: dict[str, tuple[set[str], set[str]]] = {
    "mystery films": ({"Mystery"}, set()),
    "romance": ({"Romance"}, set()),
    "science fiction": ({"Sci-Fi"}, set()),
    "horror": ({"Horror"}, set()),
    "westerns": ({"Western"}, set()),
    "war films": ({"War"}, set()),
    "musicals": ({"Musical"}, set()),
    "documentaries": ({"Documentary"}, set()),
    "action movies": ({"Action"}, set()),
    "romantic comedies": ({"Romance", "Comedy"}, set()),
    "thrillers": ({"Thriller"}, {"Mystery", "Crime", "Horror"}),
    "film noir": ({"Film-Noir"}, {"Crime", "Mystery"}),
    "gritty crime stories": ({"Crime"}, {"Film-Noir", "Thriller", "Drama"}),
    "fantasy adventures": ({"Fantasy", "Adventure"}, set()),
    "dramas": ({"Drama"}, set()),
    "animated movies": ({"Animation"}, {"Children's"}),
    "the whole family": ({"Children's"}, {"Animation", "Comedy"}),
    "comedies": ({"Comedy"}, set()),
    "space battles": ({"Sci-Fi"}, {"Action", "War", "Adventure"}),
    "aliens": ({"Sci-Fi"}, {"Horror"}),
    "whodunits": ({"Mystery"}, {"Crime"}),
    "love stories": ({"Romance"}, {"Drama"}),
    "cowboy movies": ({"Western"}, set()),
    "kids' stuff": ({"Children's"}, {"Animation"}),
    "anything scary": ({"Horror"}, {"Thriller"}),
}

# Negative concepts and the genre whose items they are meant to remove.
NEGATIVES = {
    "romance": "Romance",
    "horror": "Horror",
    "musicals": "Musical",
    "action movies": "Action",
    "thrillers": "Thriller",
    "war films": "War",
}
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
THETAS = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70)
Z_SCORES = (2.0, 2.5, 3.0, 3.5)


def load_items(path: Path) -> tuple[list[str], list[set[str]]]:
    """Item texts "Title (year). Genres: G1, G2" and genre sets from RecBole's ml-100k.item."""
    texts, genres = [], []
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        col = {name.split(":")[0]: i for i, name in enumerate(header)}
        for line in fh:
            row = line.rstrip("\n").split("\t")
            title, year = row[col["movie_title"]], row[col["release_year"]]
            # "unknown" is MovieLens' placeholder for a missing genre, not a genre.
            gs = [g for g in row[col["class"]].split() if g != "unknown"]
            text = f"{title} ({year})." if year else f"{title}."
            if gs:
                text += " Genres: " + ", ".join(gs)
            texts.append(text)
            genres.append(set(gs))
    return texts, genres


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def threshold_stats(pos: np.ndarray, neg: np.ndarray) -> dict[str, float]:
    """The best-F1 threshold, and the lowest threshold with no wrong link (and its recall)."""
    best = (-1.0, 0.0, 0.0, 0.0)
    for t in np.unique(np.concatenate([pos, neg])):
        tp, fp = int((pos >= t).sum()), int((neg >= t).sum())
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / len(pos)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best[0]:
            best = (f1, float(t), precision, recall)
    clean = float(neg.max()) + 1e-4  # just above the highest wrong link
    return {
        "auc": auc(pos, neg),
        "best_f1": best[0],
        "best_f1_threshold": best[1],
        "best_f1_precision": best[2],
        "best_f1_recall": best[3],
        "no_false_link_threshold": clean,
        "no_false_link_recall": float((pos >= clean).mean()),
        "margin_min_correct_minus_max_wrong": float(pos.min() - neg.max()),
        "correct_mean": float(pos.mean()),
        "wrong_mean": float(neg.mean()),
        "wrong_q99": float(np.quantile(neg, 0.99)),
    }


def grounding(enc: TextEncoder, vocab: list[str]) -> dict:
    phrases = list(GOLD)
    phrase_vecs: dict[str, np.ndarray] = {
        "concept": enc.embed_concepts(phrases),
        "embed": enc.embed(phrases),
    }
    movies = [f"{g} movies" for g in vocab]
    genre_vecs: dict[str, np.ndarray] = {
        "bare/concept": enc.embed_concepts(vocab),
        "bare/embed": enc.embed(vocab),
        "movies/concept": enc.embed_concepts(movies),
        "movies/embed": enc.embed(movies),
    }
    variants = {}
    for (pk, pv), (gk, gv) in itertools.product(phrase_vecs.items(), genre_vecs.items()):
        sims = pv @ gv.T  # (phrases, genres)
        pos, neg, top = [], [], {}
        pos_pairs, neg_pairs = [], []
        top1 = top1_ok = top2 = 0
        for i, phrase in enumerate(phrases):
            gold, tolerated = GOLD[phrase]
            order = np.argsort(-sims[i])
            top[phrase] = [(vocab[j], round(float(sims[i, j]), 3)) for j in order[:2]]
            top1 += vocab[order[0]] in gold
            top1_ok += vocab[order[0]] in gold | tolerated
            top2 += bool(gold & {vocab[j] for j in order[:2]})
            for j, g in enumerate(vocab):
                if g in gold:
                    pos.append(sims[i, j])
                    pos_pairs.append((float(sims[i, j]), phrase, g))
                elif g not in tolerated:
                    neg.append(sims[i, j])
                    neg_pairs.append((float(sims[i, j]), phrase, g))
        stats = threshold_stats(np.array(pos), np.array(neg))
        clean = stats["no_false_link_threshold"]
        stats.update(
            top1=top1,
            top1_acceptable=top1_ok,
            top2=top2,
            n=len(phrases),
            top=top,
            # The evidence behind the threshold: the wrong links that set it, the links it misses.
            highest_wrong=[(round(c, 3), p, g) for c, p, g in sorted(neg_pairs)[::-1][:4]],
            missed_at_no_false_link=[
                (round(c, 3), p, g) for c, p, g in sorted(pos_pairs) if c < clean
            ],
            # P = 1 holds for any threshold in (highest wrong, next correct link above it].
            no_false_link_gap=[
                round(float(max(neg)), 3),
                round(min((c for c, _, _ in pos_pairs if c > max(neg)), default=1.0), 3),
            ],
        )
        stats["rules"] = link_rules(sims, phrases, vocab)
        variants[f"phrase:{pk} genre:{gk}"] = stats
    return variants


def link_rules(sims: np.ndarray, phrases: list[str], vocab: list[str]) -> dict[str, dict]:
    """Phrase-level outcome of linking rules: how many phrases link right, wrong, or not at all.

    Rule "t": link every genre with cosine >= t. Rule "t+top1(m)": also link the single best genre
    when it is >= 0.3 and beats the runner-up by >= m (a paraphrase like "love stories" sits
    far from every genre name but clearly nearest to one).
    """
    rules: dict[str, dict] = {}
    for t, margin in itertools.product((0.45, 0.50, 0.55), (None, 0.05, 0.10, 0.15)):
        right = wrong = none = tolerated_only = 0
        wrong_links: list[str] = []
        for i, phrase in enumerate(phrases):
            gold, tolerated = GOLD[phrase]
            linked = {vocab[j] for j in np.flatnonzero(sims[i] >= t)}
            first, second = np.argsort(-sims[i])[:2]
            confident = sims[i, first] >= 0.3 and sims[i, first] - sims[i, second] >= (margin or 0)
            if margin is not None and confident:
                linked.add(vocab[first])
            bad = linked - gold - tolerated
            wrong_links += [f"{phrase}->{g}" for g in sorted(bad)]
            if bad:
                wrong += 1
            elif linked & gold:
                right += 1
            elif linked:
                tolerated_only += 1
            else:
                none += 1
        name = f"{t:.2f}" if margin is None else f"{t:.2f}+top1({margin:.2f})"
        rules[name] = {
            "right": right,
            "wrong": wrong,
            "tolerated_only": tolerated_only,
            "unlinked": none,
            "wrong_links": wrong_links,
        }
    return rules


def negative_filtering(
    enc: TextEncoder, item_vecs: np.ndarray, genres: list[set[str]]
) -> dict[str, dict]:
    phrases = list(NEGATIVES)
    out: dict[str, dict] = {}
    embedders: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
        "concept": enc.embed_concepts,
        "embed": enc.embed,
    }
    for kind, fn in embedders.items():
        sims = fn(phrases) @ item_vecs.T
        per: dict[str, dict] = {}
        for i, phrase in enumerate(phrases):
            has = np.array([NEGATIVES[phrase] in g for g in genres])
            pos, neg = sims[i, has], sims[i, ~has]
            per[phrase] = {
                "genre": NEGATIVES[phrase],
                "n_with": int(has.sum()),
                "n_without": int((~has).sum()),
                "auc": auc(pos, neg),
                "with_q": {str(q): float(np.quantile(pos, q)) for q in QUANTILES},
                "without_q": {str(q): float(np.quantile(neg, q)) for q in QUANTILES},
                "with_max": float(pos.max()),
                "without_max": float(neg.max()),
                # At each theta: share of genre items dropped, share of other items dropped.
                "drop": {
                    f"{t:.2f}": [float((pos >= t).mean()), float((neg >= t).mean())] for t in THETAS
                },
                # A relative bar, mean + k*std of the concept's cosines over the whole catalog,
                # adapts to concepts whose cosines run high everywhere ("action movies").
                "drop_z": {
                    f"{k:.1f}": [float((pos >= t).mean()), float((neg >= t).mean()), float(t)]
                    for k in Z_SCORES
                    for t in [float(sims[i].mean() + k * sims[i].std())]
                },
            }
        # Pooled over the concepts: what a single default theta does on average and at worst.
        per["_pooled"] = {
            f"{t:.2f}": {
                "genre_dropped_mean": float(
                    np.mean([per[p]["drop"][f"{t:.2f}"][0] for p in phrases])
                ),
                "other_dropped_mean": float(
                    np.mean([per[p]["drop"][f"{t:.2f}"][1] for p in phrases])
                ),
                "other_dropped_max": float(
                    np.max([per[p]["drop"][f"{t:.2f}"][1] for p in phrases])
                ),
            }
            for t in THETAS
        }
        out[kind] = per
    return out


def print_grounding(variants: dict) -> None:
    print("\n== Grounding: concept phrase -> genre name (25 phrases, 18 genres) ==")
    print("   top1: gold genre first (first is gold-or-tolerated); top2: a gold genre in the top 2")
    print("   P=1 gap: thresholds in (lo, hi] make no wrong link and keep recall R@P=1")
    print(
        f"{'variant':36s} {'top1':>8s} {'top2':>5s} {'AUC':>6s} {'F1':>5s} {'thr@F1':>6s} "
        f"{'P@F1':>5s} {'R@F1':>5s} {'P=1 gap':>13s} {'R@P=1':>6s} {'c.mean':>6s} {'w.q99':>6s}"
    )
    for name, s in variants.items():
        lo, hi = s["no_false_link_gap"]
        print(
            f"{name:36s} {s['top1']:>2d}({s['top1_acceptable']:>2d})/{s['n']} "
            f"{s['top2']:>2d}/{s['n']} {s['auc']:6.3f} {s['best_f1']:5.3f} "
            f"{s['best_f1_threshold']:6.3f} {s['best_f1_precision']:5.2f} "
            f"{s['best_f1_recall']:5.2f} {lo:6.3f}-{hi:6.3f} {s['no_false_link_recall']:6.2f} "
            f"{s['correct_mean']:6.3f} {s['wrong_q99']:6.3f}"
        )


def print_top(variants: dict, names: list[str]) -> None:
    for name in names:
        print(f"\n-- top-2 genres per phrase, {name} (* = gold, ~ = tolerated) --")
        for phrase, top in variants[name]["top"].items():
            gold, tolerated = GOLD[phrase]
            cells = []
            for g, c in top:
                mark = "*" if g in gold else "~" if g in tolerated else " "
                cells.append(f"{mark}{g:12s} {c:.3f}")
            print(f"  {phrase:22s} " + "   ".join(cells))
        s = variants[name]
        print(
            "  highest wrong links:", "; ".join(f"{p}->{g} {c}" for c, p, g in s["highest_wrong"])
        )
        missed = s["missed_at_no_false_link"]
        print("  gold links below them:", "; ".join(f"{p}->{g} {c}" for c, p, g in missed))
        print("  linking rules, phrases: right / with a wrong link / tolerated only / unlinked")
        for rule, r in s["rules"].items():
            wrong = r["wrong_links"]
            more = f" (+{len(wrong) - 4} more)" if len(wrong) > 4 else ""
            print(
                f"    {rule:18s} {r['right']:2d} / {r['wrong']:2d} / {r['tolerated_only']:2d} / "
                f"{r['unlinked']:2d}  " + ", ".join(wrong[:4]) + more
            )


def print_negatives(neg: dict) -> None:
    for kind, per in neg.items():
        print(f"\n== Negative concept ({kind}) vs item vectors: cosine quantiles ==")
        qs = " ".join(f"q{int(q * 100):02d}" for q in QUANTILES)
        print(f"{'concept':14s} {'genre':9s} {'n':>4s} {'AUC':>6s}  with[{qs}]  without[{qs}]")
        concepts = {p: s for p, s in per.items() if not p.startswith("_")}
        for phrase, s in concepts.items():
            w = " ".join(f"{v:.2f}" for v in s["with_q"].values())
            wo = " ".join(f"{v:.2f}" for v in s["without_q"].values())
            print(f"{phrase:14s} {s['genre']:9s} {s['n_with']:4d} {s['auc']:6.3f}  [{w}]  [{wo}]")
        print(f"\n   drop shares at theta (genre items dropped / other items dropped), {kind}:")
        print(f"{'concept':14s} " + " ".join(f"{t:>11.2f}" for t in THETAS))
        for phrase, s in concepts.items():
            cells = " ".join(f"{a:5.2f}/{b:5.3f}" for a, b in s["drop"].values())
            print(f"{phrase:14s} {cells}")
        pooled = per["_pooled"]
        print(
            f"{'mean':14s} "
            + " ".join(
                f"{v['genre_dropped_mean']:5.2f}/{v['other_dropped_mean']:5.3f}"
                for v in pooled.values()
            )
        )
        print(
            f"{'worst other':14s} "
            + " ".join(f"{'':5s} {v['other_dropped_max']:5.3f}" for v in pooled.values())
        )
        print(
            f"\n   relative bar mean+k*std over the catalog (genre / other dropped, bar), {kind}:"
        )
        print(f"{'concept':14s} " + " ".join(f"{'k=' + str(k):>17s}" for k in Z_SCORES))
        for phrase, s in concepts.items():
            cells = " ".join(f"{a:5.2f}/{b:5.3f} ({t:.2f})" for a, b, t in s["drop_z"].values())
            print(f"{phrase:14s} {cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=Path, default=DEFAULT_ITEMS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--model-dir", default="")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    enc = TextEncoder(args.model_dir)
    enc.warm()
    texts, genres = load_items(args.items)
    # The vocabulary comes from the data, as the server's does (no hand-written genre list).
    vocab = sorted(set().union(*genres))
    t0 = time.perf_counter()
    item_vecs = enc.embed(texts)
    embed_s = time.perf_counter() - t0
    print(
        f"model {enc.model_id}; {len(texts)} items embedded in {embed_s:.1f}s; {len(vocab)} genres"
    )

    variants = grounding(enc, vocab)
    negatives = negative_filtering(enc, item_vecs, genres)
    print_grounding(variants)
    best = max(variants, key=lambda k: (variants[k]["auc"], variants[k]["top1"]))
    print_top(variants, list(dict.fromkeys([best, "phrase:concept genre:movies/embed"])))
    print_negatives(negatives)

    result = {
        "model_id": enc.model_id,
        "items": len(texts),
        "genres": vocab,
        "item_text_format": "Title (year). Genres: G1, G2",
        "gold": {p: {"gold": sorted(g), "tolerated": sorted(t)} for p, (g, t) in GOLD.items()},
        "grounding": variants,
        "best_grounding_variant_by_auc": best,
        "negatives": negatives,
        "runtime_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} in {result['runtime_s']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
