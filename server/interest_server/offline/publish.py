"""`interest-server publish | rollback | unpublish`: a tenant's live interest model in Redis.

Every replica serving the tenant follows the pointer and switches within seconds, without a
restart (engine/model_follower.py; docs/models.md, "Publishing a model live"). These commands
write to Redis, so they need its URL: whoever holds it may change the model.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_ERROR = 1
COMMANDS = ("publish", "rollback", "unpublish")


def _parser(command: str) -> argparse.ArgumentParser:
    about = {
        "publish": "Validate a checkpoint written by `interest-server train` and make it the "
                   "tenant's interest model on every replica (the last "
                   "few published versions are kept for rollback).",
        "rollback": "Withdraw the tenant's current published model and make the previous one "
                    "current again on every replica.",
        "unpublish": "Withdraw every published model of the tenant: replicas return to their "
                     "configured model (--interest-model-path, else the decayed average).",
    }[command]
    parser = argparse.ArgumentParser(prog=f"interest-server {command}", description=about,
                                     epilog="Exit codes: 0 done; 1 refused or failed; 2 usage.")
    if command == "publish":
        parser.add_argument("checkpoint", help="checkpoint file (interest-server train --out)")
    parser.add_argument("--tenant", default=os.environ.get("INTEREST_TENANT") or "default",
                        help="tenant whose model changes (env INTEREST_TENANT)")
    parser.add_argument("--redis-url", default=os.environ.get("INTEREST_REDIS_URL", ""),
                        help="the servers' Redis (env INTEREST_REDIS_URL)")
    parser.add_argument("--redis-url-file", default="", metavar="FILE",
                        help="file holding the Redis URL, instead of --redis-url")
    parser.add_argument("--redis-cluster", action="store_true",
                        help="the Redis URL names one node of a Redis Cluster")
    return parser


def validate_checkpoint(path: Path) -> tuple[str, str, bytes]:
    """(version, text model id, bytes) of a checkpoint file; ValueError saying why it is not
    one. Loaded as replicas load it (weights only: nothing in the file runs)."""
    from interest_server.model.sequence_model import SequenceInterestModel

    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        model = SequenceInterestModel.load(path)
    except Exception as exc:  # whatever torch or the loader says, the file is not usable
        raise ValueError(f"{path} is not a sequence-model checkpoint written by "
                         f"`interest-server train` ({exc.__class__.__name__}: "
                         f"{str(exc)[:300]})") from None
    text_model = model.text_model_id
    if not isinstance(text_model, str) or not text_model:
        raise ValueError(f"{path} does not record the text model it was trained on "
                         f"(text_model_id); replicas could not check it against their encoder")
    return model.version, text_model, blob


def main(command: str, argv: Sequence[str]) -> int:
    """Entry point of one of COMMANDS."""
    parser = _parser(command)
    args = parser.parse_args(argv)
    if args.redis_url and args.redis_url_file:
        parser.error("give --redis-url or --redis-url-file, not both")
    if not (args.redis_url or args.redis_url_file):
        parser.error("give --redis-url URL or --redis-url-file FILE (the servers' Redis)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from interest_server.config import Settings
    from interest_server.state.keys import KeySpace
    from interest_server.state.model_registry import (
        ModelRegistry,
        NothingToRollBack,
        RegistryBusy,
    )
    from interest_server.state.redis_conn import REDIS_ERRORS, connect_redis

    try:
        keys = KeySpace(args.tenant)
        url = Settings(redis_url=args.redis_url,
                       redis_url_file=args.redis_url_file).resolved_redis_url()
    except ValueError as exc:
        parser.error(str(exc))
    try:
        if command == "publish":
            version, text_model, blob = validate_checkpoint(Path(args.checkpoint))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    tenant = keys.tenant
    try:
        registry = ModelRegistry(connect_redis(url, timeout_s=30.0, cluster=args.redis_cluster),
                                 keys)
        if command == "publish":
            history = registry.publish(version, blob)
            print(f"tenant {tenant}: published {version} (trained on text vectors of "
                  f"{text_model}); replicas switch within seconds. History, current first: "
                  f"{', '.join(history)}")
        elif command == "rollback":
            withdrawn, current = registry.rollback()
            print(f"tenant {tenant}: rolled back to {current} ({withdrawn} withdrawn); "
                  f"replicas switch within seconds. History, current first: "
                  f"{', '.join(registry.history())}")
        else:
            withdrawn_all = registry.unpublish()
            if withdrawn_all:
                print(f"tenant {tenant}: withdrew {', '.join(withdrawn_all)}; replicas return "
                      f"to their configured model within seconds")
            else:
                print(f"tenant {tenant}: no published model; nothing changed")
    except NothingToRollBack as nothing:
        have = (f"its only published version is {nothing.history[0]}" if nothing.history
                else "it has no published model")
        print(f"error: nothing to roll back to for tenant {tenant}: {have}. "
              f"`interest-server unpublish` returns the replicas to their configured model",
              file=sys.stderr)
        return EXIT_ERROR
    except (*REDIS_ERRORS, ValueError, RegistryBusy) as exc:
        print(f"error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


__all__ = ["COMMANDS", "main", "validate_checkpoint"]
