"""`interest-server eval-concepts`: the hand-labelled descriptions through a live server."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from interest_client import InterestClient
from tqdm import tqdm

from interest_server.api.app import create_server
from interest_server.config import Settings
from interest_server.offline.concept_dataset import ConceptRow, load_concept_rows
from interest_server.offline.concept_eval import (
    K,
    concept_links,
    concept_strings,
    row_metrics,
)
from interest_server.offline.plots import concept_bars

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SYNONYMS = {"movies": REPO_ROOT / "examples" / "movielens" / "synonyms.json",
                    "music": REPO_ROOT / "examples" / "music" / "synonyms.json"}
TARGETS = {"lists_with_disliked": "0", "disliked_items": "0", "mean_liked_share": ">= 0.9",
           "inversions": "0", "misses": "-"}
COLUMNS = (("rows", "rows"), ("lists with >=1 disliked item", "lists_with_disliked"),
           ("disliked items", "disliked_items"), ("mean liked share", "mean_liked_share"),
           ("inversions", "inversions"), ("misses", "misses"))
PROTOCOL = (
    "Protocol: a live server (the given Redis, or an embedded one) with the catalog upserted over "
    "gRPC and the synonyms file loaded through SetAttributeSynonyms; for each labelled "
    "description of the split and catalog, a fresh user with no behaviour calls EncodeInterest "
    "(replace) and then Recommend(k=10). Per row: the top-10 items holding a disliked value, "
    "the share of the top 10 holding a liked value (rows with likes), polarity inversions (a "
    "concept linking a disliked value with positive polarity, or a liked value with negative), "
    "and misses (a labelled value no concept of the right polarity links to).")


def catalog_items(catalog: str, data: str | None) -> list[dict]:
    """The catalog as UpsertItems dicts: MovieLens-100K films, or the music catalog."""
    if catalog == "movies":
        from interest_server.offline.movielens import default_data_dir, load_movielens

        movies = load_movielens(Path(data) if data else default_data_dir()).movies
        return [{"item_id": m.item_id, "text": m.text(), "attributes": m.attributes()}
                for m in movies]
    from interest_server.offline.music_catalog import load_music_catalog

    loaded = load_music_catalog(data) if data else load_music_catalog()
    return [_as_item(x) for x in loaded]


def _as_item(x: object) -> dict:
    """An item of a catalog loader (a dict, or an object with item_id, text and attributes)."""
    if isinstance(x, Mapping):
        return {"item_id": x["item_id"], "text": x["text"], "attributes": x["attributes"]}
    text, attributes = x.text, x.attributes
    return {"item_id": x.item_id, "text": text() if callable(text) else text,
            "attributes": attributes() if callable(attributes) else attributes}


def item_labels(items: Iterable[dict]) -> dict[str, set[str]]:
    """Each item's attribute values (genres, and a year nobody labels), by id."""
    return {i["item_id"]: {v for values in i["attributes"].values() for v in values}
            for i in items}


def synonyms_file(catalog: str, option: str | None) -> Path | None:
    """The synonyms to load: the option's file, None for "none", else the catalog's example file
    when the repository has it."""
    if option == "none":
        return None
    if option:
        path = Path(option)
        if not path.is_file():
            raise FileNotFoundError(f"synonyms file not found: {path}")
        return path
    path = DEFAULT_SYNONYMS[catalog]
    if not path.is_file():
        log.warning("no synonyms file at %s: running without synonyms", path)
        return None
    return path


def evaluate_rows(client: InterestClient, rows: Sequence[ConceptRow],
                  labels: Mapping[str, set[str]]) -> list[dict]:
    """Each row stated by a fresh user, then Recommend(k=10), scored by `row_metrics`."""
    out = []
    for row in tqdm(rows, desc="eval-concepts", unit="row", mininterval=2):
        user = f"concept-eval-{row.id}"
        client.delete_user(user)
        encoded = client.encode_interest(user, row.text)
        items = [i.item_id for i in client.recommend(user, k=K).items]
        metrics = row_metrics(concept_links(encoded.concepts),
                              [labels.get(i, set()) for i in items], row.like, row.dislike)
        out.append({"id": row.id, "lang": row.lang, "text": row.text, "like": list(row.like),
                    "dislike": list(row.dislike), "concepts": concept_strings(encoded.concepts),
                    "items": items, **metrics})
    return out


def aggregate(rows: Sequence[dict]) -> dict:
    """Totals of a group of scored rows."""
    shares = [r["liked_share"] for r in rows if r["liked_share"] is not None]
    with_disliked = sum(r["disliked_items"] > 0 for r in rows)
    return {"rows": len(rows), "lists_with_disliked": with_disliked,
            "disliked_list_share": with_disliked / len(rows) if rows else 0.0,
            "disliked_items": sum(r["disliked_items"] for r in rows),
            "rows_with_likes": len(shares),
            "mean_liked_share": sum(shares) / len(shares) if shares else None,
            "inversions": sum(r["inversions"] for r in rows),
            "misses": sum(r["misses"] for r in rows)}


def summarise(rows: Sequence[dict]) -> dict[str, dict]:
    """Overall, English, non-English and per language (groups with no rows are left out)."""
    groups = {"overall": list(rows), "English": [r for r in rows if r["lang"] == "en"],
              "non-English": [r for r in rows if r["lang"] != "en"]}
    for lang in sorted({r["lang"] for r in rows}):
        groups[f"lang={lang}"] = [r for r in rows if r["lang"] == lang]
    return {name: aggregate(group) for name, group in groups.items() if group}


def summary_table(summary: Mapping[str, Mapping]) -> str:
    """Markdown: one line per group, then the targets."""
    lines = ["| group | " + " | ".join(title for title, _ in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for name, s in summary.items():
        cells = []
        for _, key in COLUMNS:
            value = s[key]
            cells.append("-" if value is None else f"{value:.3f}" if isinstance(value, float)
                         else str(value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **target** | - | " + " | ".join(TARGETS[k] for _, k in COLUMNS[1:]) + " |")
    return "\n".join(lines)


def rows_table(rows: Sequence[dict]) -> str:
    """Markdown: each row's concepts and scores."""
    lines = ["| id | lang | text | concepts | liked share | disliked items | inversions | "
             "misses |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share = "-" if r["liked_share"] is None else f"{r['liked_share']:.1f}"
        text = r["text"].replace("|", "\\|")
        lines.append(f"| {r['id']} | {r['lang']} | {text} | {'; '.join(r['concepts'])} | "
                     f"{share} | {r['disliked_items']} | {r['inversions']} | {r['misses']} |")
    return "\n".join(lines)


def write_results(result: dict, out_dir: Path) -> Path:
    """JSON, markdown and a plot under `out_dir`; returns the JSON file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"concept_eval_{result['catalog']}_{result['split']}"
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    head = (f"# Concept evaluation: {result['catalog']}, {result['split']} split\n\n"
            f"Extractor: `{result['concept_extractor']}`; synonyms: "
            f"{result['synonyms'] or 'none'}.\n\n{PROTOCOL}\n\n")
    (out_dir / f"{stem}.md").write_text(
        head + summary_table(result["summary"]) + "\n\n" + rows_table(result["rows"]) + "\n",
        encoding="utf-8")
    concept_bars(result["summary"], out_dir / f"{stem}.png",
                 f"{result['catalog']} {result['split']}: extractor "
                 f"{result['concept_extractor']}, top {K}")
    return path


def run_eval_concepts(settings: Settings, split: str, catalog: str, data: str | None,
                      synonyms: str | None, out_dir: str, rows_path: str | None = None) -> int:
    """Score the split's rows of `catalog` through a fresh live server; always returns 0 (the
    numbers are reported next to their targets, people judge them)."""
    rows = load_concept_rows(rows_path, split=split, catalog=catalog)
    if not rows:
        print(f"no {split} rows for catalog {catalog}: nothing to evaluate")
        return 0
    items = catalog_items(catalog, data)
    labels = item_labels(items)
    synonyms_path = synonyms_file(catalog, synonyms)
    with tempfile.TemporaryDirectory(prefix="interest-eval-concepts-") as tmp:
        if not settings.redis_url:
            settings = settings.replace(data_dir=Path(tmp) / "redis")
        running = create_server(settings.replace(port=0, host="127.0.0.1"))
        try:
            with InterestClient(running.target, timeout_s=120) as client:
                client.wait_ready()
                client.upsert_items(items)
                if synonyms_path is not None:
                    client.set_attribute_synonyms(
                        json.loads(synonyms_path.read_text(encoding="utf-8")))
                scored = evaluate_rows(client, rows, labels)
        finally:
            running.stop(grace_s=1.0)
    summary = summarise(scored)
    result = {"split": split, "catalog": catalog, "items": len(items),
              "concept_extractor": settings.concept_extractor,
              "synonyms": str(synonyms_path) if synonyms_path else None,
              "targets": TARGETS, "summary": summary, "rows": scored}
    path = write_results(result, Path(out_dir))
    print(summary_table(summary))
    print(f"results: {path} (.md, .png)")
    return 0
