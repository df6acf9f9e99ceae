"""`interest-server` command line: serve, demo, train, publish, eval, eval-concepts, import."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from interest_server import config
from interest_server.ops import logs

SUPERVISOR_POLL_S = 0.5
"""How often a child of `serve --processes N` checks that its parent is still there."""


def _serve(settings: config.Settings) -> int:
    from interest_server.api.app import create_server
    from interest_server.ops.stop_signals import StopSignals

    running = create_server(settings)
    signals = StopSignals()
    print(f"interest-server listening on {settings.host}:{running.port}", flush=True)
    log = logging.getLogger(__name__)
    while not signals.wait(SUPERVISOR_POLL_S):
        # A child of `serve --processes N` is re-parented once its parent is gone: stop then,
        # so a parent killed outright leaves no server bound to the port.
        if settings.supervisor_pid and os.getppid() != settings.supervisor_pid:
            log.warning("supervisor process %d is gone: shutting down gracefully",
                        settings.supervisor_pid)
            break
    if signals.received:
        log.info("signal %d: shutting down gracefully", signals.received[0])
    running.stop(grace_s=5.0)
    return 0


def exposure_error(settings: config.Settings) -> str | None:
    """Why `settings` must not start a server, or None: a non-loopback `host` that nobody has
    to authenticate to (no bearer token, no mutual TLS) without `insecure`, as Redis' protected
    mode refuses. Mutual TLS counts: every client then holds a certificate the CA signed. Checked
    before `serve` (either form) or `demo` starts anything."""
    if config.is_loopback(settings.host):
        return None
    from interest_server.api import auth

    try:
        tokens = auth.load_tokens(settings)
    except (OSError, ValueError) as exc:
        return f"bearer tokens: {exc}"
    if tokens or settings.tls_client_ca_file or settings.insecure:
        return None
    return (f"refusing to serve on {settings.host} without authentication: anyone who reaches "
            "it could read and change every user's data. Give bearer tokens "
            "(--auth-token-file FILE or INTEREST_AUTH_TOKENS='TOKEN read,write'), or mutual TLS "
            "(--tls-client-ca-file), or bind loopback (--host 127.0.0.1, the default); "
            "--insecure (INTEREST_INSECURE=true) serves it unauthenticated anyway. See "
            "docs/upgrading.md")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `interest-server` console script."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["train"]:
        # Training has its own flags (data, out, epochs, ...); hand them over unparsed.
        from interest_server.offline.training import main as train_main

        return train_main(args_in[1:])
    if args_in[:1] and args_in[0] in ("publish", "rollback", "unpublish"):
        # Write-scope commands on a tenant's live model: their own few flags.
        from interest_server.offline.publish import main as publish_main

        return publish_main(args_in[0], args_in[1:])
    if args_in[:1] == ["train-concepts"]:
        from interest_server.offline.concept_training import main as train_concepts_main

        return train_concepts_main(args_in[1:])
    parser = argparse.ArgumentParser(prog="interest-server",
                                     description="Real-time interest server (gRPC).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train the sequence interest model from an event file, a "
                   "server's event log in Redis, or MovieLens (interest-server train -h)")
    sub.add_parser("train-concepts", help="train the learned concept extractor's head "
                   "(interest-server train-concepts -h)")
    sub.add_parser("publish", help="make a checkpoint a tenant's interest model on every "
                   "replica, live (interest-server publish -h)")
    sub.add_parser("rollback", help="make a tenant's previously published model current "
                   "again (interest-server rollback -h)")
    sub.add_parser("unpublish", help="withdraw a tenant's published models: replicas return "
                   "to their configured one (interest-server unpublish -h)")
    serve = sub.add_parser("serve", help="run the gRPC server",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    config.add_arguments(serve)
    demo = sub.add_parser("demo", help="start a server on a film catalog and play the scenario",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    config.add_arguments(demo)
    demo.add_argument("--data", default=None,
                      help="MovieLens-100K directory (RecBole atomic files or GroupLens "
                           "u.item/u.data); default ../shared/datasets/ml-100k or "
                           "./data/ml-100k if present, else the shipped demo catalog")
    demo.add_argument("--catalog", choices=("auto", "demo", "movielens"), default="auto",
                      help="auto: MovieLens-100K where found, else the shipped demo catalog "
                           "(films with generated ratings); demo or movielens: that one only")
    demo.add_argument("--background-events", type=int, default=20000,
                      help="ratings of other users streamed first (popularity)")
    evaluate = sub.add_parser(
        "eval", help="replay MovieLens-100K through a live server and score the recommendations",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    config.add_arguments(evaluate)
    evaluate.add_argument("--data", default=None, help="MovieLens-100K directory")
    evaluate.add_argument("--model", action="append", default=[],
                          help="a trained checkpoint to evaluate (repeatable)")
    evaluate.add_argument("--no-baseline", action="store_true",
                          help="skip the decayed-average baseline run")
    evaluate.add_argument("--out", default="bench/results", help="where results are written")
    evaluate.add_argument("--probes", default=None,
                          help="concept probes JSON in the public probes' layout (default: "
                               "the 12 public probes, as the shipped concept dataset holds them)")
    online = sub.add_parser(
        "eval-online", help="time-split online replay of MovieLens-100K: each later event is "
                            "predicted before it is ingested (HR@10, NDCG@10 vs popularity)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    config.add_arguments(online)
    online.add_argument("--data", default=None, help="MovieLens-100K directory")
    online.add_argument("--split-time", default="auto",
                        help="unix seconds; auto: the time at which 80%% of the events are past")
    online.add_argument("--model", action="append", default=[],
                        help="a checkpoint trained on events before the split (repeatable)")
    online.add_argument("--max-events", type=int, default=5000,
                        help="later events scored (0: all of them)")
    online.add_argument("--valid-events", type=int, default=2000,
                        help="the past's last events, scored to choose the popularity weight")
    online.add_argument("--out", default="bench/results", help="where results are written")
    online.add_argument("--write-past", default="", metavar="DIR",
                        help="only write the events before the split (CSV) and the catalog "
                             "(JSONL) to DIR, to train a checkpoint on the past")
    concepts = sub.add_parser(
        "eval-concepts", help="state the labelled descriptions to a live server and score the "
                              "lists (disliked items, liked share, polarity inversions)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    config.add_arguments(concepts)
    concepts.add_argument("--split", choices=("dev", "test"), required=True,
                          help="dataset split (tune on dev; test is scored once, at the end)")
    concepts.add_argument("--catalog", choices=("movies", "music"), default="movies",
                          help="which rows and catalog: MovieLens-100K films or the music catalog")
    concepts.add_argument("--data", default=None,
                          help="MovieLens-100K directory (movies) or music catalog file (music)")
    concepts.add_argument("--synonyms", default=None,
                          help="synonyms JSON loaded through SetAttributeSynonyms, or 'none' "
                               "(without it: examples/movielens/ or examples/music/synonyms.json)")
    concepts.add_argument("--rows", default=None,
                          help="concept dataset JSONL (default: the shipped descriptions)")
    concepts.add_argument("--out", default="bench/results", help="where results are written")
    from interest_server.offline import bulk_import

    importer = sub.add_parser(
        "import", help="load a historical event log (CSV/TSV) through StreamEvents, resumably",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    bulk_import.add_arguments(importer)
    config.add_arguments(importer)
    args = parser.parse_args(argv)
    command_parser = {"serve": serve, "demo": demo, "eval": evaluate, "eval-online": online,
                      "eval-concepts": concepts, "import": importer}[args.command]
    try:
        settings = config.from_args(args)
        settings.resolved_redis_url()  # an unreadable --redis-url-file fails here, not later
    except ValueError as exc:  # a setting out of range: a usage error, not a traceback
        command_parser.error(str(exc))
    logs.configure(settings.log_level, settings.log_format)
    if args.command in ("serve", "demo"):  # eval and import --start bind loopback themselves
        problem = exposure_error(settings)
        if problem is not None:  # parser.error's exit code, without 60 lines of usage
            command_parser.exit(2, f"{command_parser.prog}: error: {problem}\n")
    if args.command == "import":
        return bulk_import.run(args, settings)
    if args.command == "serve":
        if settings.processes != 1:
            from interest_server.ops.supervisor import serve_processes

            return serve_processes(settings)
        return _serve(settings)
    if args.command == "eval":
        from interest_server.offline.evaluation import run_eval

        return run_eval(settings, args.data, args.model, args.out,
                        include_baseline=not args.no_baseline, probes_path=args.probes)
    if args.command == "eval-online":
        from interest_server.offline.online_replay import run_online_eval

        return run_online_eval(settings, args.data, args.split_time, args.model, args.out,
                               args.max_events, args.valid_events,
                               command="interest-server " + " ".join(args_in),
                               past_dir=args.write_past)
    if args.command == "eval-concepts":
        from interest_server.offline.eval_concepts import run_eval_concepts

        return run_eval_concepts(settings, args.split, args.catalog, args.data, args.synonyms,
                                 args.out, rows_path=args.rows)
    from interest_server.offline.demo import run_demo

    return run_demo(settings, args.data, args.background_events, args.catalog)


if __name__ == "__main__":
    sys.exit(main())
