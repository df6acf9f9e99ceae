"""Bulk history import: a CSV/TSV event log streamed through StreamEvents, resumable by line."""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import datetime as dt
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from interest.v1 import interest_pb2 as pb
from interest_client import InterestClient, InterestError
from tqdm import tqdm

log = logging.getLogger(__name__)

# Header names (lower case, RecBole's ":type" suffix dropped) that fill each event field.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "userid", "user", "uid", "visitorid"),
    "item_id": ("item_id", "itemid", "item", "movie_id", "movieid", "iid"),
    "type": ("type", "event_type", "event"),
    "value": ("value", "rating", "score"),
    "timestamp": ("timestamp", "ts", "time"),
    "timestamp_ms": ("timestamp_ms", "ts_ms", "time_ms"),
    "event_id": ("event_id",),
}
MS_THRESHOLD = 1e11
"""A `timestamp` at or above this is already in milliseconds (as seconds it would be year 5138;
as milliseconds every date since March 1973 is above it)."""
HEAD_BYTES = 1 << 16
"""Bytes of the file's start fingerprinted in the checkpoint (appending to the file keeps it)."""
CHECKPOINT_VERSION = 1
MAX_SHOWN = 10
MAX_UNKNOWN_TRACKED = 100_000


class ImportFileError(ValueError):
    """The file cannot be imported as it is (no usable header, a checkpoint of another file)."""


@dataclass(frozen=True)
class Layout:
    """How the rows of one file map to events: column indexes (None: absent) and units."""

    format: str
    delimiter: str
    header: bool
    user_id: int
    item_id: int
    type: int | None = None
    value: int | None = None
    timestamp: int | None = None
    timestamp_ms: int | None = None
    event_id: int | None = None
    default_type: str = "view"

    @property
    def width(self) -> int:
        return 1 + max(i for i in (self.user_id, self.item_id, self.type, self.value,
                                   self.timestamp, self.timestamp_ms, self.event_id)
                       if i is not None)


def detect_layout(path: Path, *, delimiter: str | None = None, event_type: str | None = None,
                  id_column: str | None = None) -> Layout:
    """Recognise RecBole `.inter`, GroupLens `u.data` or a generic CSV/TSV with a header."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = handle.readline().rstrip("\r\n")
    if not first.strip():
        raise ImportFileError(f"{path}: empty first line; expected a header")
    sep = delimiter or next((c for c in ("\t", ",", ";", "|") if c in first), "\t")
    cells = next(csv.reader([first], delimiter=sep))
    names = [c.split(":", 1)[0].strip().lower() for c in cells]
    if len(cells) == 4 and all(_is_number(c) for c in cells):
        # GroupLens u.data: user, item, rating, seconds; no header.
        return Layout("grouplens", sep, False, 0, 1, value=2, timestamp=3,
                      default_type=event_type or "rating")
    index: dict[str, int] = {}
    for fld, aliases in COLUMN_ALIASES.items():
        found = [names.index(a) for a in aliases if a in names]
        if found:
            index[fld] = found[0]
    if id_column is not None:
        if id_column.lower() not in names:
            raise ImportFileError(f"{path}: no column {id_column!r} for event ids; found {names}")
        index["event_id"] = names.index(id_column.lower())
    missing = [f for f in ("user_id", "item_id") if f not in index]
    if missing:
        raise ImportFileError(
            f"{path}: header lacks {missing}; found {names}. Expected a header with user_id, "
            "item_id and optionally type, value (or rating), timestamp (seconds) or "
            "timestamp_ms, event_id; or GroupLens u.data (user, item, rating, seconds; no header)")
    recbole = any(":" in c for c in cells)
    default_type = event_type or ("rating" if "value" in index else "view")
    return Layout("recbole" if recbole else "generic", sep, True, index["user_id"],
                  index["item_id"], index.get("type"), index.get("value"), index.get("timestamp"),
                  index.get("timestamp_ms"), index.get("event_id"), default_type)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _type_number(raw: str, cache: dict[str, int]) -> int:
    number = cache.get(raw)
    if number is None:
        name = raw.strip().upper().replace("-", "_")
        if name.isdigit():
            number = int(name)
        else:
            if not name.startswith("EVENT_TYPE_"):
                name = "EVENT_TYPE_" + name
            try:
                number = pb.EventType.Value(name)
            except ValueError:
                raise ValueError(f"unknown event type {raw!r}") from None
        cache[raw] = number
    return number


def _millis(raw: str, already_ms: bool) -> int:
    text = raw.strip()
    if not text:
        return 0  # the server's receive time
    try:
        number = float(text)
    except ValueError:
        if already_ms:
            raise ValueError(f"bad timestamp_ms {raw!r}") from None
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"bad timestamp {raw!r} (epoch seconds or ISO 8601)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return round(when.timestamp() * 1000)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"bad timestamp {raw!r}")
    return round(number if already_ms or number >= MS_THRESHOLD else number * 1000)


def build_event(row: list[str], line: int, layout: Layout, id_prefix: str,
                types: dict[str, int]) -> pb.Event:
    """One row as an Event; the id is the row's id column or `<id_prefix>:<line>`."""
    if len(row) < layout.width:
        raise ValueError(f"{len(row)} fields, need {layout.width}")
    event_id = row[layout.event_id].strip() if layout.event_id is not None else ""
    raw_type = row[layout.type].strip() if layout.type is not None else ""
    event = pb.Event(
        event_id=event_id or f"{id_prefix}:{line}",
        user_id=row[layout.user_id].strip(),
        item_id=row[layout.item_id].strip(),
        type=_type_number(raw_type or layout.default_type, types),
    )
    if layout.value is not None and row[layout.value].strip():
        try:
            event.value = float(row[layout.value])
        except ValueError:
            raise ValueError(f"bad value {row[layout.value]!r}") from None
    if layout.timestamp_ms is not None:
        event.timestamp_ms = _millis(row[layout.timestamp_ms], True)
    elif layout.timestamp is not None:
        event.timestamp_ms = _millis(row[layout.timestamp], False)
    return event


def default_id_prefix(path: Path) -> str:
    """The file's name (at most 100 characters): ids like `ml-100k.inter:2` say where from."""
    name = "".join(c if c.isprintable() and not c.isspace() else "_" for c in path.name)
    return name[:100] or "import"


@dataclass
class Checkpoint:
    """Progress of one file: every event on lines <= `line` is acknowledged (or was invalid)."""

    file: str
    id_prefix: str
    head_bytes: int
    head_sha256: str
    line: int = 0
    complete: bool = False
    totals: dict[str, int] = field(default_factory=dict)
    version: int = CHECKPOINT_VERSION

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old or the new file, never half of one)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def _head(path: Path) -> tuple[int, str]:
    with path.open("rb") as handle:
        data = handle.read(HEAD_BYTES)
    return len(data), hashlib.sha256(data).hexdigest()


def load_checkpoint(path: Path, data_file: Path, id_prefix: str) -> Checkpoint | None:
    """The checkpoint at `path` if there is one; refuses one written for another file."""
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"version {raw.get('version')!r}, expected {CHECKPOINT_VERSION}")
        checkpoint = Checkpoint(**raw)
    except (ValueError, TypeError, AttributeError) as err:
        raise ImportFileError(f"checkpoint {path} is unreadable ({err}); pass --restart or "
                              "another --checkpoint") from None
    with data_file.open("rb") as handle:
        head = handle.read(checkpoint.head_bytes)
    if (len(head) != checkpoint.head_bytes
            or hashlib.sha256(head).hexdigest() != checkpoint.head_sha256):
        raise ImportFileError(f"checkpoint {path} was written for another file (or {data_file} "
                              "changed before its end); pass --restart or another --checkpoint")
    if checkpoint.id_prefix != id_prefix:
        raise ImportFileError(
            f"checkpoint {path} used --id-prefix {checkpoint.id_prefix!r}, not {id_prefix!r}: "
            "other ids would apply the events again")
    return checkpoint


@dataclass
class ImportResult:
    """What one run did. `line` is the last line fully acknowledged (the checkpoint's)."""

    start_line: int
    line: int
    complete: bool
    sent: int = 0
    applied: int = 0
    duplicate: int = 0
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    invalid: int = 0
    invalid_lines: list[str] = field(default_factory=list)
    unknown_items: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        if self.line <= self.start_line:
            return f"nothing after line {self.start_line}" + (
                ": complete" if self.complete else "")
        lines = [f"lines {self.start_line + 1}..{self.line}: sent {self.sent} events in "
                 f"{self.seconds:.1f} s ({self.events_per_s:,.0f} events/s): applied "
                 f"{self.applied}, duplicate {self.duplicate}, rejected "
                 f"{sum(self.rejected.values())}, invalid rows {self.invalid}"]
        for reason, count in sorted(self.rejected.items()):
            lines.append(f"  rejected {reason}: {count}")
        if self.unknown_items:
            shown = ", ".join(f"{i} ({n})" for i, n in self.unknown_items.most_common(MAX_SHOWN))
            lines.append(f"  items not in the catalog ({len(self.unknown_items)}; upsert them "
                         f"first): {shown}")
        lines.extend(f"  invalid {text}" for text in self.invalid_lines)
        lines.append("complete" if self.complete else
                     f"stopped after line {self.line}; rerun to continue from there")
        return "\n".join(lines)


def count_lines(path: Path) -> int:
    """Lines in the file (a last line without a newline counts)."""
    count, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def import_file(client: InterestClient, path: str | Path, *, batch_size: int = 1000,
                max_in_flight: int = 8, checkpoint_path: str | Path | None = None,
                restart: bool = False, skip_lines: int | None = None, limit: int | None = None,
                id_prefix: str | None = None, event_type: str | None = None,
                delimiter: str | None = None, id_column: str | None = None,
                progress: bool = True, checkpoint_every_s: float = 1.0) -> ImportResult:
    """Stream the file's events through `client.stream_events`, in file order.

    Starts after `skip_lines`, else after the checkpoint's line (unless `restart`), else at the
    top; stops after `limit` events. The checkpoint is rewritten at most every
    `checkpoint_every_s` and on the way out, also on an error or Ctrl-C; it only ever names lines
    whose events are all acknowledged, so resuming from it skips nothing and resending what
    landed after it is answered DUPLICATE (event ids are remembered for the server's
    --dedupe-ttl-s, 24 h by default).
    """
    path = Path(path)
    prefix = id_prefix or default_id_prefix(path)
    layout = detect_layout(path, delimiter=delimiter, event_type=event_type, id_column=id_column)
    ckpt_file = Path(checkpoint_path) if checkpoint_path else None
    checkpoint = None
    if ckpt_file is not None and not restart:
        checkpoint = load_checkpoint(ckpt_file, path, prefix)
    if checkpoint is None:
        checkpoint = Checkpoint(str(path.resolve()), prefix, *_head(path))
    # Line numbers count the header (line 1), so they match `sed -n Np FILE`.
    start = max(skip_lines if skip_lines is not None else checkpoint.line,
                1 if layout.header else 0)
    result = ImportResult(start_line=start, line=start, complete=False)
    log.info("importing %s as %s (delimiter %r), after line %d", path, layout.format,
             layout.delimiter, start)
    total_lines = count_lines(path)
    sent: collections.deque[tuple[int, str]] = collections.deque()  # (line, item), unacked
    types: dict[str, int] = {}
    reached_end = False

    def events(reader: Any) -> Iterator[pb.Event]:
        nonlocal reached_end
        for row in reader:
            line = reader.line_num
            if line <= start or not row or not "".join(row).strip():
                continue
            if limit is not None and result.sent + len(sent) >= limit:
                return
            try:
                event = build_event(row, line, layout, prefix, types)
            except ValueError as err:
                result.invalid += 1
                if len(result.invalid_lines) < MAX_SHOWN:
                    result.invalid_lines.append(f"{path.name}:{line}: {err}")
                continue
            sent.append((line, event.item_id))
            yield event
        reached_end = True

    earlier = dict(checkpoint.totals)  # of the runs before this one

    def save() -> None:
        if ckpt_file is None:
            return
        checkpoint.line = result.line
        checkpoint.complete = result.complete
        checkpoint.totals = {k: earlier.get(k, 0) + v for k, v in _counts(result).items()}
        checkpoint.save(ckpt_file)

    began = time.monotonic()
    last_save = began
    bar = tqdm(total=max(0, total_lines - (1 if layout.header else 0)),
               initial=max(0, start - (1 if layout.header else 0)), unit="row",
               desc=f"importing {path.name}", disable=not progress, smoothing=0.1)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=layout.delimiter)
            acks = client.stream_events(events(reader), batch_size=batch_size,
                                        max_in_flight_batches=max_in_flight)
            for ack in acks:
                line, item_id = sent.popleft()
                result.sent += 1
                if ack.status == pb.ACK_STATUS_APPLIED:
                    result.applied += 1
                elif ack.status == pb.ACK_STATUS_DUPLICATE:
                    result.duplicate += 1
                else:
                    reason = pb.RejectReason.Name(ack.reason).removeprefix("REJECT_REASON_")
                    result.rejected[reason] += 1
                    if ack.reason == pb.REJECT_REASON_UNKNOWN_ITEM:
                        if (item_id in result.unknown_items
                                or len(result.unknown_items) < MAX_UNKNOWN_TRACKED):
                            result.unknown_items[item_id] += 1
                    elif sum(result.rejected.values()) <= MAX_SHOWN:
                        log.warning("%s:%d rejected %s: %s", path.name, line, reason,
                                    ack.message)
                bar.update(line - result.line)
                result.line = line
                now = time.monotonic()
                if now - last_save >= checkpoint_every_s:
                    last_save = now
                    save()
                    bar.set_postfix(applied=result.applied, dup=result.duplicate,
                                    rejected=sum(result.rejected.values()), refresh=False)
            if reached_end:
                # Trailing blank or invalid rows are done too.
                result.line = max(result.line, reader.line_num)
                result.complete = True
                bar.update(max(0, bar.total - bar.n))
    finally:
        result.seconds = time.monotonic() - began
        bar.close()
        save()
    return result


def _counts(result: ImportResult) -> dict[str, int]:
    return {"sent": result.sent, "applied": result.applied, "duplicate": result.duplicate,
            "rejected": sum(result.rejected.values()), "invalid": result.invalid}


# -- command line (`interest-server import`) ------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `import` subcommand's own flags (the server settings are added by the caller)."""
    parser.add_argument("file", help="CSV/TSV event log: RecBole .inter, GroupLens u.data, or a "
                        "header with user_id, item_id[, type][, value|rating]"
                        "[, timestamp (s)|timestamp_ms][, event_id]")
    parser.add_argument("--target", default=os.environ.get("INTEREST_TARGET"),
                        help="running server host:port (env INTEREST_TARGET)")
    parser.add_argument("--start", action="store_true",
                        help="start a server in this process with the settings below instead "
                        "(embedded Redis in --data-dir unless --redis-url or --redis-url-file)")
    parser.add_argument("--items", metavar="FILE",
                        help="upsert this catalog first: RecBole *.item or GroupLens u.item "
                        "(events of items not in the catalog are rejected)")
    parser.add_argument("--checkpoint", metavar="FILE",
                        help="progress file, rewritten every second (default: "
                        "./<file name>.import.json)")
    parser.add_argument("--no-checkpoint", action="store_true", help="keep no progress file")
    parser.add_argument("--restart", action="store_true",
                        help="ignore the checkpoint and start at the top (events still stored "
                        "come back DUPLICATE)")
    parser.add_argument("--skip-lines", type=int, metavar="N",
                        help="start after line N of the file (the header is line 1); "
                        "overrides the checkpoint")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="send at most N events, then stop (the checkpoint says where)")
    parser.add_argument("--id-prefix", help="event ids are PREFIX:LINE (default: the file's "
                        "name; changing it makes every event new to the server)")
    parser.add_argument("--id-column", metavar="NAME", help="take event ids from this column "
                        "(default: event_id when present); empty cells fall back to PREFIX:LINE")
    parser.add_argument("--type", dest="event_type", metavar="TYPE",
                        help="event type of rows without one (default: rating when there is "
                        "a value or rating column, else view)")
    parser.add_argument("--delimiter", help="column separator (default: tab, comma, ';' or '|', "
                        "whichever the first line has)")
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="events per StreamEvents message (at most the server's "
                        "--max-events-per-batch)")
    parser.add_argument("--max-in-flight", type=int, default=8,
                        help="unacknowledged messages at most")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds each acknowledgement may take")
    parser.add_argument("--token", default=os.environ.get("INTEREST_TOKEN", ""),
                        help="bearer token with the write scope (env INTEREST_TOKEN)")
    parser.add_argument("--tenant", default=os.environ.get("INTEREST_TENANT") or None,
                        help="tenant to import into (env INTEREST_TENANT; default: the "
                        "server's default tenant)")
    parser.add_argument("--tls-ca", metavar="PEM", help="dial TLS; the server's CA")
    parser.add_argument("--tls-cert", metavar="PEM", help="client certificate (mutual TLS)")
    parser.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _catalog(path: Path) -> list[dict[str, Any]]:
    from interest_server.offline.movielens import _read_atomic_items, _read_grouplens_items

    movies = (_read_grouplens_items(path) if path.name == "u.item"
              else _read_atomic_items(path))
    return [{"item_id": m.item_id, "text": m.text(), "attributes": m.attributes()}
            for m in movies]


def upsert_catalog(client: InterestClient, path: Path, progress: bool = True) -> int:
    """Upsert a MovieLens item file (the server embeds each item); returns the count."""
    items = _catalog(path)
    with tqdm(total=len(items), desc=f"upserting {path.name}", unit="item",
              disable=not progress) as bar:
        for start in range(0, len(items), 256):
            client.upsert_items(items[start:start + 256])
            bar.update(len(items[start:start + 256]))
    return len(items)


def run(args: argparse.Namespace, settings: Any) -> int:
    """`interest-server import`: exit 0 when every event sent was stored (APPLIED or
    DUPLICATE), 1 when some were rejected or rows invalid (or on an error), 130 on Ctrl-C."""
    path = Path(args.file)
    if not path.is_file():
        print(f"error: no file {path}", file=sys.stderr)
        return 1
    if not args.start and not args.target:
        print("error: give --target HOST:PORT (or INTEREST_TARGET) or --start", file=sys.stderr)
        return 1
    checkpoint = None if args.no_checkpoint else Path(
        args.checkpoint or f"{default_id_prefix(path)}"
        f"{'.' + args.tenant if args.tenant else ''}.import.json")  # one per tenant
    with contextlib.ExitStack() as stack:
        target = args.target
        if args.start:
            from interest_server.api.app import create_server

            running = create_server(settings.replace(host="127.0.0.1", port=0))
            stack.callback(running.stop, 1.0)
            target = running.target
        client = stack.enter_context(InterestClient(
            target, timeout_s=args.timeout, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
            tls_key=args.tls_key, token=args.token or None, tenant=args.tenant))
        try:
            client.wait_ready(timeout_s=300)
            if args.items:
                count = upsert_catalog(client, Path(args.items), not args.no_progress)
                print(f"upserted {count} items from {args.items}")
            result = import_file(
                client, path, batch_size=args.batch_size, max_in_flight=args.max_in_flight,
                checkpoint_path=checkpoint, restart=args.restart, skip_lines=args.skip_lines,
                limit=args.limit, id_prefix=args.id_prefix, event_type=args.event_type,
                delimiter=args.delimiter, id_column=args.id_column,
                progress=not args.no_progress)
        except KeyboardInterrupt:
            print(f"\ninterrupted; {checkpoint or 'no checkpoint'} records the last "
                  "acknowledged line: rerun the same command to continue", file=sys.stderr)
            return 130
        except (InterestError, ImportFileError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            if checkpoint is not None and checkpoint.is_file():
                print(f"{checkpoint} records the last acknowledged line: rerun to continue",
                      file=sys.stderr)
            return 1
    print(result.summary())
    if checkpoint is not None:
        print(f"checkpoint: {checkpoint} (line {result.line})")
    return 1 if result.rejected or result.invalid else 0
