"""Bad input on every request message: table-driven cases and hypothesis fuzzing (>= 10,000)."""

from __future__ import annotations

import logging
import math
import os
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import redis
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer
from interest_server.state.keys import CATALOG_CHANGES, CATALOG_IDS, POPULARITY, item_key, user_keys

from ..integration.conftest import catalog_items, event, settings_for
from .conftest import keyspace

C = grpc.StatusCode
LIMITS = settings_for("redis://unused")  # the module server's limits
MAX_TIMESTAMP_MS = 253_402_300_799_999  # the documented upper bound (9999-12-31)
T = 60  # seconds: a deadline per call that only a hang would reach
CATALOG = [i.item_id for i in catalog_items()]
USERS = ["fz-u1", "fz-u2", "fz{u}", "%7B", "ü-ß"]
FZ_ITEMS = ["fz-i1", "fz-i2", "fz{i}"]
EVENT_IDS = ["e1", "e2", "e3"]
FUZZ_SCALE = float(os.environ.get("INTEREST_FUZZ_SCALE", "1"))
"""Multiplies every fuzz test's example count (e.g. 10 for a long local run)."""
CASES: dict[str, int] = {}
"""Fuzz test name -> generated cases run (checked by test_at_least_10000_cases_ran)."""
FUZZ_EXAMPLES = {"ingest": 1600, "stream": 600, "encode": 1200, "recommend": 1600,
                 "upsert": 800, "delete_items": 1000, "get_user_state": 1100,
                 "delete_user": 1100, "raw": 1600}


def fuzz_settings(name: str) -> settings:
    return settings(max_examples=max(1, int(FUZZ_EXAMPLES[name] * FUZZ_SCALE)),
                    deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


# ---- the harness: one server, the keyspace compared around every case -------------------------

@dataclass
class Outcome:
    """What a call returned: the status code, its details and the response(s)."""

    code: grpc.StatusCode
    details: str = ""
    response: Any = None
    acks: list[pb.EventBatchAck] = field(default_factory=list)


class ErrorLog(logging.Handler):
    """Collects the server's ERROR records (a fault: INTERNAL, a traceback in the log)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Harness:
    """Calls one server and checks that nothing outside `allowed` keys changed in Redis and
    that the server logged no fault, then puts the keyspace back as it was, so every case
    starts from the same baseline."""

    def __init__(self, server: RunningServer, client: redis.Redis) -> None:
        self.server = server
        self.redis = client
        self.errors = ErrorLog()
        self.channel = grpc.insecure_channel(server.target)
        self.stub = interest_pb2_grpc.InterestServiceStub(self.channel)
        self.baseline = keyspace(client)

    def call(self, send: Callable[[], Any]) -> Outcome:
        try:
            return Outcome(C.OK, response=send())
        except grpc.RpcError as err:
            return Outcome(err.code(), err.details() or "")

    def stream(self, send: Callable[[], Iterator[pb.EventBatchAck]]) -> Outcome:
        acks: list[pb.EventBatchAck] = []
        try:
            for ack in send():
                acks.append(ack)
        except grpc.RpcError as err:
            return Outcome(err.code(), err.details() or "", acks=acks)
        return Outcome(C.OK, acks=acks)

    def settle(self, allowed: set[bytes]) -> None:
        """Assert only `allowed` keys changed (none for a rejected request), then restore."""
        after = keyspace(self.redis)
        changed = {k for k in after.keys() | self.baseline.keys()
                   if after.get(k) != self.baseline.get(k)}
        faults, self.errors.records = self.errors.records, []
        try:
            assert not faults, [f"{r.getMessage()}: {r.exc_info}" for r in faults]
            assert changed <= allowed, f"unexpected change of {sorted(changed - allowed)}"
        finally:
            if changed:
                pipe = self.redis.pipeline(transaction=False)
                for key in changed:
                    if key in self.baseline:
                        pipe.restore(key, 0, self.baseline[key], replace=True)
                    else:
                        pipe.delete(key)
                pipe.execute()
                # A restored hash can serialize its fields in another order: same content,
                # other bytes. Its new DUMP is the baseline from now on.
                for key in changed & self.baseline.keys():
                    self.baseline[key] = self.redis.dump(key)

    def assert_serving(self) -> None:
        health = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert self.stub.Recommend(pb.RecommendRequest(user_id="alive", k=3), timeout=T).items


@pytest.fixture(scope="module")
def harness(module_server: RunningServer, module_redis: redis.Redis) -> Iterator[Harness]:
    h = Harness(module_server, module_redis)
    server_log = logging.getLogger("interest_server")
    server_log.addHandler(h.errors)
    try:
        yield h
    finally:
        server_log.removeHandler(h.errors)
        h.channel.close()


def expect_rejected(out: Outcome, prefix: str) -> None:
    """INVALID_ARGUMENT whose message starts with the field it names."""
    assert out.code == C.INVALID_ARGUMENT, (out.code, out.details, prefix)
    assert out.details.startswith(prefix), (out.details, prefix)


def user_key_set(user_ids: Iterator[str] | list[str]) -> set[bytes]:
    return {k.encode() for u in user_ids for k in user_keys(u).all()}


CATALOG_KEYS = {CATALOG_IDS.encode(), CATALOG_CHANGES.encode()}


# ---- an independent statement of the documented limits (the oracle) ---------------------------

def bad_id(value: str) -> bool:
    return not value or len(value) > LIMITS.max_id_length or not value.isprintable()


def bad_text(value: str, limit: int) -> bool:
    return not value.strip() or len(value) > limit


def event_problem(ev: pb.Event) -> str | None:
    """The first bad field of an event, in the order the proto declares them."""
    for name in ("event_id", "user_id", "item_id"):
        if bad_id(getattr(ev, name)):
            return name
    if not 1 <= ev.type <= 7:
        return "type"
    if ev.HasField("value") and (not math.isfinite(ev.value) or abs(ev.value) > 1e6):
        return "value"
    if ev.type == pb.EVENT_TYPE_RATING and not ev.HasField("value"):
        return "value"
    if not 0 <= ev.timestamp_ms <= MAX_TIMESTAMP_MS:
        return "timestamp_ms"
    return None


def batch_problem(batch: pb.EventBatch) -> str | None:
    return "events" if not 1 <= len(batch.events) <= LIMITS.max_events_per_batch else None


def filter_problem(name: str, filters: Any) -> str | None:
    if len(filters) > LIMITS.max_attributes_per_item:
        return name
    for f in filters:
        if (bad_id(f.name) or not 1 <= len(f.values) <= LIMITS.max_attributes_per_item
                or any(bad_id(v) for v in f.values)):
            return name
    return None


def recommend_problem(r: pb.RecommendRequest) -> str | None:
    o = r.options
    if bad_id(r.user_id):
        return "user_id"
    if not 0 <= r.k <= LIMITS.max_k:
        return "k "
    if o.HasField("theta") and not -1.0 <= o.theta <= 1.0:  # NaN fails both comparisons
        return "options.theta"
    if o.HasField("concept_weight") and not 0.0 <= o.concept_weight <= 100.0:
        return "options.concept_weight"
    if (len(o.exclude_item_ids) > LIMITS.max_k * 10
            or any(bad_id(i) for i in o.exclude_item_ids)):
        return "options.exclude_item_ids"
    return (filter_problem("options.include", o.include)
            or filter_problem("options.exclude", o.exclude))


def encode_problem(r: pb.EncodeInterestRequest) -> str | None:
    if bad_id(r.user_id):
        return "user_id"
    if bad_text(r.text, LIMITS.max_text_length):
        return "text"
    if r.mode not in (0, 1, 2):
        return "mode"
    return None


def upsert_problem(m: pb.UpsertItemsRequest) -> str | None:
    if not 1 <= len(m.items) <= LIMITS.max_items_per_upsert:
        return "items"
    for item in m.items:
        if bad_id(item.item_id):
            return "item_id"
        if bad_text(item.text, LIMITS.max_item_text_length):
            return f"items[{item.item_id}].text"
        prefix = f"items[{item.item_id}].attributes"
        if len(item.attributes) > LIMITS.max_attributes_per_item:
            return prefix
        merged: dict[str, set[str]] = {}
        for a in item.attributes:
            merged.setdefault(a.name, set()).update(a.values)
            if (bad_id(a.name) or len(a.values) > LIMITS.max_attributes_per_item
                    or any(bad_id(v) for v in a.values)
                    or len(merged[a.name]) > LIMITS.max_attributes_per_item):
                return prefix
    return None


def ids_problem(ids: Any) -> str | None:
    if not 1 <= len(ids) <= LIMITS.max_items_per_upsert or any(bad_id(i) for i in ids):
        return "item_ids"
    return None


# ---- the checks, one per RPC (the table and the fuzzers share them) ----------------------------

def check_event_acks(batches: list[pb.EventBatch], acks: list[pb.EventBatchAck]) -> set[bytes]:
    """Per-event outcomes against the oracle; returns the keys the applied events may touch."""
    applied_users = []
    for batch, ack in zip(batches, acks, strict=False):
        assert ack.batch_id == batch.batch_id
        assert len(ack.acks) == len(batch.events)
        for ev, a in zip(batch.events, ack.acks, strict=True):
            assert a.event_id == ev.event_id
            problem = event_problem(ev)
            if problem is not None:
                assert a.status == pb.ACK_STATUS_REJECTED, (ev, a)
                assert a.reason == pb.REJECT_REASON_INVALID_FIELD, (ev, a)
                assert a.message.startswith(problem), (a.message, problem)
            else:
                assert a.status in (pb.ACK_STATUS_APPLIED, pb.ACK_STATUS_DUPLICATE) or (
                    a.reason in (pb.REJECT_REASON_UNKNOWN_ITEM,
                                 pb.REJECT_REASON_CONFLICTING_REPLAY)), (ev, a)
                if a.status == pb.ACK_STATUS_APPLIED:
                    applied_users.append(ev.user_id)
        assert (ack.applied, ack.duplicates, ack.rejected) == tuple(
            sum(a.status == s for a in ack.acks) for s in (
                pb.ACK_STATUS_APPLIED, pb.ACK_STATUS_DUPLICATE, pb.ACK_STATUS_REJECTED))
    return user_key_set(applied_users) | ({POPULARITY.encode()} if applied_users else set())


def check_ingest(h: Harness, batch: pb.EventBatch, send: Callable[[], Any] | None = None
                 ) -> Outcome:
    out = h.call(send or (lambda: h.stub.IngestEvents(batch, timeout=T)))
    allowed: set[bytes] = set()
    problem = batch_problem(batch)
    if problem:
        expect_rejected(out, problem)
    else:
        assert out.code == C.OK, (out.code, out.details)
        allowed = check_event_acks([batch], [out.response])
    h.settle(allowed)
    return out


def check_stream(h: Harness, batches: list[pb.EventBatch],
                 send: Callable[[], Iterator[pb.EventBatchAck]] | None = None) -> Outcome:
    out = h.stream(send or (lambda: h.stub.StreamEvents(iter(batches), timeout=T)))
    bad = next((n for n, b in enumerate(batches) if batch_problem(b)), None)
    if bad is None:
        assert out.code == C.OK, (out.code, out.details)
        assert len(out.acks) == len(batches)
    else:  # a bad batch ends the stream; every batch before it was acked
        expect_rejected(out, "events")
        assert len(out.acks) == bad
    h.settle(check_event_acks(batches, out.acks))
    return out


def check_encode(h: Harness, r: pb.EncodeInterestRequest,
                 send: Callable[[], Any] | None = None) -> Outcome:
    out = h.call(send or (lambda: h.stub.EncodeInterest(r, timeout=T)))
    problem = encode_problem(r)
    if problem:
        expect_rejected(out, problem)
    else:
        assert out.code == C.OK, (out.code, out.details)
        assert out.response.user_id == r.user_id
        for c in out.response.stored:
            assert math.isfinite(c.weight) and c.polarity in (1, 2)
    h.settle(user_key_set([r.user_id]) if not problem else set())
    return out


def check_recommend(h: Harness, r: pb.RecommendRequest,
                    send: Callable[[], Any] | None = None) -> Outcome:
    out = h.call(send or (lambda: h.stub.Recommend(r, timeout=T)))
    problem = recommend_problem(r)
    if problem:
        expect_rejected(out, problem)
    else:
        assert out.code == C.OK, (out.code, out.details)
        items = out.response.items
        assert len(items) <= (r.k or LIMITS.default_k)
        assert len({i.item_id for i in items}) == len(items)
        assert all(math.isfinite(i.score) for i in items)
        assert not {i.item_id for i in items} & set(r.options.exclude_item_ids)
    h.settle(set())  # a read never writes
    return out


def check_upsert(h: Harness, messages: list[pb.UpsertItemsRequest],
                 send: Callable[[], Any] | None = None) -> Outcome:
    out = h.call(send or (lambda: h.stub.UpsertItems(iter(messages), timeout=T)))
    bad = next((n for n, m in enumerate(messages) if upsert_problem(m)), None)
    # UpsertItems applies each message as it arrives: one that fails validation writes
    # nothing, the ones before it stay applied (upserts are idempotent).
    written = messages if bad is None else messages[:bad]
    allowed = {item_key(i.item_id).encode() for m in written for i in m.items}
    if bad is not None:
        expect_rejected(out, upsert_problem(messages[bad]) or "")
    else:
        assert out.code == C.OK, (out.code, out.details)
        assert out.response.upserted == sum(len(m.items) for m in messages)
    h.settle(allowed | CATALOG_KEYS if written else set())
    return out


def check_delete_items(h: Harness, r: pb.DeleteItemsRequest,
                       send: Callable[[], Any] | None = None) -> Outcome:
    out = h.call(send or (lambda: h.stub.DeleteItems(r, timeout=T)))
    problem = ids_problem(r.item_ids)
    if problem:
        expect_rejected(out, problem)
        allowed = set()
    else:
        assert out.code == C.OK, (out.code, out.details)
        allowed = {item_key(i).encode() for i in r.item_ids} | CATALOG_KEYS
    h.settle(allowed)
    return out


def check_get_user_state(h: Harness, r: pb.GetUserStateRequest,
                         send: Callable[[], Any] | None = None) -> Outcome:
    out = h.call(send or (lambda: h.stub.GetUserState(r, timeout=T)))
    if bad_id(r.user_id):
        expect_rejected(out, "user_id")
    else:
        assert out.code == C.OK, (out.code, out.details)
        assert out.response.user_id == r.user_id and out.response.version >= 0
    h.settle(set())
    return out


def check_delete_user(h: Harness, r: pb.DeleteUserRequest,
                      send: Callable[[], Any] | None = None) -> Outcome:
    out = h.call(send or (lambda: h.stub.DeleteUser(r, timeout=T)))
    if bad_id(r.user_id):
        expect_rejected(out, "user_id")
    else:
        assert out.code == C.OK, (out.code, out.details)
    h.settle(user_key_set([r.user_id]) if not bad_id(r.user_id) else set())
    return out


# ---- table-driven cases ------------------------------------------------------------------------

BIG = "x" * (LIMITS.max_message_bytes + 1024)  # one field over the gRPC message size limit
RATING_WITHOUT_VALUE = pb.Event(event_id="e", user_id="u", item_id="1", type=pb.EVENT_TYPE_RATING)

# (id, RPC, request or list of stream messages, expected code, what the details start with).
TABLE: list[tuple[str, str, Any, grpc.StatusCode, str]] = [
    ("ingest-no-events", "IngestEvents", pb.EventBatch(), C.INVALID_ARGUMENT, "events is empty"),
    ("ingest-1001-events", "IngestEvents",
     pb.EventBatch(events=[event(str(i), "u", "1") for i in range(1001)]), C.INVALID_ARGUMENT,
     "events has 1001 entries; the limit is 1000"),
    ("ingest-oversized", "IngestEvents", pb.EventBatch(batch_id=BIG), C.RESOURCE_EXHAUSTED, ""),
    ("stream-oversized", "StreamEvents", [pb.EventBatch(batch_id=BIG)], C.RESOURCE_EXHAUSTED,
     ""),
    ("stream-no-events", "StreamEvents", [pb.EventBatch()], C.INVALID_ARGUMENT, "events"),
    ("stream-1001-events", "StreamEvents",
     [pb.EventBatch(events=[event(str(i), "u", "1") for i in range(1001)])],
     C.INVALID_ARGUMENT, "events has 1001"),
    ("encode-empty-user", "EncodeInterest", pb.EncodeInterestRequest(text="I like films"),
     C.INVALID_ARGUMENT, "user_id is required"),
    ("encode-long-user", "EncodeInterest",
     pb.EncodeInterestRequest(user_id="u" * 129, text="I like films"), C.INVALID_ARGUMENT,
     "user_id is 129 characters; the limit is 128"),
    ("encode-control-user", "EncodeInterest",
     pb.EncodeInterestRequest(user_id="u\x1b[2J", text="I like films"), C.INVALID_ARGUMENT,
     "user_id contains control"),
    ("encode-bidi-user", "EncodeInterest",
     pb.EncodeInterestRequest(user_id="u\u202egnp.exe", text="I like films"),
     C.INVALID_ARGUMENT, "user_id contains control"),
    ("encode-blank-text", "EncodeInterest", pb.EncodeInterestRequest(user_id="u", text=" \n\t"),
     C.INVALID_ARGUMENT, "text is required"),
    ("encode-long-text", "EncodeInterest", pb.EncodeInterestRequest(user_id="u", text="a" * 2001),
     C.INVALID_ARGUMENT, "text is 2001 characters; the limit is 2000"),
    ("encode-unknown-mode", "EncodeInterest",
     pb.EncodeInterestRequest(user_id="u", text="I like films", mode=3), C.INVALID_ARGUMENT,
     "mode 3 is not a known EncodeMode"),
    ("encode-negative-mode", "EncodeInterest",
     pb.EncodeInterestRequest(user_id="u", text="I like films", mode=-1), C.INVALID_ARGUMENT,
     "mode -1"),
    ("encode-oversized", "EncodeInterest", pb.EncodeInterestRequest(user_id="u", text=BIG),
     C.RESOURCE_EXHAUSTED, ""),
    ("recommend-negative-k", "Recommend", pb.RecommendRequest(user_id="u", k=-1),
     C.INVALID_ARGUMENT, "k must be >= 0"),
    ("recommend-min-int32-k", "Recommend", pb.RecommendRequest(user_id="u", k=-2**31),
     C.INVALID_ARGUMENT, "k must be >= 0"),
    ("recommend-huge-k", "Recommend", pb.RecommendRequest(user_id="u", k=2**31 - 1),
     C.INVALID_ARGUMENT, "k is 2147483647; the limit is 1000"),
    ("recommend-nan-theta", "Recommend", pb.RecommendRequest(
        user_id="u", options=pb.RecommendOptions(theta=math.nan)), C.INVALID_ARGUMENT,
     "options.theta must be a finite number"),
    ("recommend-inf-weight", "Recommend", pb.RecommendRequest(
        user_id="u", options=pb.RecommendOptions(concept_weight=math.inf)), C.INVALID_ARGUMENT,
     "options.concept_weight"),
    ("recommend-too-many-excludes", "Recommend", pb.RecommendRequest(
        user_id="u", options=pb.RecommendOptions(exclude_item_ids=["1"] * 10_001)),
     C.INVALID_ARGUMENT, "options.exclude_item_ids has 10001 entries"),
    ("recommend-empty-filter", "Recommend", pb.RecommendRequest(
        user_id="u", options=pb.RecommendOptions(include=[pb.AttributeFilter(name="genre")])),
     C.INVALID_ARGUMENT, "options.include[genre].values is empty"),
    ("recommend-oversized", "Recommend", pb.RecommendRequest(user_id=BIG),
     C.RESOURCE_EXHAUSTED, ""),
    ("watch-empty-user", "WatchRecommendations", pb.WatchRecommendationsRequest(),
     C.INVALID_ARGUMENT, "user_id is required"),
    ("watch-huge-k", "WatchRecommendations",
     pb.WatchRecommendationsRequest(user_id="u", k=2**31 - 1), C.INVALID_ARGUMENT,
     "k is 2147483647; the limit is 1000"),
    ("watch-nan-theta", "WatchRecommendations", pb.WatchRecommendationsRequest(
        user_id="u", options=pb.RecommendOptions(theta=math.nan)), C.INVALID_ARGUMENT,
     "options.theta must be a finite number"),
    ("watch-huge-interval", "WatchRecommendations",
     pb.WatchRecommendationsRequest(user_id="u", min_interval_ms=2**32 - 1), C.INVALID_ARGUMENT,
     "min_interval_ms is 4294967295; the limit is 3600000"),
    ("watch-oversized", "WatchRecommendations", pb.WatchRecommendationsRequest(user_id=BIG),
     C.RESOURCE_EXHAUSTED, ""),
    ("upsert-no-items", "UpsertItems", [pb.UpsertItemsRequest()], C.INVALID_ARGUMENT,
     "items is empty"),
    ("upsert-1001-items", "UpsertItems",
     [pb.UpsertItemsRequest(items=[pb.Item(item_id="i", text="t")] * 1001)],
     C.INVALID_ARGUMENT, "items has 1001 entries"),
    ("upsert-no-text", "UpsertItems", [pb.UpsertItemsRequest(items=[pb.Item(item_id="i")])],
     C.INVALID_ARGUMENT, "items[i].text is required"),
    ("upsert-long-text", "UpsertItems",
     [pb.UpsertItemsRequest(items=[pb.Item(item_id="i", text="t" * 4001)])],
     C.INVALID_ARGUMENT, "items[i].text is 4001 characters"),
    ("upsert-control-id", "UpsertItems",
     [pb.UpsertItemsRequest(items=[pb.Item(item_id="i\x00", text="t")])],
     C.INVALID_ARGUMENT, "item_id contains control"),
    ("upsert-33-values", "UpsertItems", [pb.UpsertItemsRequest(items=[pb.Item(
        item_id="i", text="t", attributes=[pb.Attribute(name="g", values=[
            str(n) for n in range(33)])])])], C.INVALID_ARGUMENT, "items[i].attributes[g]"),
    ("upsert-repeated-name-past-limit", "UpsertItems", [pb.UpsertItemsRequest(items=[pb.Item(
        item_id="i", text="t", attributes=[
            pb.Attribute(name="g", values=[str(n) for n in range(20)]),
            pb.Attribute(name="g", values=[str(n) for n in range(20, 40)])])])],
     C.INVALID_ARGUMENT, "items[i].attributes[g].values has 40"),
    ("upsert-oversized", "UpsertItems",
     [pb.UpsertItemsRequest(items=[pb.Item(item_id="i", text=BIG)])], C.RESOURCE_EXHAUSTED,
     ""),
    ("delete-items-none", "DeleteItems", pb.DeleteItemsRequest(), C.INVALID_ARGUMENT,
     "item_ids is empty"),
    ("delete-items-1001", "DeleteItems", pb.DeleteItemsRequest(item_ids=["1"] * 1001),
     C.INVALID_ARGUMENT, "item_ids has 1001 entries"),
    ("delete-items-empty-id", "DeleteItems", pb.DeleteItemsRequest(item_ids=["1", ""]),
     C.INVALID_ARGUMENT, "item_ids is required"),
    ("delete-items-oversized", "DeleteItems", pb.DeleteItemsRequest(item_ids=[BIG]),
     C.RESOURCE_EXHAUSTED, ""),
    ("state-empty-user", "GetUserState", pb.GetUserStateRequest(), C.INVALID_ARGUMENT,
     "user_id is required"),
    ("state-newline-user", "GetUserState", pb.GetUserStateRequest(user_id="u\nv"),
     C.INVALID_ARGUMENT, "user_id contains control"),
    ("state-oversized", "GetUserState", pb.GetUserStateRequest(user_id=BIG),
     C.RESOURCE_EXHAUSTED, ""),
    ("delete-user-empty", "DeleteUser", pb.DeleteUserRequest(), C.INVALID_ARGUMENT,
     "user_id is required"),
    ("delete-user-long", "DeleteUser", pb.DeleteUserRequest(user_id="é" * 129),
     C.INVALID_ARGUMENT, "user_id is 129 characters"),
    ("delete-user-oversized", "DeleteUser", pb.DeleteUserRequest(user_id=BIG),
     C.RESOURCE_EXHAUSTED, ""),
    ("synonyms-empty", "SetAttributeSynonyms", pb.SetAttributeSynonymsRequest(),
     C.INVALID_ARGUMENT, "entries is empty"),
    ("synonyms-no-attribute", "SetAttributeSynonyms", pb.SetAttributeSynonymsRequest(
        entries=[pb.AttributeSynonyms(value="Mystery", synonyms=["悬疑"])]),
     C.INVALID_ARGUMENT, "entries[0].attribute is required"),
    ("synonyms-nul", "SetAttributeSynonyms", pb.SetAttributeSynonymsRequest(
        entries=[pb.AttributeSynonyms(attribute="genre", value="Mystery", synonyms=["a\x00"])]),
     C.INVALID_ARGUMENT, "entries[0].synonyms contains control"),
    ("synonyms-long", "SetAttributeSynonyms", pb.SetAttributeSynonymsRequest(
        entries=[pb.AttributeSynonyms(attribute="genre", value="Mystery", synonyms=["悬" * 129])]),
     C.INVALID_ARGUMENT, "entries[0].synonyms is 129 characters"),
    ("synonyms-oversized", "SetAttributeSynonyms", pb.SetAttributeSynonymsRequest(
        entries=[pb.AttributeSynonyms(attribute=BIG, value="v")]), C.RESOURCE_EXHAUSTED, ""),
]
REQUEST_TYPES = {m.name: (m.client_streaming, m.server_streaming,
                          getattr(pb, m.input_type.name), getattr(pb, m.output_type.name))
                 for m in pb.DESCRIPTOR.services_by_name["InterestService"].methods}


def raw_call(h: Harness, method: str, data: bytes) -> Callable[[], Any]:
    """Send bytes as the request of `method` (one message for a request stream)."""
    client_streaming, server_streaming, _, response_type = REQUEST_TYPES[method]
    path = f"/interest.v1.InterestService/{method}"
    if client_streaming and server_streaming:
        return lambda: h.channel.stream_stream(
            path, response_deserializer=response_type.FromString)(iter([data]), timeout=T)
    if client_streaming:
        return lambda: h.channel.stream_unary(
            path, response_deserializer=response_type.FromString)(iter([data]), timeout=T)
    if server_streaming:
        return lambda: h.channel.unary_stream(
            path, response_deserializer=response_type.FromString)(data, timeout=T)
    return lambda: h.channel.unary_unary(
        path, response_deserializer=response_type.FromString)(data, timeout=T)


@pytest.mark.parametrize(("method", "request_", "code", "prefix"),
                         [case[1:] for case in TABLE], ids=[case[0] for case in TABLE])
def test_bad_request_table(harness: Harness, method: str, request_: Any, code: grpc.StatusCode,
                           prefix: str) -> None:
    stub = harness.stub
    if method == "StreamEvents":
        out = harness.stream(lambda: stub.StreamEvents(iter(request_), timeout=T))
    elif method == "UpsertItems":
        out = harness.call(lambda: stub.UpsertItems(iter(request_), timeout=T))
    elif method == "WatchRecommendations":
        out = harness.stream(lambda: stub.WatchRecommendations(request_, timeout=T))
    else:
        out = harness.call(lambda: getattr(stub, method)(request_, timeout=T))
    assert out.code == code, (out.code, out.details)
    assert out.details.startswith(prefix), out.details
    if code == C.RESOURCE_EXHAUSTED:
        assert "larger than max" in out.details
    harness.settle(set())
    harness.assert_serving()


BAD_EVENTS: list[tuple[pb.Event, str]] = [
    (event("", "u", "1"), "event_id is required"),
    (event("e" * 129, "u", "1"), "event_id is 129 characters"),
    (event("e", "", "1"), "user_id is required"),
    (event("e", "u\x00", "1"), "user_id contains control"),
    (event("e", "u", "\u2028"), "item_id contains control"),
    (event("e", "u", "1", kind=0), "type 0 is not a known event type"),
    (event("e", "u", "1", kind=99), "type 99 is not a known event type"),
    (event("e", "u", "1", kind=-3), "type -3"),
    (event("e", "u", "1", value=math.nan), "value must be a finite number"),
    (event("e", "u", "1", value=math.inf), "value must be a finite number"),
    (event("e", "u", "1", value=-math.inf), "value must be a finite number"),
    (event("e", "u", "1", value=1e6 + 1), "value must be a finite number"),
    (RATING_WITHOUT_VALUE, "value is required for EVENT_TYPE_RATING"),
    (event("e", "u", "1", ts=-1), "timestamp_ms must be epoch milliseconds"),
    (event("e", "u", "1", ts=2**63 - 1), "timestamp_ms must be epoch milliseconds"),
]


@pytest.mark.parametrize("rpc", ["IngestEvents", "StreamEvents"])
def test_bad_events_are_rejected_in_band_and_write_nothing(harness: Harness, rpc: str) -> None:
    batch = pb.EventBatch(batch_id="bad", events=[ev for ev, _ in BAD_EVENTS])
    if rpc == "IngestEvents":
        out = harness.call(lambda: harness.stub.IngestEvents(batch, timeout=T))
        acks = [out.response]
    else:
        out = harness.stream(lambda: harness.stub.StreamEvents(iter([batch]), timeout=T))
        acks = out.acks
    assert out.code == C.OK
    assert acks[0].rejected == len(BAD_EVENTS)
    for ack, (_, prefix) in zip(acks[0].acks, BAD_EVENTS, strict=True):
        assert ack.status == pb.ACK_STATUS_REJECTED
        assert ack.reason == pb.REJECT_REASON_INVALID_FIELD
        assert ack.message.startswith(prefix), ack.message
    harness.settle(set())  # all rejected: nothing may change


@pytest.mark.parametrize("ending", ["oversized", "cancelled"])
def test_a_stream_ended_by_the_client_or_transport_is_no_fault(harness: Harness,
                                                             ending: str) -> None:
    """Regression: a request stream that broke because the call was over (a message over the
    size limit, a client cancel) was logged as an INTERNAL fault with a traceback."""
    sent: queue.SimpleQueue[pb.EventBatch | None] = queue.SimpleQueue()

    def requests() -> Iterator[pb.EventBatch]:
        while (batch := sent.get()) is not None:
            yield batch

    call = harness.stub.StreamEvents(requests(), timeout=T)
    sent.put(pb.EventBatch(batch_id="ok", events=[event("c1", "fz-u1", "1")]))
    assert next(call).acks[0].status == pb.ACK_STATUS_APPLIED
    if ending == "oversized":
        sent.put(pb.EventBatch(batch_id=BIG))
    else:
        call.cancel()
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    sent.put(None)
    expected = C.RESOURCE_EXHAUSTED if ending == "oversized" else C.CANCELLED
    assert info.value.code() == expected
    time.sleep(0.5)  # the handler notices the broken stream on its own thread
    harness.settle(user_key_set(["fz-u1"]) | {POPULARITY.encode()})


@pytest.mark.parametrize("method", sorted(REQUEST_TYPES))
def test_undecodable_bytes_on_every_rpc(harness: Harness, method: str) -> None:
    # Field 1 is a string, or a message whose field 1 is a string, in every request type:
    # invalid UTF-8 directly or nested, then corrupt and truncated wire format.
    for data in (b"\x0a\x02\xff\xfe", b"\x0a\x04\x0a\x02\xff\xfe", b"\xff\xff\xff", b"\x0a\x7f"):
        send = raw_call(harness, method, data)
        out = harness.stream(send) if REQUEST_TYPES[method][1] else harness.call(send)
        type_name = REQUEST_TYPES[method][2].DESCRIPTOR.full_name
        expect_rejected(out, f"the request is not a valid {type_name}")
        harness.settle(set())
    harness.assert_serving()


# ---- strategies --------------------------------------------------------------------------------

CHARS = st.characters(codec="utf-8")  # every code point protobuf can carry (no surrogates)
NASTY = st.sampled_from([
    "\x00", "\x01", "\x07", "\x1b[31m", "\x7f", "\x85", "\u00a0", "\u200b", "\u202e",
    "\u2028", "\ufeff", "\t", "\n", "\r\n", "\U0010ffff", "\U0001f600", "{", "}", "%",
    "*", "?", "[", "\\", "'", '"', "<script>", "' OR 1=1 --", "${jndi:x}", "..", "/", ":",
])


def long_text(low: int, high: int) -> st.SearchStrategy[str]:
    """Text of `low`..`high` characters, built cheaply from a repeated chunk."""
    return st.builds(lambda chunk, n: (chunk * n)[:n],
                     st.text(CHARS, min_size=1, max_size=4), st.integers(low, high))


def ids(pool: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(pool),
        st.sampled_from(pool),
        st.text(CHARS, max_size=8),
        st.builds(lambda a, b, c: a + b + c, st.text(CHARS, max_size=3), NASTY,
                  st.text(CHARS, max_size=3)),
        long_text(LIMITS.max_id_length - 1, LIMITS.max_id_length + 200),
        st.sampled_from(["", " ", "a" * 128, "a" * 129, "é" * 128, "é" * 129]),
    )


INT32 = st.integers(-2**31, 2**31 - 1)
INT64 = st.integers(-2**63, 2**63 - 1)
FLOATS = st.one_of(st.floats(), st.sampled_from(
    [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e6, -1e6, 1e6 + 1, 1.0, -1.0, 1.0000001,
     100.0, 100.00001, 5e-324, 1e308, 3.5e38]))


def enum_numbers(known: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(-1, known + 1), INT32)


TIMESTAMPS = st.one_of(st.just(0), st.sampled_from([-1, MAX_TIMESTAMP_MS, MAX_TIMESTAMP_MS + 1,
                                                    1_700_000_000_000]), INT64)


def make_event(event_id: str, user_id: str, item_id: str, type_: int, timestamp_ms: int,
               value: float | None) -> pb.Event:
    ev = pb.Event(event_id=event_id, user_id=user_id, item_id=item_id, type=type_,
                  timestamp_ms=timestamp_ms)
    if value is not None:
        ev.value = value
    return ev


# Built once: constructing strategies inside every draw costs more than the calls themselves.
EVENTS = st.builds(make_event, ids(EVENT_IDS), ids(USERS), ids(CATALOG), enum_numbers(7),
                   TIMESTAMPS, st.none() | FLOATS)
SMALL_EVENT_LISTS = st.lists(EVENTS, max_size=6)
EVENT_LISTS = st.one_of(
    SMALL_EVENT_LISTS, SMALL_EVENT_LISTS, SMALL_EVENT_LISTS,
    st.builds(lambda ev, n: [ev] * n, EVENTS,  # around the per-message limit
              st.integers(LIMITS.max_events_per_batch - 1, LIMITS.max_events_per_batch + 2)))
BATCHES = st.builds(lambda batch_id, evs: pb.EventBatch(batch_id=batch_id, events=evs),
                    st.text(CHARS, max_size=8) | long_text(100, 2000), EVENT_LISTS)
TEXTS = st.one_of(
    st.text(CHARS, max_size=40),
    st.sampled_from(["I love mystery films, I hate romance", "我喜欢科幻电影，讨厌爱情片",
                     "not romance", "I hate I hate I hate", "love love love", "", " \n\t ",
                     "\x00\x00", "😀" * 10, "a " * 1000]),
    st.builds(lambda a, b: a + b + a, st.text(CHARS, max_size=10), NASTY),
    long_text(LIMITS.max_text_length + 1, LIMITS.max_text_length + 100),
)
FILTERS = st.builds(lambda name, values: pb.AttributeFilter(name=name, values=values),
                    ids(["genre", "year"]), st.lists(ids(["Mystery", "Romance", "Sci-Fi"]),
                                                     max_size=4))
FILTER_LISTS = st.one_of(st.lists(FILTERS, max_size=3),
                         st.builds(lambda f, n: [f] * n, FILTERS, st.integers(31, 34)))
OPTIONAL_FLOATS = st.none() | FLOATS


def make_recommend(user_id: str, k: int, exclude_item_ids: list[str],
                   include: list[pb.AttributeFilter], exclude: list[pb.AttributeFilter],
                   theta: float | None, concept_weight: float | None,
                   exclude_consumed: bool | None) -> pb.RecommendRequest:
    o = pb.RecommendOptions(exclude_item_ids=exclude_item_ids, include=include, exclude=exclude)
    if theta is not None:
        o.theta = theta
    if concept_weight is not None:
        o.concept_weight = concept_weight
    if exclude_consumed is not None:
        o.exclude_consumed = exclude_consumed
    return pb.RecommendRequest(user_id=user_id, k=k, options=o)


RECOMMEND = st.builds(make_recommend, ids(USERS), st.integers(-2, LIMITS.max_k + 2) | INT32,
                      st.lists(ids(CATALOG), max_size=4), FILTER_LISTS, FILTER_LISTS,
                      OPTIONAL_FLOATS, OPTIONAL_FLOATS, st.none() | st.booleans())
ATTRIBUTES = st.one_of(
    st.lists(st.builds(lambda n, v: pb.Attribute(name=n, values=v), ids(["genre"]),
                       st.lists(ids(["Mystery", "Drama"]), max_size=4)), max_size=3),
    st.builds(lambda n: [pb.Attribute(name="g", values=["v"])] * n, st.integers(32, 34)),
    st.builds(lambda n: [pb.Attribute(name="g", values=[str(i) for i in range(n)])],
              st.integers(31, 34)))
ITEM_TEXTS = st.one_of(st.text(CHARS, max_size=30), st.sampled_from(["", "  ", "A film"]),
                       long_text(LIMITS.max_item_text_length + 1,
                                 LIMITS.max_item_text_length + 50))
ITEMS = st.builds(lambda i, t, a: pb.Item(item_id=i, text=t, attributes=a), ids(FZ_ITEMS),
                  ITEM_TEXTS, ATTRIBUTES)
UPSERT_MESSAGES = st.one_of(
    st.builds(lambda xs: pb.UpsertItemsRequest(items=xs), st.lists(ITEMS, max_size=3)),
    # Too many (short) items, kept under the message size limit (the table covers that).
    st.builds(lambda x, n: pb.UpsertItemsRequest(items=[
        pb.Item(item_id=x.item_id, text=x.text[:40], attributes=x.attributes)] * n), ITEMS,
        st.integers(LIMITS.max_items_per_upsert + 1, LIMITS.max_items_per_upsert + 2)))
DELETE_ITEMS = st.builds(
    lambda xs: pb.DeleteItemsRequest(item_ids=xs),
    st.one_of(st.lists(ids(FZ_ITEMS + CATALOG[-2:]), max_size=5),
              st.builds(lambda x, n: [x] * n, ids(FZ_ITEMS), st.integers(1000, 1002))))
ENCODE = st.builds(pb.EncodeInterestRequest, user_id=ids(USERS), text=TEXTS,
                   mode=enum_numbers(2))
STATE = st.builds(pb.GetUserStateRequest, user_id=ids(USERS), include_vector=st.booleans())
DELETE_USER = st.builds(pb.DeleteUserRequest, user_id=ids(USERS))


def count(name: str) -> None:
    CASES[name] = CASES.get(name, 0) + 1


# ---- the fuzzers -------------------------------------------------------------------------------

@fuzz_settings("ingest")
@given(batch=BATCHES)
def test_fuzz_ingest_events(harness: Harness, batch: pb.EventBatch) -> None:
    count("ingest")
    check_ingest(harness, batch)


@fuzz_settings("stream")
@given(batches=st.lists(BATCHES, max_size=3))
def test_fuzz_stream_events(harness: Harness, batches: list[pb.EventBatch]) -> None:
    count("stream")
    check_stream(harness, batches)


@fuzz_settings("encode")
@given(request_=ENCODE)
def test_fuzz_encode_interest(harness: Harness, request_: pb.EncodeInterestRequest) -> None:
    count("encode")
    check_encode(harness, request_)


@fuzz_settings("recommend")
@given(request_=RECOMMEND)
def test_fuzz_recommend(harness: Harness, request_: pb.RecommendRequest) -> None:
    count("recommend")
    check_recommend(harness, request_)


@fuzz_settings("upsert")
@given(messages=st.lists(UPSERT_MESSAGES, max_size=3))
def test_fuzz_upsert_items(harness: Harness, messages: list[pb.UpsertItemsRequest]) -> None:
    count("upsert")
    check_upsert(harness, messages)


@fuzz_settings("delete_items")
@given(request_=DELETE_ITEMS)
def test_fuzz_delete_items(harness: Harness, request_: pb.DeleteItemsRequest) -> None:
    count("delete_items")
    check_delete_items(harness, request_)


@fuzz_settings("get_user_state")
@given(request_=STATE)
def test_fuzz_get_user_state(harness: Harness, request_: pb.GetUserStateRequest) -> None:
    count("get_user_state")
    check_get_user_state(harness, request_)


@fuzz_settings("delete_user")
@given(request_=DELETE_USER)
def test_fuzz_delete_user(harness: Harness, request_: pb.DeleteUserRequest) -> None:
    count("delete_user")
    check_delete_user(harness, request_)


TYPED: dict[str, st.SearchStrategy[Message]] = {
    "IngestEvents": BATCHES, "StreamEvents": BATCHES, "EncodeInterest": ENCODE,
    "Recommend": RECOMMEND, "UpsertItems": UPSERT_MESSAGES,
    "DeleteItems": DELETE_ITEMS, "GetUserState": STATE, "DeleteUser": DELETE_USER,
}


@st.composite
def raw_requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """A method and bytes for it: random, or a valid message's bytes corrupted."""
    method = draw(st.sampled_from(sorted(TYPED)))
    data = draw(TYPED[method]).SerializeToString()
    if len(data) > 4096:
        data = data[:4096]
    kind = draw(st.sampled_from(["random", "flip", "truncate", "splice"]))
    if kind == "random":
        data = draw(st.binary(max_size=64))
    elif kind == "flip" and data:
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    elif kind == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    else:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return method, data


CHECKS: dict[str, Callable[[Harness, Any, Callable[[], Any]], Outcome]] = {
    "IngestEvents": check_ingest, "EncodeInterest": check_encode,
    "Recommend": check_recommend, "DeleteItems": check_delete_items,
    "GetUserState": check_get_user_state, "DeleteUser": check_delete_user,
    "StreamEvents": lambda h, m, send: check_stream(h, [m], send),
    "UpsertItems": lambda h, m, send: check_upsert(h, [m], send),
}


@fuzz_settings("raw")
@given(raw=raw_requests())
def test_fuzz_raw_bytes(harness: Harness, raw: tuple[str, bytes]) -> None:
    count("raw")
    method, data = raw
    request_type = REQUEST_TYPES[method][2]
    send = raw_call(harness, method, data)
    try:
        message = request_type.FromString(data)
    except DecodeError:
        out = harness.stream(send) if method == "StreamEvents" else harness.call(send)
        expect_rejected(out, f"the request is not a valid {request_type.DESCRIPTOR.full_name}")
        harness.settle(set())
        return
    # Bytes that parse (unknown fields and all) must behave exactly as the parsed message.
    CHECKS[method](harness, message, send)


def test_server_survived_and_no_key_leaked(harness: Harness) -> None:
    harness.assert_serving()
    assert keyspace(harness.redis) == harness.baseline


def test_at_least_10000_cases_ran() -> None:
    if set(CASES) != set(FUZZ_EXAMPLES):
        pytest.skip(f"only some fuzz tests ran: {sorted(CASES)}")
    total = sum(CASES.values())
    print(f"fuzz cases: {total} ({CASES})")
    assert total >= 10_000 * min(FUZZ_SCALE, 1.0), CASES
