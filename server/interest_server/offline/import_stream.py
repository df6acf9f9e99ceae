"""Resumable import: a file's events streamed through StreamEvents, checkpointed by line."""

from __future__ import annotations

import collections
import csv
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from interest.v1 import interest_pb2 as pb
from interest_client import InterestClient
from tqdm import tqdm

from interest_server.offline.import_formats import (
    ImportFileError,
    build_event,
    default_id_prefix,
    detect_layout,
)

log = logging.getLogger(__name__)

HEAD_BYTES = 1 << 16
"""Bytes of the file's start fingerprinted in the checkpoint (appending to the file keeps it)."""
CHECKPOINT_VERSION = 1
MAX_SHOWN = 10
MAX_UNKNOWN_TRACKED = 100_000


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
