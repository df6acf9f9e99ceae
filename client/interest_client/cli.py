"""interest-client: everyday calls to an interest server from the command line."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message
from interest.v1 import interest_pb2

from interest_client.client import InterestClient, InterestError, make_event, make_item

_TEXT_WIDTH = 40
_MAX_REJECTIONS_SHOWN = 20


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"error: {name}={raw!r} is not a number") from None


def _add_security_arguments(parser: argparse.ArgumentParser,
                            common: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls", action="store_true",
                        help="dial TLS, verifying the server with the system roots or --tls-ca")
    parser.add_argument("--tls-ca", metavar="PEM", help="CA file the server's certificate must "
                        "chain to (implies --tls)")
    parser.add_argument("--tls-cert", metavar="PEM", help="client certificate (mutual TLS)")
    parser.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    # The token's value never appears in --help.
    parser.add_argument("--token", default=os.environ.get("INTEREST_TOKEN", ""),
                        help="bearer token sent as 'authorization: Bearer ...' "
                        "(env INTEREST_TOKEN, which keeps it out of the process list)")
    parser.add_argument("--tenant", default=os.environ.get("INTEREST_TENANT") or None,
                        help="tenant (namespace) to act for, sent as 'x-tenant-id' "
                        "(env INTEREST_TENANT; default: the server's default tenant)")
    common.add_argument("--tls", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    for flag in ("--tls-ca", "--tls-cert", "--tls-key", "--token", "--tenant"):
        common.add_argument(flag, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; global options are accepted before or after the subcommand."""
    parser = argparse.ArgumentParser(
        prog="interest-client", description="Call an interest.v1.InterestService server.")
    parser.add_argument("--target", default=os.environ.get("INTEREST_TARGET", "localhost:50051"),
                        help="server address host:port (env INTEREST_TARGET; %(default)s)")
    parser.add_argument("--timeout", type=float, default=_env_float("INTEREST_TIMEOUT", 10.0),
                        help="deadline per call in seconds (env INTEREST_TIMEOUT; %(default)s)")
    # The same options on each subcommand, defaulting to "not given" so they override only when
    # actually typed after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--target", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    _add_security_arguments(parser, common)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, run: Callable[..., int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(run=run)
        return p

    p = add("send", "send one event (exit 1 if it is rejected)", _cmd_send)
    p.add_argument("--user", required=True)
    p.add_argument("--item", required=True)
    p.add_argument("--type", required=True,
                   help="view, click, like, dislike, purchase, rating or skip")
    p.add_argument("--value", type=float, help="rating or strength")
    p.add_argument("--event-id", help="idempotency key (default: a fresh uuid)")
    p.add_argument("--timestamp-ms", type=int, default=0, help="event time (default: now)")

    p = add("send-file", "stream events from a JSONL file, one event object per line "
            "(give event_id in the file to make reruns idempotent; exit 1 if any is rejected)",
            _cmd_send_file)
    p.add_argument("file", help="JSONL path, or - for stdin")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--max-in-flight", type=int, default=8, help="unacknowledged batches at most")

    p = add("encode", "store a user's free-text interests", _cmd_encode)
    p.add_argument("--user", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--merge", action="store_true", help="merge with stored concepts, not replace")
    p.add_argument("--json", action="store_true")

    p = add("recommend", "rank the catalog for a user", _cmd_recommend)
    p.add_argument("--user", required=True)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--theta", type=float, help="dislike threshold (default: server's)")
    p.add_argument("--concept-weight", type=float, help="default: server's")
    p.add_argument("--include-consumed", action="store_true", help="keep consumed items")
    p.add_argument("--include", action="append", default=[], metavar="NAME=V1,V2",
                   help="keep items with one of these values (repeatable; filters are AND-ed, "
                   "values of one name OR-ed)")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME=V1,V2",
                   help="drop items with any of these values (repeatable)")
    p.add_argument("--exclude-item", action="append", default=[], metavar="ITEM_ID")
    p.add_argument("--json", action="store_true")

    p = add("state", "show a user's stored state", _cmd_state)
    p.add_argument("--user", required=True)
    p.add_argument("--vector", action="store_true", help="include the interest vector")
    p.add_argument("--json", action="store_true")

    p = add("delete-user", "erase everything stored about a user", _cmd_delete_user)
    p.add_argument("--user", required=True)

    p = add("upsert-items", "add or replace catalog items from a JSONL file "
            '({"item_id", "text", "attributes": {name: [values]}} per line)', _cmd_upsert_items)
    p.add_argument("file", help="JSONL path, or - for stdin")
    p.add_argument("--batch-size", type=int, default=256)

    p = add("delete-items", "remove catalog items", _cmd_delete_items)
    p.add_argument("item_ids", nargs="+", metavar="ID")

    p = add("set-synonyms", "replace attribute synonyms from a JSON file "
            '({"<attribute>": {"<value>": ["synonym", ...]}}; an empty list deletes a value\'s)',
            _cmd_set_synonyms)
    p.add_argument("--file", required=True, help="JSON path, or - for stdin")

    p = add("health", "print the server's health status (exit 0 only when SERVING)", _cmd_health)
    p.add_argument("--service", default="", help="service name (default: the whole server)")
    p.add_argument("--wait", type=float, metavar="SECONDS", help="wait up to this long for SERVING")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the interest-client console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with InterestClient(args.target, timeout_s=args.timeout, tls=args.tls,
                            tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key,
                            token=args.token or None, tenant=args.tenant) as client:
            return args.run(client, args)
    except InterestError as err:
        print(f"error: {err}", file=sys.stderr)
    except (ValueError, TypeError, OSError) as err:
        # Bad input on our side (file, JSON, event fields): no status code to report.
        print(f"error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


# -- commands ------------------------------------------------------------------------------------


def _cmd_send(client: InterestClient, args: argparse.Namespace) -> int:
    event = make_event(args.user, args.item, args.type, args.value, event_id=args.event_id,
                       timestamp_ms=args.timestamp_ms)
    ack = client.ingest([event]).acks[0]
    print(_ack_line(ack))
    return 1 if ack.status == interest_pb2.ACK_STATUS_REJECTED else 0


def _cmd_send_file(client: InterestClient, args: argparse.Namespace) -> int:
    counts = {"applied": 0, "duplicate": 0, "rejected": 0}
    events = (_at_line(args.file, n, make_event, obj) for n, obj in _read_jsonl(args.file))
    acks = client.stream_events(events, batch_size=args.batch_size,
                                max_in_flight_batches=args.max_in_flight)
    for ack in acks:
        if ack.status == interest_pb2.ACK_STATUS_APPLIED:
            counts["applied"] += 1
        elif ack.status == interest_pb2.ACK_STATUS_DUPLICATE:
            counts["duplicate"] += 1
        else:
            counts["rejected"] += 1
            if counts["rejected"] <= _MAX_REJECTIONS_SHOWN:
                print(_ack_line(ack), file=sys.stderr)
    hidden = counts["rejected"] - _MAX_REJECTIONS_SHOWN
    if hidden > 0:
        print(f"... and {hidden} more rejected", file=sys.stderr)
    total = sum(counts.values())
    print(f"sent {total} events: applied {counts['applied']}, "
          f"duplicate {counts['duplicate']}, rejected {counts['rejected']}")
    return 1 if counts["rejected"] else 0


def _cmd_encode(client: InterestClient, args: argparse.Namespace) -> int:
    response = client.encode_interest(args.user, args.text, "merge" if args.merge else "replace")
    if args.json:
        print(_to_json(response))
        return 0
    print(f"user {response.user_id}  model {response.model}")
    print("concepts found:")
    _print_concepts(response.concepts)
    print(f"stored for the user: {len(response.stored)} concept(s)")
    _print_concepts(response.stored)
    return 0


def _cmd_recommend(client: InterestClient, args: argparse.Namespace) -> int:
    response = client.recommend(
        args.user,
        args.k,
        theta=args.theta,
        concept_weight=args.concept_weight,
        exclude_consumed=False if args.include_consumed else None,
        exclude_item_ids=args.exclude_item,
        include=_parse_filters(args.include, "--include"),
        exclude=_parse_filters(args.exclude, "--exclude"),
    )
    if args.json:
        print(_to_json(response))
        return 0
    print(f"user {response.user_id}  strategy {response.strategy or '-'}  "
          f"version {response.user_version}  removed: dislikes {response.removed_by_dislikes}, "
          f"consumed {response.removed_consumed}, filters {response.removed_by_filters}")
    if not response.items:
        print("(no items)")
        return 0
    rows = [
        [str(rank), item.item_id, f"{item.score:.4f}", _clip(item.text, _TEXT_WIDTH),
         "; ".join(_reason_text(r) for r in item.reasons)]
        for rank, item in enumerate(response.items, 1)
    ]
    _print_table(["rank", "item", "score", "text", "reasons"], rows, right={0, 2})
    return 0


def _cmd_state(client: InterestClient, args: argparse.Namespace) -> int:
    state = client.get_user_state(args.user, include_vector=args.vector)
    if args.json:
        print(_to_json(state))
        return 0
    print(f"user {state.user_id}  version {state.version}  events {state.event_count}  "
          f"consumed {state.consumed_count}  model {state.model or '-'}")
    print(f"concepts: {len(state.concepts)}")
    _print_concepts(state.concepts)
    print(f"recent events (most recent first): {len(state.recent_events)}")
    rows = [
        [_format_ms(e.timestamp_ms), _enum_name(interest_pb2.EventType, e.type, "EVENT_TYPE_"),
         e.item_id, f"{e.value:g}" if e.HasField("value") else "", e.event_id]
        for e in state.recent_events
    ]
    if rows:
        _print_table(["time (UTC)", "type", "item", "value", "event id"], rows)
    if state.interest_vector:
        head = ", ".join(f"{x:.4f}" for x in state.interest_vector[:8])
        print(f"interest vector ({len(state.interest_vector)} dims): [{head}, ...]")
    return 0


def _cmd_delete_user(client: InterestClient, args: argparse.Namespace) -> int:
    response = client.delete_user(args.user)
    print(f"deleted {response.keys_deleted} key(s) for user {args.user}")
    return 0


def _cmd_upsert_items(client: InterestClient, args: argparse.Namespace) -> int:
    items = [_at_line(args.file, n, make_item, obj) for n, obj in _read_jsonl(args.file)]
    response = client.upsert_items(items, batch_size=args.batch_size)
    print(f"upserted {response.upserted} item(s); catalog size {response.catalog_size}; "
          f"model {response.model or '-'}")
    return 0


def _cmd_delete_items(client: InterestClient, args: argparse.Namespace) -> int:
    response = client.delete_items(args.item_ids)
    print(f"deleted {response.deleted} item(s); catalog size {response.catalog_size}")
    return 0


def _cmd_set_synonyms(client: InterestClient, args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        f: TextIO = sys.stdin if args.file == "-" else stack.enter_context(
            open(args.file, encoding="utf-8"))
        try:
            mapping = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{args.file}: invalid JSON: {err}") from None
    response = client.set_attribute_synonyms(mapping)
    print(f"stored {response.stored} list(s), deleted {response.deleted}; the tenant holds "
          f"{response.total_synonyms} synonym(s)")
    return 0


def _cmd_health(client: InterestClient, args: argparse.Namespace) -> int:
    if args.wait is not None:
        client.wait_ready(args.wait, service=args.service)
    status = client.health(args.service)
    print(status)
    return 0 if status == "SERVING" else 1


# -- helpers -------------------------------------------------------------------------------------


def _read_jsonl(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line, read lazily so big files stream."""
    with contextlib.ExitStack() as stack:
        f: TextIO = sys.stdin if path == "-" else stack.enter_context(open(path, encoding="utf-8"))
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {err}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


def _at_line(path: str, lineno: int, build: Callable[..., Any], obj: dict[str, Any]) -> Any:
    # The JSON keys are the builders' parameter names, so an unknown key is a TypeError.
    try:
        return build(**obj)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}:{lineno}: {err}") from None


def _parse_filters(specs: Sequence[str], flag: str) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise ValueError(f"{flag} expects NAME=V1,V2, got {spec!r}")
        filters.setdefault(name.strip(), []).extend(
            v.strip() for v in values.split(",") if v.strip())
    return filters


def _to_json(message: Message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True, indent=2)


def _ack_line(ack: interest_pb2.EventAck) -> str:
    status = _enum_name(interest_pb2.AckStatus, ack.status, "ACK_STATUS_")
    line = f"{ack.event_id}  {status}  user_version={ack.user_version}"
    if ack.status == interest_pb2.ACK_STATUS_REJECTED:
        reason = _enum_name(interest_pb2.RejectReason, ack.reason, "REJECT_REASON_")
        line += f"  {reason}: {ack.message}"
    return line


def _enum_name(enum: EnumTypeWrapper, value: int, prefix: str) -> str:
    # Tolerate numbers newer than these stubs instead of failing the whole listing.
    try:
        return enum.Name(value).removeprefix(prefix)
    except ValueError:
        return str(value)


def _reason_text(reason: interest_pb2.Reason) -> str:
    if reason.text:
        return reason.text
    kind = _enum_name(interest_pb2.ReasonKind, reason.kind, "REASON_KIND_").lower()
    return f"{kind} {reason.source}".strip()


def _print_concepts(concepts: Sequence[interest_pb2.Concept]) -> None:
    for c in concepts:
        sign = {interest_pb2.POLARITY_POSITIVE: "+", interest_pb2.POLARITY_NEGATIVE: "-"}.get(
            c.polarity, "?")
        links = ", ".join(f"{ln.name}={ln.value} ({ln.similarity:.2f})" for ln in c.links)
        print(f"  {sign} {c.weight:.2f}  {c.phrase}" + (f"  [{links}]" if links else ""))


def _print_table(header: list[str], rows: list[list[str]], right: Collection[int] = ()) -> None:
    # The last column is not padded so long reasons do not leave trailing blanks.
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            cell if i == len(row) - 1 else
            (cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
            for i, cell in enumerate(row)
        ]
        print("  ".join(cells).rstrip())


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _format_ms(ms: int) -> str:
    if ms <= 0:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


if __name__ == "__main__":
    sys.exit(main())
