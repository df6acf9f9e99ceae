"""Logging setup: plain text or one JSON object per line, each record with its call's request id."""

from __future__ import annotations

import json
import logging
import string
import time
import uuid
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the RPC the current thread serves (set by metrics.ObservabilityInterceptor)."""
method: ContextVar[str | None] = ContextVar("rpc_method", default=None)
"""The full method name of that RPC."""

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s"
_REQUEST_ID_CHARS = frozenset(string.ascii_letters + string.digits + "-_.:")
MAX_REQUEST_ID_LENGTH = 64


def new_request_id(incoming: str | None = None) -> str:
    """The caller's `x-request-id` when it is short and plain, else a fresh random one.

    Incoming ids are restricted to ASCII letters, digits, '-', '_', '.', ':' (at most 64), so a
    caller cannot forge log lines.
    """
    if incoming and len(incoming) <= MAX_REQUEST_ID_LENGTH and set(incoming) <= _REQUEST_ID_CHARS:
        return incoming
    return uuid.uuid4().hex[:16]


class _RequestIdFilter(logging.Filter):
    """Adds `rid` (" [rid]" or "") for the text format; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.rid = f" [{rid}]" if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id/method when in a call,
    exc (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
            out["method"] = method.get()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger (replacing its handlers) for `fmt`: 'text' or 'json'."""
    if fmt not in FORMATS:
        raise ValueError(f"log_format must be one of {FORMATS} (got {fmt!r})")
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
