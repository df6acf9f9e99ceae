"""Tests of the Python client's own logic against an in-test gRPC servicer on a real port."""

from __future__ import annotations

import collections
import json
import queue
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import interest_client.client as client_mod
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2, interest_pb2_grpc
from interest_client.cli import main
from interest_client.client import InterestClient, InterestError, make_event, make_item

APPLIED = interest_pb2.ACK_STATUS_APPLIED
DUPLICATE = interest_pb2.ACK_STATUS_DUPLICATE
REJECTED = interest_pb2.ACK_STATUS_REJECTED


class FakeInterest(interest_pb2_grpc.InterestServiceServicer):
    """A test double that deduplicates events by id (as the Redis script does) and can fail."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.applied: dict[str, interest_pb2.Event] = {}
        self.apply_counts: collections.Counter[str] = collections.Counter()
        self.version = 0
        self.ingest_attempts: list[list[str]] = []
        self.fail_ingest = 0  # the next N IngestEvents attempts abort with UNAVAILABLE
        self.ingest_abort: grpc.StatusCode | None = None
        self.time_remaining: dict[str, float | None] = {}
        self.stream_calls = 0
        self.break_after: int | None = None  # 1st stream: ack N batches, apply one more, abort
        self.pause_after: int | None = None  # 1st stream: ack N batches, then wait for `resume`
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.swap_first_two = False  # 1st stream: ack batch 2 before batch 1
        self.stall = False  # never ack
        self.ack_delay = 0.0
        self.max_unacked = 0
        self.upsert_attempts: list[list[list[str]]] = []
        self.fail_upsert = 0
        self.requests: dict[str, Any] = {}

    def _record(self, name: str, request: Any, context: grpc.ServicerContext) -> None:
        self.time_remaining[name] = context.time_remaining()
        self.requests[name] = request

    def _apply(self, batch: interest_pb2.EventBatch) -> interest_pb2.EventBatchAck:
        out = interest_pb2.EventBatchAck(batch_id=batch.batch_id)
        with self.lock:
            for ev in batch.events:
                ack = interest_pb2.EventAck(event_id=ev.event_id)
                if ev.item_id == "missing":
                    ack.status, ack.reason = REJECTED, interest_pb2.REJECT_REASON_UNKNOWN_ITEM
                    ack.message = "item 'missing' is not in the catalog"
                    out.rejected += 1
                elif ev.event_id in self.applied:
                    ack.status = DUPLICATE
                    out.duplicates += 1
                else:
                    self.applied[ev.event_id] = ev
                    self.apply_counts[ev.event_id] += 1
                    self.version += 1
                    ack.status = APPLIED
                    out.applied += 1
                ack.user_version = self.version
                out.acks.append(ack)
        return out

    def IngestEvents(self, request, context):
        self._record("IngestEvents", request, context)
        self.ingest_attempts.append([e.event_id for e in request.events])
        if self.ingest_abort is not None:
            context.abort(self.ingest_abort, "event 0: user_id is empty")
        if self.fail_ingest > 0:
            self.fail_ingest -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "store unreachable")
        return self._apply(request)

    def StreamEvents(self, request_iterator, context):
        with self.lock:
            self.stream_calls += 1
            first = self.stream_calls == 1
        inbox: queue.SimpleQueue[interest_pb2.EventBatch | None] = queue.SimpleQueue()
        counts = {"received": 0, "acked": 0}

        def read() -> None:
            # Read eagerly so the unacked count measures what the client sent, not our pace.
            try:
                for batch in request_iterator:
                    with self.lock:
                        counts["received"] += 1
                        unacked = counts["received"] - counts["acked"]
                        self.max_unacked = max(self.max_unacked, unacked)
                    inbox.put(batch)
            except Exception:  # the call ended under us
                pass
            inbox.put(None)

        threading.Thread(target=read, daemon=True).start()
        held = None
        while (batch := inbox.get()) is not None:
            if self.stall:
                self.resume.wait(5)
                return
            time.sleep(self.ack_delay)
            ack = self._apply(batch)
            if first and self.break_after is not None and counts["acked"] == self.break_after:
                context.abort(grpc.StatusCode.UNAVAILABLE, "server restarting")
            if first and self.swap_first_two and held is None and counts["acked"] == 0:
                held = ack
                continue
            with self.lock:
                counts["acked"] += 1 + (held is not None)
            yield ack
            if held is not None:
                yield held
                held = None
            if first and self.pause_after is not None and counts["acked"] == self.pause_after:
                self.paused.set()
                self.resume.wait(5)

    def UpsertItems(self, request_iterator, context):
        requests = list(request_iterator)
        self._record("UpsertItems", requests, context)
        self.upsert_attempts.append([[i.item_id for i in r.items] for r in requests])
        if self.fail_upsert > 0:
            self.fail_upsert -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "embedder restarting")
        n = sum(len(r.items) for r in requests)
        return interest_pb2.UpsertItemsResponse(upserted=n, model="fake", catalog_size=n)

    def EncodeInterest(self, request, context):
        self._record("EncodeInterest", request, context)
        return interest_pb2.EncodeInterestResponse(user_id=request.user_id, model="fake")

    def Recommend(self, request, context):
        self._record("Recommend", request, context)
        if request.user_id == "bad":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user_id 'bad' is not allowed")
        if request.user_id == "slow":
            time.sleep(1.0)
        reason = interest_pb2.Reason(kind=interest_pb2.REASON_KIND_CONCEPT, source="mystery films",
                                     text="matches your interest in 'mystery films'")
        return interest_pb2.RecommendResponse(
            user_id=request.user_id, strategy="behaviour+concepts", user_version=7,
            removed_by_dislikes=3,
            items=[
                interest_pb2.ScoredItem(item_id="i1", score=0.9, text="Usual Suspects (1995)",
                                        reasons=[reason]),
                interest_pb2.ScoredItem(item_id="i22", score=0.5, text="Vertigo (1958)",
                                        reasons=[interest_pb2.Reason(
                                            kind=interest_pb2.REASON_KIND_RECENT_ITEM,
                                            source="i1")]),
            ],
        )

    def DeleteItems(self, request, context):
        self._record("DeleteItems", request, context)
        return interest_pb2.DeleteItemsResponse(deleted=len(request.item_ids))

    def GetUserState(self, request, context):
        self._record("GetUserState", request, context)
        return interest_pb2.GetUserStateResponse(user_id=request.user_id, version=self.version)

    def DeleteUser(self, request, context):
        self._record("DeleteUser", request, context)
        return interest_pb2.DeleteUserResponse(keys_deleted=4)


class Server:
    """A real grpc.server on 127.0.0.1 that can be stopped and restarted on the same port."""

    def __init__(self, fake: FakeInterest) -> None:
        self.fake = fake
        self.health = health.HealthServicer()
        self.port = 0
        self._server: grpc.Server | None = None
        self.start()

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        interest_pb2_grpc.add_InterestServiceServicer_to_server(self.fake, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(None)
            self._server = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def fake() -> FakeInterest:
    return FakeInterest()


@pytest.fixture
def server(fake: FakeInterest) -> Iterator[Server]:
    srv = Server(fake)
    yield srv
    fake.resume.set()
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[InterestClient]:
    with InterestClient(server.target, timeout_s=5, max_attempts=5, backoff_initial_s=0.005,
                        backoff_max_s=0.05) as c:
        yield c


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    def record(delay: float) -> None:
        recorded.append(delay)
        time.sleep(delay)

    monkeypatch.setattr(client_mod, "_sleep", record)
    return recorded


# -- unary calls: ids, retries, deadlines ----------------------------------------------------------


def test_ingest_assigns_ids_before_the_first_attempt_and_reuses_them(client, fake, sleeps):
    fake.fail_ingest = 2
    own = interest_pb2.Event(user_id="u1", item_id="i3", type=interest_pb2.EVENT_TYPE_VIEW)
    ack = client.ingest([
        {"user_id": "u1", "item_id": "i1", "type": "like"},
        make_event("u1", "i2", "click", event_id="mine"),
        own,
    ])
    assert len(fake.ingest_attempts) == 3 and len(sleeps) == 2
    ids = fake.ingest_attempts[0]
    assert fake.ingest_attempts[1] == ids and fake.ingest_attempts[2] == ids
    assert ids[1] == "mine"
    assert len(set(ids)) == 3 and all(len(i) == 32 for i in (ids[0], ids[2]))
    assert [a.event_id for a in ack.acks] == ids
    assert [a.status for a in ack.acks] == [APPLIED] * 3
    assert own.event_id == ""  # the caller's message is not mutated
    assert all(count == 1 for count in fake.apply_counts.values())


def test_invalid_argument_is_not_retried_and_keeps_code_and_details(client, fake, sleeps):
    fake.ingest_abort = grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(InterestError) as info:
        client.ingest([{"user_id": "", "item_id": "i1", "type": "like"}])
    err = info.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details == "event 0: user_id is empty"
    assert str(err) == "INVALID_ARGUMENT: event 0: user_id is empty"
    assert isinstance(err.__cause__, grpc.RpcError)
    assert len(fake.ingest_attempts) == 1 and sleeps == []


def test_retries_are_bounded_with_full_jitter_backoff(server, fake, sleeps):
    fake.fail_ingest = 100
    with InterestClient(server.target, max_attempts=6, backoff_initial_s=0.002,
                        backoff_max_s=0.01) as c, pytest.raises(InterestError) as info:
        c.ingest([{"user_id": "u1", "item_id": "i1", "type": "like"}])
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and info.value.attempts == 6
    assert len(fake.ingest_attempts) == 6 and len(sleeps) == 5
    for n, delay in enumerate(sleeps):
        assert 0 <= delay <= min(0.01, 0.002 * 2**n)
    # Full jitter: delays spread over [0, cap], capped at backoff_max_s however many retries.
    c = InterestClient(server.target, backoff_initial_s=0.1, backoff_max_s=1.0)
    samples = [c._backoff(50) for _ in range(2000)]
    c.close()
    assert max(samples) <= 1.0 and min(samples) < 0.1 and max(samples) > 0.9


def test_every_call_carries_the_deadline(server, fake):
    with InterestClient(server.target, timeout_s=3.0) as c:
        c.ingest([{"user_id": "u1", "item_id": "i1", "type": "like"}])
        c.encode_interest("u1", "I love mystery films")
        c.recommend("u1")
        c.upsert_items([{"item_id": "i1", "text": "t"}])
        c.delete_items(["i1"])
        c.get_user_state("u1")
        c.delete_user("u1")
    assert len(fake.time_remaining) == 7
    for name, remaining in fake.time_remaining.items():
        # gRPC rounds deadlines up a little; without one, time_remaining() is None or huge.
        assert remaining is not None and 0 < remaining <= 3.5, name


def test_deadline_exceeded_is_raised_not_retried(server, fake, sleeps):
    with InterestClient(server.target, timeout_s=0.2) as c, pytest.raises(InterestError) as info:
        c.recommend("slow")
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and sleeps == []


def test_upsert_items_batches_and_resends_the_same_messages(client, fake, sleeps):
    fake.fail_upsert = 1
    items = [make_item(f"i{n}", f"text {n}", {"genre": "Drama"}) for n in range(4)]
    items.append({"item_id": "i4", "text": "t", "attributes": {"genre": ["A", "B"]}})
    response = client.upsert_items(iter(items), batch_size=2)
    assert response.upserted == 5
    expected = [["i0", "i1"], ["i2", "i3"], ["i4"]]
    assert fake.upsert_attempts == [expected, expected] and len(sleeps) == 1
    last = fake.requests["UpsertItems"][-1].items[0]
    assert [(a.name, list(a.values)) for a in last.attributes] == [("genre", ["A", "B"])]


# -- coercions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["like", "LIKE", " Like ", "EVENT_TYPE_LIKE", 3,
                                   interest_pb2.EVENT_TYPE_LIKE])
def test_event_type_names_and_numbers(value):
    assert make_event("u", "i", value).type == interest_pb2.EVENT_TYPE_LIKE


def test_event_and_item_coercion_errors_and_optional_fields():
    event = make_event("u", "i", "rating", 4, timestamp_ms=1700000000000)
    assert event.HasField("value") and event.value == 4.0 and event.timestamp_ms == 1700000000000
    assert not make_event("u", "i", "view").HasField("value")
    with pytest.raises(ValueError, match="unknown event type 'lik'.*like"):
        make_event("u", "i", "lik")
    with pytest.raises(TypeError):
        make_event("u", "i", True)
    with pytest.raises(ValueError, match="unknown event field"):
        client_mod._coerce_event({"user_id": "u", "item_id": "i", "type": 1, "when": 3})
    with pytest.raises(ValueError, match="missing"):
        client_mod._coerce_event({"item_id": "i", "type": "like"})
    item = make_item("i1", "t", [{"name": "year", "values": ["1995"]}])
    assert item.attributes[0].name == "year" and list(item.attributes[0].values) == ["1995"]
    with pytest.raises(ValueError, match="unknown item field"):
        client_mod._coerce_item({"item_id": "i", "title": "t"})


def test_encode_mode_and_recommend_options_reach_the_server(client, fake):
    for mode, expected in [("merge", 2), ("MERGE", 2), ("ENCODE_MODE_REPLACE", 1), (2, 2)]:
        client.encode_interest("u1", "I like jazz", mode)
        assert fake.requests["EncodeInterest"].mode == expected
    with pytest.raises(ValueError, match="encode mode"):
        client.encode_interest("u1", "x", "append")
    client.recommend("u1", 5)
    options = fake.requests["Recommend"].options
    assert not options.HasField("theta") and not options.HasField("exclude_consumed")
    client.recommend("u1", 5, theta=0.0, concept_weight=0.5, exclude_consumed=False,
                     exclude_item_ids=["i9"], include={"genre": ["Drama", "Comedy"]},
                     exclude={"genre": "Horror"})
    request = fake.requests["Recommend"]
    options = request.options
    assert request.k == 5 and options.HasField("theta") and options.theta == 0.0
    assert options.concept_weight == 0.5 and options.HasField("exclude_consumed")
    assert not options.exclude_consumed and list(options.exclude_item_ids) == ["i9"]
    assert [(f.name, list(f.values)) for f in options.include] == [("genre", ["Drama", "Comedy"])]
    assert [(f.name, list(f.values)) for f in options.exclude] == [("genre", ["Horror"])]


# -- streaming -------------------------------------------------------------------------------------


def _events(n: int) -> list[dict[str, Any]]:
    # Every other event carries its own id; the client must assign the rest.
    return [{"user_id": "u1", "item_id": f"i{k}", "type": "view",
             **({"event_id": f"e{k}"} if k % 2 else {})} for k in range(n)]


def _check_applied_once(fake: FakeInterest, acks: list[interest_pb2.EventAck], n: int) -> None:
    assert len(acks) == n
    ids = [a.event_id for a in acks]
    assert len(set(ids)) == n and all(ids)
    assert set(fake.applied) == set(ids)
    assert all(fake.apply_counts[i] == 1 for i in ids)
    # Acks are in input order: the k-th ack answers the k-th input event.
    assert [fake.applied[i].item_id for i in ids] == [f"i{k}" for k in range(n)]
    assert all(ids[k] == f"e{k}" for k in range(1, n, 2))


def test_stream_yields_acks_in_input_order_across_batches(client, fake):
    fake.swap_first_two = True
    events = _events(23)
    events[5]["item_id"] = "missing"
    acks = list(client.stream_events(events, batch_size=4, max_in_flight_batches=3))
    assert [a.status for a in acks] == [APPLIED] * 5 + [REJECTED] + [APPLIED] * 17
    assert acks[5].reason == interest_pb2.REJECT_REASON_UNKNOWN_ITEM and acks[5].event_id == "e5"
    ids = [a.event_id for k, a in enumerate(acks) if k != 5]
    assert [fake.applied[i].item_id for i in ids] == [f"i{k}" for k in range(23) if k != 5]
    assert len(set(ids)) == 22 and fake.stream_calls == 1


def test_stream_resends_unacked_batches_after_an_unavailable_break(client, fake, sleeps):
    fake.break_after = 2  # acks batches 0-1, applies batch 2 and loses its ack
    acks = list(client.stream_events(_events(50), batch_size=5, max_in_flight_batches=4))
    _check_applied_once(fake, acks, 50)
    assert fake.stream_calls == 2 and len(sleeps) == 1
    statuses = [a.status for a in acks]
    assert statuses == [APPLIED] * 10 + [DUPLICATE] * 5 + [APPLIED] * 35


def test_stream_resends_after_the_server_restarts_on_the_same_port(server, fake):
    fake.pause_after = 3

    def restart() -> None:
        assert fake.paused.wait(5)
        server.stop()
        time.sleep(0.2)  # the client finds the port closed for a while
        server.start()
        fake.resume.set()

    restarter = threading.Thread(target=restart)
    restarter.start()
    with InterestClient(server.target, timeout_s=5, max_attempts=20, backoff_initial_s=0.01,
                        backoff_max_s=0.1) as c:
        acks = list(c.stream_events(_events(60), batch_size=5, max_in_flight_batches=4))
    restarter.join()
    _check_applied_once(fake, acks, 60)
    assert fake.stream_calls >= 2
    assert [a.status for a in acks[:15]] == [APPLIED] * 15


def test_stream_flow_control_bounds_unacked_batches_and_input_read_ahead(client, fake):
    fake.ack_delay = 0.03
    window, size = 3, 2
    pulled = 0

    def source() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for event in _events(30):
            pulled += 1
            yield event

    yielded = 0
    for _ack in client.stream_events(source(), batch_size=size, max_in_flight_batches=window):
        yielded += 1
        assert pulled <= yielded + window * size
    assert yielded == 30
    assert fake.max_unacked == window


def test_stream_without_progress_raises_deadline_exceeded(server, fake):
    fake.stall = True
    with InterestClient(server.target, timeout_s=0.3) as c, pytest.raises(InterestError) as info:
        list(c.stream_events(_events(3)))
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_stream_gives_up_after_max_attempts_without_progress(sleeps):
    with InterestClient("127.0.0.1:1", max_attempts=3, backoff_initial_s=0.001,
                        backoff_max_s=0.002) as c, pytest.raises(InterestError) as info:
        list(c.stream_events(_events(3)))
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and len(sleeps) == 2


# -- health ----------------------------------------------------------------------------------------


def test_health_and_wait_ready(server, client):
    serving = health_pb2.HealthCheckResponse.SERVING
    server.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert client.health() == "NOT_SERVING"
    with pytest.raises(InterestError) as info:
        client.wait_ready(0.2)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and "NOT_SERVING" in str(info.value)
    threading.Timer(0.2, server.health.set, ("", serving)).start()
    client.wait_ready(5)
    assert client.health() == "SERVING"


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_recommend_prints_a_table(server, fake, capsys):
    rc = main(["--target", server.target, "recommend", "--user", "u1", "-k", "2",
               "--include", "genre=Drama,Comedy", "--exclude", "genre=Horror", "--theta", "0.4"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0].startswith("user u1  strategy behaviour+concepts  version 7")
    assert out[1].split() == ["rank", "item", "score", "text", "reasons"]
    assert out[2].split()[:3] == ["1", "i1", "0.9000"]
    assert "Usual Suspects (1995)" in out[2]
    assert out[2].endswith("matches your interest in 'mystery films'")
    assert out[3].split()[:3] == ["2", "i22", "0.5000"] and out[3].endswith("recent_item i1")
    options = fake.requests["Recommend"].options
    assert [(f.name, list(f.values)) for f in options.include] == [("genre", ["Drama", "Comedy"])]
    assert abs(options.theta - 0.4) < 1e-6


def test_cli_recommend_json(server, capsys):
    # Global options are also accepted after the subcommand.
    assert main(["recommend", "--user", "u1", "--json", "--target", server.target]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [i["item_id"] for i in data["items"]] == ["i1", "i22"]
    assert data["removed_by_dislikes"] == 3 and data["removed_consumed"] == 0
    assert data["items"][0]["reasons"][0]["kind"] == "REASON_KIND_CONCEPT"


def test_cli_error_exit_code(server, capsys):
    rc = main(["--target", server.target, "recommend", "--user", "bad"])
    assert rc == 1
    assert capsys.readouterr().err == "error: INVALID_ARGUMENT: user_id 'bad' is not allowed\n"


def test_cli_send_file_summary_and_rerun(server, fake, tmp_path: Path, capsys):
    path = tmp_path / "events.jsonl"
    rows = [{"event_id": f"e{k}", "user_id": "u1", "item_id": f"i{k}", "type": "like"}
            for k in range(5)]
    rows[2]["item_id"] = "missing"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    args = ["--target", server.target, "send-file", str(path), "--batch-size", "2"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == "sent 5 events: applied 4, duplicate 0, rejected 1\n"
    assert "e2  REJECTED" in captured.err and "UNKNOWN_ITEM" in captured.err
    rows.pop(2)
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(args) == 0
    assert capsys.readouterr().out == "sent 4 events: applied 0, duplicate 4, rejected 0\n"
    path.write_text('{"user_id": "u1", "item_id": "i1", "type": "like", "colour": 1}\n')
    assert main(args) == 1
    assert capsys.readouterr().err.startswith(f"error: {path}:1: ")


def test_cli_send_state_and_items(server, fake, tmp_path: Path, capsys):
    target = ["--target", server.target]
    assert main([*target, "send", "--user", "u1", "--item", "i1", "--type", "RATING",
                 "--value", "4", "--event-id", "x1"]) == 0
    assert capsys.readouterr().out.startswith("x1  APPLIED")
    assert fake.applied["x1"].value == 4.0
    assert main([*target, "state", "--user", "u1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "1"  # int64 is a JSON string
    items = tmp_path / "items.jsonl"
    items.write_text('{"item_id": "i1", "text": "Vertigo", "attributes": {"genre": ["Mystery"]}}\n')
    assert main([*target, "upsert-items", str(items)]) == 0
    assert capsys.readouterr().out.startswith("upserted 1 item(s)")
    assert main([*target, "delete-items", "i1", "i2"]) == 0
    assert capsys.readouterr().out.startswith("deleted 2 item(s)")
    assert main([*target, "health"]) == 0
    assert capsys.readouterr().out == "SERVING\n"
