"""The interest engine: the domain operations behind every RPC, free of gRPC."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import redis

from interest_server.config import Settings
from interest_server.engine.model_follower import ModelFollower, load_checkpoint_bytes
from interest_server.engine.watch import ChangeNotifier
from interest_server.engine.write_combiner import WriteCombiner
from interest_server.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from interest_server.events import EventRecord, EventResult, EventType, Outcome, RejectReason
from interest_server.model import conceptualizer as cz
from interest_server.model.concepts import AttrPair, ConceptPhrase, Polarity
from interest_server.model.interest_model import DecayedAverageModel, InterestFunction
from interest_server.model.synonyms import EMPTY as EMPTY_SYNONYMS
from interest_server.model.synonyms import SynonymMatcher
from interest_server.ops import metrics
from interest_server.recommend.item_index import CatalogItem, ItemIndex, StaleView, embedding_text
from interest_server.recommend.ranking import Ranker, RankOptions, RankResult, RecentItem
from interest_server.state.catalog import CatalogFollower, CatalogStore
from interest_server.state.keys import DEFAULT_KEYS, DEFAULT_TENANT, KeySpace
from interest_server.state.model_registry import ModelRegistry
from interest_server.state.synonyms import OverCap, SynonymStore, SynonymsWritten
from interest_server.state.user_store import UserSnapshot, UserStateCache, UserStore

log = logging.getLogger(__name__)

POPULARITY_CANDIDATES = 2000
"""How many of the most popular items a cold-start list is drawn from."""
RANK_ATTEMPTS = 3
"""Index views Recommend tries when compactions (item_index.py) keep making them stale."""

_VERBS = {EventType.VIEW: "viewed", EventType.CLICK: "clicked", EventType.LIKE: "liked",
          EventType.PURCHASE: "bought", EventType.RATING: "rated"}


def load_interest_function(settings: Settings, encoder: Encoder,
                           text_vector: Callable[[str], np.ndarray]) -> InterestFunction:
    """The learned model named by settings, else the decayed average of text vectors: the
    configured model, which a tenant's published model (model_follower.py) overrides."""
    if not settings.interest_model_path:
        return DecayedAverageModel(settings.half_life_s, version=encoder.model_id,
                                   dim=encoder.dim)
    from interest_server.model.learned_interest import LearnedInterest
    from interest_server.model.sequence_model import SequenceInterestModel

    model = SequenceInterestModel.load(settings.interest_model_path)
    if model.text_model_id != encoder.model_id:
        raise FailedPrecondition(
            f"interest model {settings.interest_model_path} was trained on text vectors of "
            f"{model.text_model_id}, but the encoder is {encoder.model_id}")
    log.info("interest model %s (dim %d, history %d)", model.version, model.dim, model.max_len)
    return LearnedInterest(model, text_vector, encoder.dim)


class Encoder:
    """What the engine needs of a language model (TextEncoder implements it)."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...  # pragma: no cover

    def embed_concepts(self, phrases: Sequence[str]) -> np.ndarray: ...  # pragma: no cover


@dataclass
class UserView:
    """A user's state as GetUserState reports it."""

    snapshot: UserSnapshot
    concepts: list[cz.GroundedConcept]
    interest: np.ndarray | None


class InterestEngine:
    """Owns one tenant's stores, item index and model; one per tenant and server process."""

    def __init__(self, settings: Settings, client: redis.Redis, encoder: Encoder,
                 rewrite: Callable[[str], list[ConceptPhrase]] | None = None,
                 keys: KeySpace = DEFAULT_KEYS, state_cache: UserStateCache | None = None
                 ) -> None:
        self.settings = settings
        self.keys = keys
        self.redis = client
        self.encoder = encoder
        configured = load_interest_function(settings, encoder, self._item_vector)
        self.users = UserStore(client, configured, settings.window_size, settings.dedupe_ttl_s,
                               settings.popularity_half_life_s, user_ttl_s=settings.user_ttl_s,
                               keys=keys, cache=state_cache if state_cache is not None
                               else UserStateCache(settings.user_cache_size),
                               event_log_maxlen=settings.event_log_maxlen)
        self.catalog = CatalogStore(client, settings.catalog_stream_maxlen, keys)
        behaviour_embed = getattr(configured, "item_matrix", None)
        # The index hands the model to readers with its item matrix (IndexView.behaviour_model),
        # so a switch is one swap there: see `model` and `install_model`.
        self.index = ItemIndex(encoder.dim, embed_values=encoder.embed_concepts,
                               behaviour_embed=behaviour_embed,
                               behaviour_dim=configured.dim if behaviour_embed else 0,
                               ann_min_items=settings.ann_min_items, behaviour_model=configured)
        self.synonym_store = SynonymStore(client, settings.catalog_stream_maxlen, keys)
        self.synonyms = EMPTY_SYNONYMS
        self.registry = ModelRegistry(client, keys, settings.catalog_stream_maxlen)
        self._install_lock = threading.Lock()
        self.model_follower = ModelFollower(
            self.registry, configured,
            lambda blob, version: load_checkpoint_bytes(blob, version, encoder.model_id,
                                                        self._item_vector, encoder.dim),
            self.install_model, lambda: self.model.version, settings.model_poll_s)
        self.follower = CatalogFollower(self.catalog, self.index, encoder.model_id,
                                        encoder.embed, on_synonyms=self.reload_synonyms,
                                        on_model=self.model_follower.wake)
        self.ranker = Ranker(self.index)
        self.conceptualizer = cz.Conceptualizer(encoder.embed_concepts, encoder.embed,
                                                encoder.model_id, rewrite,
                                                embed_both=getattr(encoder, "embed_both", None))
        self.notifier = ChangeNotifier(client, keys)  # wakes watchers on every process
        self._combiner = WriteCombiner(self._ingest_now, settings.coalesce_events,
                                       on_group=metrics.WRITE_CALLS.observe)

    @property
    def model(self) -> InterestFunction:
        """The interest function this engine serves now (the published one, else the
        configured one). A request that needs it with the item matrix reads both from one
        index view instead."""
        return self.index.behaviour_model  # type: ignore[return-value]

    def install_model(self, model: InterestFunction) -> None:
        """Serve `model` from now on: its item matrix over the whole catalog is computed, then
        swapped in with it (readers see the old pair or the new one, never a mix); event
        writes use it from then on (a write already under way stores the old model's vector,
        under the old model's name)."""
        with self._install_lock:
            self.index.set_behaviour(getattr(model, "item_matrix", None), model.dim, model)
            self.users.set_interest(model)
        if self.keys.tenant == DEFAULT_TENANT:  # interest_model_info names the default's
            metrics.MODEL.info({"encoder": self.encoder.model_id, "interest_model": model.version})

    def start(self) -> None:
        """Switch to the tenant's published model if there is one, load the catalog and the
        synonyms, and follow their changes."""
        self.model_follower.sync()  # before the catalog loads: its matrix is computed once
        self.follower.load()
        self.reload_synonyms()  # after load() took the stream cursor: no change is missed
        self.index.build_scanner()  # before SERVING, so the first requests are fast too
        self.follower.start()
        self.model_follower.start()

    def stop(self) -> None:
        """Stop background work."""
        self.follower.stop()
        self.model_follower.stop()

    # ---- events -------------------------------------------------------------------------

    def ingest(self, events: Sequence[EventRecord | EventResult]) -> list[EventResult]:
        """Apply validated events; items in `events` that are already results pass through.

        Events about items unknown to the catalog are rejected in band. Calls that arrive while
        another call's write is in flight are written together with it (write_combiner.py).
        """
        return self._combiner.submit(events)

    def _ingest_now(self, events: Sequence[EventRecord | EventResult]) -> list[EventResult]:
        results: list[EventResult | None] = [None] * len(events)
        todo: list[tuple[int, EventRecord]] = []
        for i, ev in enumerate(events):
            if isinstance(ev, EventResult):
                results[i] = ev
            elif ev.item_id not in self.index and not self._known_in_store(ev.item_id):
                results[i] = EventResult(Outcome.REJECTED, 0, RejectReason.UNKNOWN_ITEM,
                                         f"item_id {ev.item_id!r} is not in the catalog")
            else:
                todo.append((i, ev))
        if todo:
            # (The write script itself publishes each changed user for watchers.)
            applied = self.users.apply_events([ev for _, ev in todo], self._item_vector)
            for (i, _), result in zip(todo, applied, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def _known_in_store(self, item_id: str) -> bool:
        # Another process may have upserted it a moment ago; catch up before rejecting.
        item = self.catalog.fetch([item_id])[0]
        if item is None:
            return False
        self.index.upsert(self.follower.current_model([item]))
        return True

    def _item_vector(self, item_id: str) -> np.ndarray:
        vec = self.index.vector(item_id)
        if vec is None:  # deleted between the check and now: contributes nothing
            return np.zeros(self.encoder.dim, dtype=np.float32)
        return vec

    # ---- concepts -----------------------------------------------------------------------

    def encode_interest(self, user_id: str, text: str, merge: bool
                        ) -> tuple[list[cz.GroundedConcept], list[cz.GroundedConcept]]:
        """Parse, encode and store concepts; returns (found in text, stored after).

        At most `max_concepts_per_user` are stored: a description that alone states more is
        refused (InvalidArgument), and so is a merge that would grow the stored set past the
        cap (ResourceExhausted); either way nothing changes. The check runs inside the store's
        compare-and-set, so two concurrent merges never exceed the cap together: the second
        one re-reads the first one's concepts and is checked again. A merge that adds nothing
        new is allowed even above a cap lowered since the concepts were stored.
        """
        cap = self.settings.max_concepts_per_user
        found = self.conceptualizer.encode(text)
        if len(found) > cap:
            raise InvalidArgument(
                f"text states {len(found)} concepts; the limit is {cap} per user "
                f"(max_concepts_per_user): describe fewer interests")
        stored: list[cz.StoredConcept] = []

        def update(current: bytes | None) -> bytes:
            nonlocal stored
            old = self.conceptualizer.current(cz.loads(current)) if merge else []
            stored = self.conceptualizer.merge(old, found)
            if len(stored) > cap and len(stored) > len(old):
                raise ResourceExhausted(
                    f"user {user_id!r} has {len(old)} concepts and this merge would store "
                    f"{len(stored)}; the limit is {cap} per user (max_concepts_per_user): "
                    f"use ENCODE_MODE_REPLACE to restate the whole description, or DeleteUser "
                    f"to start over")
            return cz.dumps(stored)

        self.users.store_concepts(user_id, update)
        self.notifier.changed([user_id])
        return self.ground(found), self.ground(stored)

    def ground(self, concepts: list[cz.StoredConcept]) -> list[cz.GroundedConcept]:
        """Link concepts to the catalog's current attribute vocabulary."""
        pairs, vocab = self.index.vocabulary()
        return cz.ground(concepts, pairs, vocab, self.settings.grounding_threshold,
                         self.settings.grounding_margin, self.synonyms)

    def set_attribute_synonyms(self, entries: Sequence[tuple[AttrPair, Sequence[str]]]
                               ) -> SynonymsWritten:
        """Replace the synonym lists of attribute values (empty: delete), all or nothing; this
        process uses them on return, the others when their follower reads the announcement."""
        cap = self.settings.max_synonyms_per_tenant
        try:
            written = self.synonym_store.replace(entries, cap)
        except OverCap as exc:
            raise ResourceExhausted(
                f"this call would leave {exc.total} synonyms; the limit is {cap} per tenant "
                f"(max_synonyms_per_tenant); nothing was changed: send shorter lists, or delete "
                f"lists no longer needed (an empty list deletes one)") from None
        self.reload_synonyms()
        return written

    def reload_synonyms(self) -> None:
        """Read the tenant's synonyms from Redis into the matcher grounding uses."""
        self.synonyms = SynonymMatcher.build(self.synonym_store.load())

    # ---- recommendations ----------------------------------------------------------------

    def recommend(self, user_id: str, opts: RankOptions) -> tuple[RankResult, int, str]:
        """Rank the catalog for a user; returns the result, the state version used and the
        version of the interest model that ranked."""
        snap = self.users.snapshot(user_id)
        concepts = self.ground(self.conceptualizer.current(cz.loads(snap.concepts_json)))
        recent = [RecentItem(e["i"], _VERBS[EventType(e["t"])]) for e in snap.recent
                  if EventType(e["t"]) in _VERBS and not (
                      e["t"] == EventType.RATING and (e.get("v") or 0) < 3)]
        model: InterestFunction | None = None
        for _attempt in range(RANK_ATTEMPTS):
            # The user vector is computed by the model the view's item matrix belongs to.
            view = self.index.view()
            if view.behaviour_model is not model:
                model = view.behaviour_model  # type: ignore[assignment]
                assert model is not None
                interest = model.interest(self._current_accumulator(snap, model))
                cold = interest is None and not any(
                    c.concept.polarity == Polarity.POSITIVE for c in concepts)
                # The popularity prior is blended into the default model's behaviour score
                # only: a learned model was trained against popularity already (logits).
                blend = interest is not None and opts.popularity_weight > 0 and isinstance(
                    model, DecayedAverageModel)
                ranked = opts if blend or not opts.popularity_weight else replace(
                    opts, popularity_weight=0.0)
                popularity = dict(self.users.popular(POPULARITY_CANDIDATES)) \
                    if cold or blend else {}
            try:
                result = self.ranker.rank(view, interest, concepts,
                                          sorted(snap.consumed), recent, popularity, ranked,
                                          standardise=model.standardise_scores)
                return result, snap.version, model.version
            except StaleView:
                continue
        # Compactions kept replacing the index under the ranker: transient, so UNAVAILABLE,
        # which clients retry (INVALID_ARGUMENT would tell them the request itself is wrong).
        raise Unavailable(f"the catalog index was compacted {RANK_ATTEMPTS} times while "
                          f"ranking; this is transient, retry")

    # ---- catalog ------------------------------------------------------------------------

    def upsert_items(self, items: Sequence[tuple[str, str, dict[str, tuple[str, ...]]]]) -> int:
        """Embed and store items; they are in this process's index on return."""
        if not items:
            return 0
        vectors = self.encoder.embed([embedding_text(text, attrs) for _, text, attrs in items])
        catalog_items = [CatalogItem(item_id, text, attrs, vec, self.encoder.model_id)
                         for (item_id, text, attrs), vec in zip(items, vectors, strict=True)]
        self.catalog.upsert(catalog_items)
        self.index.upsert(catalog_items)
        return len(catalog_items)

    def delete_items(self, item_ids: Sequence[str]) -> int:
        """Remove items from Redis and this process's index."""
        deleted = self.catalog.delete(item_ids)
        self.index.delete(item_ids)
        return deleted

    def catalog_size(self) -> int:
        """Items in this process's index."""
        return len(self.index)

    # ---- users --------------------------------------------------------------------------

    def user_state(self, user_id: str) -> UserView:
        """Everything stored about a user."""
        snap = self.users.snapshot(user_id)
        concepts = self.ground(self.conceptualizer.current(cz.loads(snap.concepts_json)))
        model = self.model  # once: a switch meanwhile must not mix two models' answers
        accumulator = self._current_accumulator(snap, model)
        if accumulator is not None and snap.model != model.version:
            # Report the vector this process uses, under its model's name.
            snap = replace(snap, accumulator=accumulator, model=model.version)
        return UserView(snap, concepts, model.interest(accumulator))

    def _current_accumulator(self, snap: UserSnapshot,
                             model: InterestFunction) -> np.ndarray | None:
        """The user's stored vector if `model` made it; else one recomputed by `model` from
        the stored window with this process's item vectors (the stored one lives in another
        model's space, maybe of another dimension, and is never read). The next event write
        stores the recomputed vector (UserStore._apply)."""
        if snap.model == model.version:
            return snap.accumulator
        return self.users.rebuild(snap.recent, self._item_vector, model)[0]

    def delete_user(self, user_id: str) -> int:
        """Erase every key of the user."""
        deleted = self.users.delete_user(user_id)
        self.notifier.changed([user_id])
        return deleted
