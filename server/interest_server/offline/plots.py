"""Plots of training and evaluation results; skipped with a message when matplotlib is absent."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

SKIPPED = "matplotlib is not installed (pip install 'interest-server[offline]'): skipping %s"


def _pyplot(path: Path) -> ModuleType | None:
    """matplotlib.pyplot with a file-only backend, or None (and one line saying so) without it.

    Plotting is the one thing the offline extra adds: the server image trains without it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning(SKIPPED, path)
        return None
    return plt


def training_curve(
    history: Mapping[str, list[float]], path: Path, metadata: Mapping[str, Any] | None = None
) -> Path | None:
    """Training loss per epoch and validation NDCG@10 on a second axis, as one PNG; with the
    metadata also the chosen checkpoint's validation NDCG@10 after the prior, and its test.
    Returns the file, or None when the plot was skipped."""
    plt = _pyplot(path)
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history["epoch"], history["loss"], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (train)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(history["eval_epoch"], history["valid_ndcg@10"], color="tab:orange", marker=".",
             label="valid NDCG@10")
    ax2.set_ylabel("valid NDCG@10", color="tab:orange")
    title = "sequence interest model"
    if metadata:
        valid, test = metadata["valid"]["ndcg@10"], metadata["test"]["ndcg@10"]
        ax2.axhline(valid, color="tab:green", linestyle="--", linewidth=1)
        ax2.annotate(
            f"epoch {metadata['best_epoch']} + prior x{metadata['prior_scale']:g}: "
            f"valid {valid:.4f}",
            xy=(history["epoch"][0], valid), xytext=(0, -12), textcoords="offset points",
            color="tab:green", fontsize=8,
        )
        title += f" (test NDCG@10 {test:.4f}, Recall@10 {metadata['test']['recall@10']:.4f})"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_bars(rows: Mapping[str, Mapping[str, float]], path: Path) -> Path | None:
    """NDCG@10 and Recall@10 per model as horizontal bars, RecBole's reference rows in grey.
    Returns the file, or None when the plot was skipped."""
    plt = _pyplot(path)
    if plt is None:
        return None
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
    return path


def concept_bars(groups: Mapping[str, Mapping[str, Any]], path: Path, title: str) -> Path | None:
    """Per language group (overall, English, non-English, each language): the share of lists
    holding a disliked item, the mean liked share and the polarity inversions, with the targets
    as dashed lines. Returns the file, or None when the plot was skipped."""
    plt = _pyplot(path)
    if plt is None:
        return None
    names = list(groups)
    panels = (("share of lists with a disliked item", "disliked_list_share", 0.0),
              ("mean liked share", "mean_liked_share", 0.9),
              ("polarity inversions", "inversions", 0.0))
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.45 * len(names) + 1.8), sharey=True)
    for ax, (label, key, target) in zip(axes, panels, strict=True):
        values = [groups[n][key] or 0.0 for n in names]
        ax.barh(names, values, color="#2f6fbd")
        ax.axvline(target, color="tab:green", linestyle="--", linewidth=1)
        top = max([*values, target, 0.0])
        ax.set_xlim(0, 1.1 if key != "inversions" else max(1.0, 1.15 * top))
        ax.set_xlabel(f"{label} (target {target:g})")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3g}", va="center", fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def concept_training_curve(history: Mapping[str, Any], path: Path) -> Path | None:
    """The concept head's training loss and dev span F1 per epoch, the kept epoch marked.
    Returns the file, or None when the plot was skipped."""
    plt = _pyplot(path)
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history["epoch"], history["loss"], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("tag + strength loss (train)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(history["epoch"], history["dev_f1"], color="tab:orange", marker=".")
    ax2.set_ylabel("dev span F1", color="tab:orange")
    ax2.axvline(history["best_epoch"], color="tab:green", linestyle="--", linewidth=1)
    ax.set_title(f"concept head (kept epoch {history['best_epoch']})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
