"""`interest-server import`: a CSV/TSV event log (and optionally its catalog) into a server."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from interest_client import InterestClient, InterestError
from tqdm import tqdm

from interest_server.offline.import_formats import ImportFileError, default_id_prefix
from interest_server.offline.import_stream import import_file


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
