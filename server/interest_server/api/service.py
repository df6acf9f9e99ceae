"""The gRPC servicer: validate, call the engine, translate; errors map in grpc_errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc

from interest_server import caller
from interest_server.api import validation as v
from interest_server.api.grpc_errors import rpc
from interest_server.api.stream_reader import StreamReader
from interest_server.api.stream_slots import EVENTS, WATCH, StreamSlots
from interest_server.api.tenants import TenantResolver
from interest_server.config import Settings
from interest_server.engine.engine import InterestEngine
from interest_server.engine.tenants import TenantEngines
from interest_server.engine.watch import MAX_INTERVAL_MS, WatchHub
from interest_server.errors import FailedPrecondition, InvalidArgument
from interest_server.events import EventRecord, EventResult, Outcome, RejectReason
from interest_server.model.concepts import Polarity
from interest_server.model.conceptualizer import GroundedConcept
from interest_server.ops import metrics
from interest_server.recommend.ranking import RankOptions

log = logging.getLogger(__name__)


class InterestService(interest_pb2_grpc.InterestServiceServicer):
    """interest.v1.InterestService over one InterestEngine per tenant."""

    def __init__(self, engines: TenantEngines, settings: Settings,
                 watch: WatchHub | None = None, resolver: TenantResolver | None = None) -> None:
        self.engines = engines
        self.settings = settings
        self.watch = watch
        self.resolver = resolver or TenantResolver()
        self.streams = StreamSlots(settings)

    def _engine(self, context: grpc.ServicerContext) -> InterestEngine:
        """The engine of the tenant this call acts for."""
        return self.engines.get(self.resolver.resolve(context.invocation_metadata()))

    # ---- events -------------------------------------------------------------------------

    @rpc
    def StreamEvents(self, request_iterator: Iterator[pb.EventBatch],  # noqa: N802
                     context: grpc.ServicerContext) -> Iterator[pb.EventBatchAck]:
        # Messages that have already arrived are written together (one Redis read and one
        # write for all of them), then acknowledged one by one, in order. Nothing waits for
        # more: a lone message is written at once. The read-ahead buffer holds at most one
        # write's worth of events, so HTTP/2 flow control still pushes back on a client that
        # outruns Redis.
        engine = self._engine(context)
        s = self.settings
        budget = s.coalesce_events
        with self.streams.hold(EVENTS), \
                StreamReader(request_iterator, _event_count, budget) as reader:
            while True:
                taken = reader.take(budget, _checked_count(s))
                if taken.messages:
                    if not context.is_active():
                        return
                    metrics.STREAM_WRITE_MESSAGES.observe(len(taken.messages))
                    yield from self._ingest_many(engine, taken.messages, context)
                if taken.error is not None:
                    raise taken.error
                if taken.ended:
                    return

    @rpc
    def IngestEvents(self, request: pb.EventBatch,  # noqa: N802
                     context: grpc.ServicerContext) -> pb.EventBatchAck:
        v.check_count("events", len(request.events), self.settings.max_events_per_batch)
        return next(self._ingest_many(self._engine(context), [request], context))

    def _ingest_many(self, engine: InterestEngine, batches: list[pb.EventBatch],
                     context: grpc.ServicerContext) -> Iterator[pb.EventBatchAck]:
        """Validate and apply the events of `batches` in one engine call; one ack per batch.

        Each batch's count must already be within max_events_per_batch."""
        records: list[EventRecord | EventResult] = []
        for batch in batches:
            for ev in batch.events:
                try:
                    records.append(v.validate_event(
                        ev.event_id, ev.user_id, ev.item_id, ev.type,
                        ev.value if ev.HasField("value") else None, ev.timestamp_ms,
                        self.settings))
                except InvalidArgument as exc:
                    records.append(EventResult(Outcome.REJECTED, 0, RejectReason.INVALID_FIELD,
                                               str(exc)))
        with caller.bound(context.is_active):  # past its deadline or cancelled: no write
            results = engine.ingest(records)
        metrics.count_events(results)
        start = 0
        for batch in batches:
            end = start + len(batch.events)
            yield _ack(batch, results[start:end])
            start = end

    # ---- concepts -----------------------------------------------------------------------

    @rpc
    def EncodeInterest(self, request: pb.EncodeInterestRequest,  # noqa: N802
                       context: grpc.ServicerContext) -> pb.EncodeInterestResponse:
        s = self.settings
        engine = self._engine(context)
        user_id = v.check_id("user_id", request.user_id, s.max_id_length)
        text = v.check_text("text", request.text, s.max_text_length)
        if request.mode not in pb.EncodeMode.values():
            raise InvalidArgument(f"mode {request.mode} is not a known EncodeMode")
        found, stored = engine.encode_interest(user_id, text,
                                               merge=request.mode == pb.ENCODE_MODE_MERGE)
        return pb.EncodeInterestResponse(user_id=user_id, concepts=[_concept(g) for g in found],
                                         stored=[_concept(g) for g in stored],
                                         model=engine.encoder.model_id)

    # ---- recommendations ----------------------------------------------------------------

    @rpc
    def Recommend(self, request: pb.RecommendRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> pb.RecommendResponse:
        engine = self._engine(context)
        user_id, opts = self._rank_request(request)
        return self._recommend(engine, user_id, opts)

    @rpc
    def WatchRecommendations(self, request: pb.WatchRecommendationsRequest,  # noqa: N802
                             context: grpc.ServicerContext) -> Iterator[pb.RecommendResponse]:
        s = self.settings
        engine = self._engine(context)
        user_id, opts = self._rank_request(request)
        if request.min_interval_ms > MAX_INTERVAL_MS:
            raise InvalidArgument(f"min_interval_ms is {request.min_interval_ms}; the limit is "
                                  f"{MAX_INTERVAL_MS}")
        if self.watch is None:
            raise FailedPrecondition("watch streams are not enabled on this server")
        interval_ms = max(request.min_interval_ms or s.watch_min_interval_ms,
                          s.watch_min_interval_ms)
        with self.streams.hold(WATCH):
            yield from self.watch.watch(engine.keys.channel(user_id),
                                        lambda: self._recommend(engine, user_id, opts),
                                        lambda resp: resp.SerializeToString(deterministic=True),
                                        interval_ms / 1000, context.add_callback)

    def _rank_request(self, request: pb.RecommendRequest | pb.WatchRecommendationsRequest
                      ) -> tuple[str, RankOptions]:
        """The user id and ranking options of a Recommend or WatchRecommendations request."""
        s = self.settings
        user_id = v.check_id("user_id", request.user_id, s.max_id_length)
        o = request.options
        opts = RankOptions(
            k=v.check_k(request.k, s),
            theta=v.check_unit_float("options.theta", o.theta, -1.0, 1.0)
            if o.HasField("theta") else s.theta,
            concept_weight=v.check_unit_float("options.concept_weight", o.concept_weight,
                                              0.0, 100.0)
            if o.HasField("concept_weight") else s.concept_weight,
            exclude_consumed=o.exclude_consumed if o.HasField("exclude_consumed") else True,
            popularity_weight=v.check_unit_float("options.popularity_weight",
                                                 o.popularity_weight, 0.0, 1.0)
            if o.HasField("popularity_weight") else s.popularity_weight,
            exclude_item_ids=[v.check_id("options.exclude_item_ids", i, s.max_id_length)
                              for i in _limited("options.exclude_item_ids",
                                                o.exclude_item_ids, s.max_k * 10)],
            include=_filters("options.include", o.include, s),
            exclude=_filters("options.exclude", o.exclude, s),
        )
        return user_id, opts

    def _recommend(self, engine: InterestEngine, user_id: str, opts: RankOptions
                   ) -> pb.RecommendResponse:
        result, version, model = engine.recommend(user_id, opts)
        resp = pb.RecommendResponse(user_id=user_id, removed_by_dislikes=result.removed_by_dislikes,
                                    removed_consumed=result.removed_consumed,
                                    removed_by_filters=result.removed_by_filters,
                                    user_version=version, strategy=result.strategy, model=model)
        for item in result.items:
            out = resp.items.add(item_id=item.item_id, score=item.score, text=item.text)
            for name, values in item.attributes.items():
                out.attributes.add(name=name, values=list(values))
            for r in item.reasons:
                out.reasons.add(kind=r.kind, text=r.text, source=r.source,
                                contribution=r.contribution)
        return resp

    # ---- catalog ------------------------------------------------------------------------

    @rpc
    def UpsertItems(self, request_iterator: Iterator[pb.UpsertItemsRequest],  # noqa: N802
                    context: grpc.ServicerContext) -> pb.UpsertItemsResponse:
        s = self.settings
        engine = self._engine(context)
        total = 0
        for request in request_iterator:
            v.check_count("items", len(request.items), s.max_items_per_upsert)
            items = []
            for item in request.items:
                items.append((
                    v.check_id("item_id", item.item_id, s.max_id_length),
                    v.check_text(f"items[{item.item_id}].text", item.text,
                                 s.max_item_text_length),
                    v.check_attributes(f"items[{item.item_id}].attributes",
                                       [(a.name, list(a.values)) for a in item.attributes], s),
                ))
            total += engine.upsert_items(items)
        return pb.UpsertItemsResponse(upserted=total, model=engine.encoder.model_id,
                                      catalog_size=engine.catalog_size())

    @rpc
    def DeleteItems(self, request: pb.DeleteItemsRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> pb.DeleteItemsResponse:
        s = self.settings
        engine = self._engine(context)
        v.check_count("item_ids", len(request.item_ids), s.max_items_per_upsert)
        ids = [v.check_id("item_ids", i, s.max_id_length) for i in request.item_ids]
        deleted = engine.delete_items(ids)
        return pb.DeleteItemsResponse(deleted=deleted, catalog_size=engine.catalog_size())

    @rpc
    def SetAttributeSynonyms(self, request: pb.SetAttributeSynonymsRequest,  # noqa: N802
                             context: grpc.ServicerContext) -> pb.SetAttributeSynonymsResponse:
        engine = self._engine(context)
        entries = v.check_synonym_entries(
            [(e.attribute, e.value, list(e.synonyms)) for e in request.entries], self.settings)
        written = engine.set_attribute_synonyms(entries)
        return pb.SetAttributeSynonymsResponse(stored=written.stored, deleted=written.deleted,
                                               total_synonyms=written.total)

    # ---- users --------------------------------------------------------------------------

    @rpc
    def GetUserState(self, request: pb.GetUserStateRequest,  # noqa: N802
                     context: grpc.ServicerContext) -> pb.GetUserStateResponse:
        engine = self._engine(context)
        user_id = v.check_id("user_id", request.user_id, self.settings.max_id_length)
        view = engine.user_state(user_id)
        snap = view.snapshot
        resp = pb.GetUserStateResponse(user_id=user_id, version=snap.version,
                                       consumed_count=len(snap.consumed),
                                       concepts=[_concept(g) for g in view.concepts],
                                       model=snap.model, event_count=snap.event_count)
        for e in snap.recent:
            recent = resp.recent_events.add(event_id=e["e"], item_id=e["i"], type=e["t"],
                                            timestamp_ms=e["ts"])
            if e.get("v") is not None:
                recent.value = e["v"]
        if request.include_vector and view.interest is not None:
            resp.interest_vector.extend(view.interest.tolist())
        return resp

    @rpc
    def DeleteUser(self, request: pb.DeleteUserRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> pb.DeleteUserResponse:
        engine = self._engine(context)
        user_id = v.check_id("user_id", request.user_id, self.settings.max_id_length)
        return pb.DeleteUserResponse(keys_deleted=engine.delete_user(user_id))


def _concept(g: GroundedConcept) -> pb.Concept:
    c = g.concept
    return pb.Concept(
        phrase=c.phrase,
        polarity=pb.POLARITY_POSITIVE if c.polarity == Polarity.POSITIVE
        else pb.POLARITY_NEGATIVE,
        weight=c.weight,
        links=[pb.AttributeLink(name=name, value=value, similarity=sim)
               for (name, value), sim in g.links])


def _limited(field: str, values: list[str], limit: int) -> list[str]:
    v.check_count(field, len(values), limit, allow_empty=True)
    return list(values)


def _filters(field: str, filters: list[pb.AttributeFilter], s: Settings
             ) -> list[tuple[str, list[str]]]:
    out = []
    v.check_count(field, len(filters), s.max_attributes_per_item, allow_empty=True)
    for f in filters:
        name = v.check_id(f"{field}.name", f.name, s.max_id_length)
        v.check_count(f"{field}[{name}].values", len(f.values), s.max_attributes_per_item)
        out.append((name, [v.check_id(f"{field}[{name}].values", x, s.max_id_length)
                           for x in f.values]))
    return out


def _ack(batch: pb.EventBatch, results: list[EventResult]) -> pb.EventBatchAck:
    ack = pb.EventBatchAck(batch_id=batch.batch_id)
    for ev, result in zip(batch.events, results, strict=True):
        ack.acks.add(event_id=ev.event_id, status=int(result.outcome),
                     reason=int(result.reason or 0), message=result.message,
                     user_version=result.user_version)
    ack.applied = sum(r.outcome == Outcome.APPLIED for r in results)
    ack.duplicates = sum(r.outcome == Outcome.DUPLICATE for r in results)
    ack.rejected = sum(r.outcome == Outcome.REJECTED for r in results)
    return ack


def _event_count(batch: pb.EventBatch) -> int:
    return len(batch.events)


def _checked_count(s: Settings) -> Callable[[pb.EventBatch], InvalidArgument | None]:
    """A StreamReader check: the batch's event count is within the limit."""
    def check(batch: pb.EventBatch) -> InvalidArgument | None:
        try:
            v.check_count("events", len(batch.events), s.max_events_per_batch)
        except InvalidArgument as exc:
            return exc
        return None
    return check
