"""Ergonomic wrapper around the interest.v1 stubs: deadlines, narrow retries, resumable streams."""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2, interest_pb2_grpc

logger = logging.getLogger(__name__)

EventLike: TypeAlias = interest_pb2.Event | Mapping[str, Any]
ItemLike: TypeAlias = interest_pb2.Item | Mapping[str, Any]

_T = TypeVar("_T")
_EVENT_KEYS = frozenset({"event_id", "user_id", "item_id", "type", "value", "timestamp_ms"})
_ITEM_KEYS = frozenset({"item_id", "text", "attributes"})
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
# Module-level indirection so tests can record backoff delays without patching time.sleep,
# which gRPC's own threads also use.
_sleep = time.sleep


class InterestError(Exception):
    """A failed call: the gRPC status code and details, kept from the grpc.RpcError."""

    def __init__(self, code: grpc.StatusCode, details: str, *, attempts: int = 1) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.attempts = attempts

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}"

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError, *, attempts: int = 1) -> InterestError:
        """Wrap an RpcError, keeping its status code and message."""
        return cls(_code(err), _details(err), attempts=attempts)


def _code(err: grpc.RpcError) -> grpc.StatusCode:
    # A plain RpcError (not a Call) carries no code; treat it as UNKNOWN, which is never retried.
    code = getattr(err, "code", None)
    return code() if callable(code) else grpc.StatusCode.UNKNOWN


def _details(err: grpc.RpcError) -> str:
    details = getattr(err, "details", None)
    return (details() if callable(details) else str(err)) or ""


def _enum_value(enum: EnumTypeWrapper, prefix: str, value: str | int, what: str) -> int:
    """Accept 'like', 'LIKE', 'EVENT_TYPE_LIKE' or the number for an enum field."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{what} must be a name or an int, not {value!r}")
    if isinstance(value, int):
        # Numbers pass unchecked so a client built from older stubs can send newer values.
        return value
    name = value.strip().upper().replace("-", "_")
    if not name.startswith(prefix):
        name = prefix + name
    try:
        return enum.Value(name)
    except ValueError:
        names = [v.name for v in enum.DESCRIPTOR.values]
        choices = [n[len(prefix):].lower() for n in names if not n.endswith("UNSPECIFIED")]
        raise ValueError(f"unknown {what} {value!r}; expected one of {choices}") from None


def make_event(
    user_id: str,
    item_id: str,
    type: str | int,  # named like the proto field and dict key, so make_event(**row) works
    value: float | None = None,
    *,
    event_id: str | None = None,
    timestamp_ms: int = 0,
) -> interest_pb2.Event:
    """Build an Event; a fresh uuid4 hex event_id is assigned when none is given."""
    event = interest_pb2.Event(
        event_id=event_id or uuid.uuid4().hex,
        user_id=user_id,
        item_id=item_id,
        type=_enum_value(interest_pb2.EventType, "EVENT_TYPE_", type, "event type"),
        timestamp_ms=int(timestamp_ms or 0),
    )
    if value is not None:
        event.value = float(value)
    return event


def _coerce_event(event: EventLike) -> interest_pb2.Event:
    if isinstance(event, interest_pb2.Event):
        return event
    if not isinstance(event, Mapping):
        raise TypeError(f"an event must be an interest_pb2.Event or a dict, not {event!r}")
    unknown = set(event) - _EVENT_KEYS
    if unknown:
        raise ValueError(f"unknown event field(s) {sorted(unknown)}; known: {sorted(_EVENT_KEYS)}")
    missing = [k for k in ("user_id", "item_id", "type") if k not in event]
    if missing:
        raise ValueError(f"event is missing {missing}: {dict(event)!r}")
    return make_event(
        event["user_id"],
        event["item_id"],
        event["type"],
        event.get("value"),
        event_id=event.get("event_id"),
        timestamp_ms=event.get("timestamp_ms") or 0,
    )


def _values(values: str | Iterable[str]) -> list[str]:
    # A bare string is one value, not a sequence of one-character values.
    return [values] if isinstance(values, str) else [str(v) for v in values]


def _attributes(
    attributes: Mapping[str, str | Iterable[str]] | Iterable[Any] | None,
) -> list[interest_pb2.Attribute]:
    if attributes is None:
        return []
    if isinstance(attributes, Mapping):
        return [interest_pb2.Attribute(name=n, values=_values(v)) for n, v in attributes.items()]
    out = []
    # Also the list shape json_format writes: [{"name": ..., "values": [...]}, ...].
    for attr in attributes:
        if isinstance(attr, interest_pb2.Attribute):
            out.append(attr)
        elif isinstance(attr, Mapping) and "name" in attr:
            out.append(interest_pb2.Attribute(name=attr["name"],
                                              values=_values(attr.get("values", []))))
        else:
            raise ValueError(f"bad attribute {attr!r}; expected {{name: [values]}}")
    return out


def make_item(
    item_id: str,
    text: str,
    attributes: Mapping[str, str | Iterable[str]] | Iterable[Any] | None = None,
) -> interest_pb2.Item:
    """Build an Item from an id, its text and attributes {name: [values]}."""
    return interest_pb2.Item(item_id=item_id, text=text, attributes=_attributes(attributes))


def _coerce_item(item: ItemLike) -> interest_pb2.Item:
    if isinstance(item, interest_pb2.Item):
        return item
    if not isinstance(item, Mapping):
        raise TypeError(f"an item must be an interest_pb2.Item or a dict, not {item!r}")
    unknown = set(item) - _ITEM_KEYS
    if unknown:
        raise ValueError(f"unknown item field(s) {sorted(unknown)}; known: {sorted(_ITEM_KEYS)}")
    if "item_id" not in item:
        raise ValueError(f"item is missing 'item_id': {dict(item)!r}")
    return make_item(item["item_id"], item.get("text", ""), item.get("attributes"))


def synonym_entries(
    mapping: Mapping[str, Mapping[str, Sequence[str]]],
) -> list[interest_pb2.AttributeSynonyms]:
    """``{attribute: {value: [synonym, ...]}}`` as request entries; TypeError on another shape."""
    if not isinstance(mapping, Mapping):
        raise TypeError("synonyms must map attribute -> {value: [synonym, ...]}")
    entries = []
    for attribute, values in mapping.items():
        if not isinstance(values, Mapping):
            raise TypeError(f"synonyms[{attribute!r}] must map value -> [synonym, ...]")
        for value, synonyms in values.items():
            if isinstance(synonyms, str) or not all(isinstance(x, str) for x in synonyms):
                raise TypeError(f"synonyms[{attribute!r}][{value!r}] must be a list of strings")
            entries.append(interest_pb2.AttributeSynonyms(
                attribute=attribute, value=value, synonyms=list(synonyms)))
    return entries


def _filters(
    filters: Mapping[str, str | Sequence[str]] | None,
) -> list[interest_pb2.AttributeFilter]:
    if not filters:
        return []
    return [interest_pb2.AttributeFilter(name=n, values=_values(v)) for n, v in filters.items()]


class _AckStream:
    """One StreamEvents call: a queue-fed request generator and a thread draining the acks."""

    _END = object()

    def __init__(self, start: Callable[[Iterator[interest_pb2.EventBatch]], Any]) -> None:
        self._send_q: queue.SimpleQueue[interest_pb2.EventBatch | None] = queue.SimpleQueue()
        self._recv_q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._call = start(self._requests())
        self._thread = threading.Thread(target=self._pump, name="interest-acks", daemon=True)
        self._thread.start()

    def _requests(self) -> Iterator[interest_pb2.EventBatch]:
        # gRPC consumes this on its own thread, so sending overlaps with receiving.
        while (batch := self._send_q.get()) is not None:
            yield batch

    def _pump(self) -> None:
        try:
            for ack in self._call:
                self._recv_q.put(ack)
        except grpc.RpcError as err:
            self._recv_q.put(err)
        else:
            self._recv_q.put(self._END)

    def send(self, batch: interest_pb2.EventBatch) -> None:
        self._send_q.put(batch)

    def close_send(self) -> None:
        self._send_q.put(None)

    def receive(self, timeout_s: float) -> interest_pb2.EventBatchAck | None:
        """The next batch ack; None at a clean end of stream. Raises the call's RpcError."""
        try:
            item = self._recv_q.get(timeout=timeout_s)
        except queue.Empty:
            raise InterestError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"no event ack within {timeout_s:g}s") from None
        if item is self._END:
            return None
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def close(self) -> None:
        # Release gRPC's request thread (blocked in _send_q.get) and end the call if still open.
        self._send_q.put(None)
        self._call.cancel()


PemSource: TypeAlias = bytes | str | Path
"""PEM data as bytes, or the path of a PEM file."""


def _pem(source: PemSource | None) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


def _channel_credentials(credentials: grpc.ChannelCredentials | None, tls: bool,
                         tls_ca: PemSource | None, tls_cert: PemSource | None,
                         tls_key: PemSource | None) -> grpc.ChannelCredentials | None:
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("a client certificate needs both tls_cert and tls_key")
    if not (tls or tls_ca is not None or tls_cert is not None):
        return credentials
    if credentials is not None:
        raise ValueError("give either credentials or tls/tls_ca/tls_cert/tls_key, not both")
    return grpc.ssl_channel_credentials(root_certificates=_pem(tls_ca),
                                        private_key=_pem(tls_key),
                                        certificate_chain=_pem(tls_cert))


TENANT_HEADER = "x-tenant-id"
# The server's rule (interest_server.keys.TENANT_PATTERN; the client does not depend on the
# server package): a bad name fails here, before any call.
_TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def _tenant_metadata(tenant: str | None) -> tuple[tuple[str, str], ...]:
    if tenant is None:
        return ()
    if not _TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(f"tenant {tenant!r}: 1-63 of a-z, 0-9, '_' and '-', starting with a "
                         "letter or digit")
    return ((TENANT_HEADER, tenant),)


def _auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    if token is None:
        return ()
    if not token.strip() or any(c.isspace() for c in token.strip()):
        raise ValueError("token must be a non-empty string without whitespace")
    return (("authorization", f"Bearer {token.strip()}"),)


class InterestClient:
    """Client for interest.v1.InterestService; a context manager, thread-safe for unary calls.

    Every call carries a deadline of ``timeout_s``. Only UNAVAILABLE is retried, up to
    ``max_attempts`` attempts with full-jitter exponential backoff; event writes are safe to
    retry because every event carries an id assigned before the first attempt.

    Security: ``tls=True`` (or any of ``tls_ca``/``tls_cert``) dials TLS, verifying the server
    with ``tls_ca`` (PEM bytes or a file path; default: the system roots); ``tls_cert`` and
    ``tls_key`` present a client certificate (mutual TLS); ``token`` is sent on every call,
    health checks included, as ``authorization: Bearer <token>``.

    Tenancy: ``tenant`` names the tenant (namespace) every call acts for, sent as
    ``x-tenant-id``; without it a call acts for the server's default tenant, or for the one
    tenant the token is scoped to.
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        options: Sequence[tuple[str, Any]] = (),
        tls: bool = False,
        tls_ca: PemSource | None = None,
        tls_cert: PemSource | None = None,
        tls_key: PemSource | None = None,
        token: str | None = None,
        tenant: str | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if backoff_initial_s < 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need 0 <= backoff_initial_s <= backoff_max_s")
        self.target = target
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self.tenant = tenant
        self._metadata = tuple(metadata) + _auth_metadata(token) + _tenant_metadata(tenant)
        credentials = _channel_credentials(credentials, tls, tls_ca, tls_cert, tls_key)
        # gRPC's own reconnect backoff starts at 1 s and fails fast meanwhile, which would use up
        # our retries while a restarted server is already back; pace it like our backoff instead.
        channel_options = {
            "grpc.initial_reconnect_backoff_ms": max(1, int(backoff_initial_s * 1000)),
            "grpc.max_reconnect_backoff_ms": max(1, int(backoff_max_s * 1000)),
        }
        channel_options.update(dict(options))
        opts = list(channel_options.items())
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        self._stub = interest_pb2_grpc.InterestServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._rng = random.Random()
        self._batch_prefix = uuid.uuid4().hex[:12]
        self._batch_counter = itertools.count(1)

    # -- plumbing -------------------------------------------------------------------------------

    def _backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**retry)]."""
        cap = min(self._backoff_max_s, self._backoff_initial_s * 2 ** min(retry, 32))
        return self._rng.uniform(0.0, cap)

    def _with_retry(self, name: str, attempt_fn: Callable[[], _T]) -> _T:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return attempt_fn()
            except grpc.RpcError as err:
                if _code(err) != _UNAVAILABLE or attempt == self.max_attempts:
                    raise InterestError.from_rpc_error(err, attempts=attempt) from err
                delay = self._backoff(attempt - 1)
                logger.debug("%s: UNAVAILABLE (%s), attempt %d/%d, retrying in %.3fs",
                             name, _details(err), attempt, self.max_attempts, delay)
                _sleep(delay)
        raise AssertionError("unreachable")

    def _unary(self, name: str, request: Any) -> Any:
        method = getattr(self._stub, name)
        return self._with_retry(
            name, lambda: method(request, timeout=self.timeout_s, metadata=self._metadata))

    def _next_batch_id(self) -> str:
        return f"{self._batch_prefix}-{next(self._batch_counter)}"

    def _event_batch(self, events: Iterable[EventLike]) -> interest_pb2.EventBatch:
        batch = interest_pb2.EventBatch(batch_id=self._next_batch_id())
        # extend() copies, so filling in ids below never mutates the caller's messages.
        batch.events.extend(_coerce_event(e) for e in events)
        for event in batch.events:
            if not event.event_id:
                event.event_id = uuid.uuid4().hex
        return batch

    # -- events ---------------------------------------------------------------------------------

    def ingest(self, events: Sequence[EventLike]) -> interest_pb2.EventBatchAck:
        """Send one batch with IngestEvents; event ids are assigned where missing."""
        batch = self._event_batch(events)
        return self._unary("IngestEvents", batch)

    def stream_events(
        self,
        events: Iterable[EventLike],
        *,
        batch_size: int = 100,
        max_in_flight_batches: int = 8,
    ) -> Iterator[interest_pb2.EventAck]:
        """Stream events in batches and yield one EventAck per event, in input order.

        At most ``max_in_flight_batches`` batches are unacknowledged at once, and input is read
        only when a slot is free. If the stream breaks with UNAVAILABLE it is reopened with
        backoff and every unacknowledged batch is resent with the same event ids (the server
        answers DUPLICATE for those that had landed); after ``max_attempts`` consecutive
        attempts without an ack the last error is raised. The stream has no overall deadline
        (its length is the input's); instead every ack must come within ``timeout_s`` of the
        previous one, else InterestError(DEADLINE_EXCEEDED).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if max_in_flight_batches < 1:
            raise ValueError("max_in_flight_batches must be >= 1")
        return self._stream_events(iter(events), batch_size, max_in_flight_batches)

    def _stream_events(
        self, source: Iterator[EventLike], batch_size: int, window: int
    ) -> Iterator[interest_pb2.EventAck]:
        # Sent and not yet yielded, in input order; counts against the window until yielded.
        pending: collections.OrderedDict[str, interest_pb2.EventBatch] = collections.OrderedDict()
        acked: dict[str, interest_pb2.EventBatchAck] = {}
        exhausted = False
        failures = 0
        while True:
            stream = _AckStream(lambda reqs: self._stub.StreamEvents(reqs, metadata=self._metadata))
            progressed = False
            try:
                for batch_id, batch in pending.items():
                    if batch_id not in acked:
                        stream.send(batch)
                if exhausted:
                    stream.close_send()
                while True:
                    while not exhausted and len(pending) < window:
                        chunk = list(itertools.islice(source, batch_size))
                        if not chunk:
                            exhausted = True
                            stream.close_send()
                            break
                        batch = self._event_batch(chunk)
                        pending[batch.batch_id] = batch
                        stream.send(batch)
                    if not pending:
                        break
                    ack = stream.receive(self.timeout_s)
                    if ack is None:
                        raise InterestError(
                            grpc.StatusCode.INTERNAL,
                            f"server ended the stream with {len(pending) - len(acked)} "
                            "batch(es) unacknowledged")
                    _check_ack(ack, pending, acked)
                    acked[ack.batch_id] = ack
                    progressed = True
                    # Acks may arrive out of order; yield strictly in input order.
                    while pending and next(iter(pending)) in acked:
                        batch_id, _ = pending.popitem(last=False)
                        yield from acked.pop(batch_id).acks
                _finish(stream, self.timeout_s)
                return
            except grpc.RpcError as err:
                if _code(err) != _UNAVAILABLE:
                    raise InterestError.from_rpc_error(err) from err
                failures = 1 if progressed else failures + 1
                if failures >= self.max_attempts:
                    raise InterestError.from_rpc_error(err, attempts=failures) from err
                delay = self._backoff(failures - 1)
                logger.info("event stream broke (%s); resending %d batch(es) in %.3fs",
                            _details(err), len(pending) - len(acked), delay)
                _sleep(delay)
            finally:
                stream.close()

    # -- interests and recommendations ----------------------------------------------------------

    def encode_interest(
        self, user_id: str, text: str, mode: str | int = "replace"
    ) -> interest_pb2.EncodeInterestResponse:
        """Encode a free-text description into concepts; mode "replace" or "merge"."""
        request = interest_pb2.EncodeInterestRequest(
            user_id=user_id,
            text=text,
            mode=_enum_value(interest_pb2.EncodeMode, "ENCODE_MODE_", mode, "encode mode"),
        )
        return self._unary("EncodeInterest", request)

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        theta: float | None = None,
        concept_weight: float | None = None,
        exclude_consumed: bool | None = None,
        exclude_item_ids: Sequence[str] = (),
        include: Mapping[str, Sequence[str]] | None = None,
        exclude: Mapping[str, Sequence[str]] | None = None,
        popularity_weight: float | None = None,
    ) -> interest_pb2.RecommendResponse:
        """Rank the catalog for a user; unset options take the server's defaults."""
        options = interest_pb2.RecommendOptions(
            exclude_item_ids=list(exclude_item_ids),
            include=_filters(include),
            exclude=_filters(exclude),
        )
        if theta is not None:
            options.theta = theta
        if concept_weight is not None:
            options.concept_weight = concept_weight
        if exclude_consumed is not None:
            options.exclude_consumed = exclude_consumed
        if popularity_weight is not None:
            options.popularity_weight = popularity_weight
        request = interest_pb2.RecommendRequest(user_id=user_id, k=k, options=options)
        return self._unary("Recommend", request)

    # -- catalog --------------------------------------------------------------------------------

    def upsert_items(
        self, items: Iterable[ItemLike], *, batch_size: int = 256
    ) -> interest_pb2.UpsertItemsResponse:
        """Add or replace items, one request message per batch (retried whole: upsert is
        idempotent)."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        # Materialised up front so a retry can resend exactly the same messages.
        requests = [
            interest_pb2.UpsertItemsRequest(items=[_coerce_item(i) for i in chunk])
            for chunk in _chunks(iter(items), batch_size)
        ]
        return self._with_retry(
            "UpsertItems",
            lambda: self._stub.UpsertItems(
                iter(requests), timeout=self.timeout_s, metadata=self._metadata),
        )

    def delete_items(self, item_ids: Sequence[str]) -> interest_pb2.DeleteItemsResponse:
        """Remove items from the catalog."""
        return self._unary("DeleteItems", interest_pb2.DeleteItemsRequest(item_ids=list(item_ids)))

    def set_attribute_synonyms(
        self, mapping: Mapping[str, Mapping[str, Sequence[str]]]
    ) -> interest_pb2.SetAttributeSynonymsResponse:
        """Replace the synonyms of attribute values, ``{attribute: {value: [synonym, ...]}}``
        (the shape of ``interest-client set-synonyms --file``); an empty list deletes the
        value's list, values not named keep theirs. Safe to retry: the call replaces."""
        request = interest_pb2.SetAttributeSynonymsRequest(entries=synonym_entries(mapping))
        return self._unary("SetAttributeSynonyms", request)

    # -- users ----------------------------------------------------------------------------------

    def get_user_state(
        self, user_id: str, include_vector: bool = False
    ) -> interest_pb2.GetUserStateResponse:
        """Read a user's stored state."""
        request = interest_pb2.GetUserStateRequest(user_id=user_id, include_vector=include_vector)
        return self._unary("GetUserState", request)

    def delete_user(self, user_id: str) -> interest_pb2.DeleteUserResponse:
        """Erase everything stored about a user."""
        return self._unary("DeleteUser", interest_pb2.DeleteUserRequest(user_id=user_id))

    # -- health and lifecycle -------------------------------------------------------------------

    def health(self, service: str = "") -> str:
        """The grpc.health.v1 status name: "SERVING", "NOT_SERVING", ..."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = self._with_retry(
            "Health.Check",
            lambda: self._health.Check(request, timeout=self.timeout_s, metadata=self._metadata),
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_ready(self, timeout_s: float = 60.0, service: str = "") -> None:
        """Poll health until SERVING; InterestError(DEADLINE_EXCEEDED) after ``timeout_s``."""
        request = health_pb2.HealthCheckRequest(service=service)
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        for retry in itertools.count():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                # wait_for_ready: wait for a connection instead of failing fast while it is down.
                response = self._health.Check(
                    request, timeout=min(self.timeout_s, remaining), metadata=self._metadata,
                    wait_for_ready=True)
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                if last == "SERVING":
                    return
            except grpc.RpcError as err:
                # NOT_FOUND: the server has not registered the service's status yet.
                if _code(err) not in (_UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                      grpc.StatusCode.NOT_FOUND):
                    raise InterestError.from_rpc_error(err) from err
                last = f"{_code(err).name}: {_details(err)}"
            _sleep(min(self._backoff(retry), max(0.0, deadline - time.monotonic())))
        raise InterestError(grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"{self.target} not SERVING after {timeout_s:g}s (last: {last})")

    def close(self) -> None:
        """Close the channel; calls in progress are cancelled."""
        self._channel.close()

    def __enter__(self) -> InterestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _chunks(source: Iterator[_T], size: int) -> Iterator[list[_T]]:
    # itertools.batched needs Python 3.12; the project supports 3.11.
    while chunk := list(itertools.islice(source, size)):
        yield chunk


def _check_ack(
    ack: interest_pb2.EventBatchAck,
    pending: Mapping[str, interest_pb2.EventBatch],
    acked: Mapping[str, interest_pb2.EventBatchAck],
) -> None:
    # A mismatched ack would make the in-order yield lie about which event it answers.
    batch = pending.get(ack.batch_id)
    if batch is None or ack.batch_id in acked:
        raise InterestError(grpc.StatusCode.INTERNAL,
                            f"ack for unknown or already acknowledged batch {ack.batch_id!r}")
    if len(ack.acks) != len(batch.events):
        raise InterestError(grpc.StatusCode.INTERNAL,
                            f"ack for batch {ack.batch_id!r} has {len(ack.acks)} acks "
                            f"for {len(batch.events)} events")


def _finish(stream: _AckStream, timeout_s: float) -> None:
    """Wait for the server to close a fully acknowledged stream (we already half-closed)."""
    try:
        extra = stream.receive(timeout_s)
    except (grpc.RpcError, InterestError) as err:
        # Everything was acknowledged, so a late failure loses nothing.
        logger.debug("event stream ended after its last ack with %s", err)
        return
    if extra is not None:
        raise InterestError(grpc.StatusCode.INTERNAL,
                            f"ack for unknown batch {extra.batch_id!r} after the last batch")
