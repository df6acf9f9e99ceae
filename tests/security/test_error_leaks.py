"""Forced faults on every RPC: a fixed message and a request id out, the traceback in the log."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server import cli as server_cli
from interest_server.api.app import RunningServer
from interest_server.api.auth import AuthInterceptor, parse_tokens
from interest_server.api.registration import add_servicer
from interest_server.api.service import InterestService
from interest_server.config import from_env

from ..integration.conftest import event

TOKEN = "tok-9b2f7c41d3e8a6"
REDIS_ADDRESS = "10.20.30.40:6379"


def secrets_of(server: RunningServer) -> list[str]:
    """What must never reach a caller: addresses, credentials, key names, tracebacks."""
    real_address = server.redis_url.split("@")[-1].split("//")[-1].split("/")[0]
    return [REDIS_ADDRESS, real_address, server.redis_url, "redis://", TOKEN, "u:{", "item:",
            "catalog:", "Traceback", "File \"", "RuntimeError", "ResponseError", "secret"]


FAULTS: dict[str, Callable[[], BaseException]] = {
    "bug": lambda: RuntimeError(f"secret: redis://svc:{TOKEN}@{REDIS_ADDRESS}/0 key u:{{x}}:state"
                                f" Authorization: Bearer {TOKEN}"),
    "wrongtype": lambda: redis.ResponseError(
        "WRONGTYPE Operation against a key holding the wrong kind of value: u:{x}:state secret"),
    "noperm": lambda: redis.exceptions.NoPermissionError(
        "NOPERM this user has no permissions to access one of the keys: item:7 catalog:ids"),
    "key": lambda: KeyError(f"u:{{x}}:win at {REDIS_ADDRESS}"),
    "unreachable": lambda: redis.ConnectionError(f"Error 111 connecting to {REDIS_ADDRESS}. "
                                                 "Connection refused. secret"),
    "timeout": lambda: redis.TimeoutError(f"Timeout reading from {REDIS_ADDRESS} secret"),
    "auth": lambda: redis.AuthenticationError(f"invalid password {TOKEN} for user svc"),
}
EXPECTED = {"unreachable": grpc.StatusCode.UNAVAILABLE, "timeout": grpc.StatusCode.UNAVAILABLE,
            "auth": grpc.StatusCode.UNAVAILABLE}
INTERNAL_DETAILS = re.compile(
    r"internal error; quote request id ([0-9a-f]{16}) when reporting it")

Stub = interest_pb2_grpc.InterestServiceStub
# RPC -> (engine method behind it, a valid call).
CALLS: dict[str, tuple[str, Callable[[Stub], Any]]] = {
    "StreamEvents": ("ingest", lambda s: list(s.StreamEvents(
        iter([pb.EventBatch(batch_id="b", events=[event("e1", "u1", "1")])]), timeout=30))),
    "IngestEvents": ("ingest", lambda s: s.IngestEvents(
        pb.EventBatch(events=[event("e1", "u1", "1")]), timeout=30)),
    "EncodeInterest": ("encode_interest", lambda s: s.EncodeInterest(
        pb.EncodeInterestRequest(user_id="u1", text="I love mystery films"), timeout=30)),
    "Recommend": ("recommend", lambda s: s.Recommend(pb.RecommendRequest(user_id="u1"),
                                                     timeout=30)),
    "UpsertItems": ("upsert_items", lambda s: s.UpsertItems(iter([pb.UpsertItemsRequest(
        items=[pb.Item(item_id="n1", text="A new film")])]), timeout=30)),
    "DeleteItems": ("delete_items", lambda s: s.DeleteItems(
        pb.DeleteItemsRequest(item_ids=["n1"]), timeout=30)),
    "GetUserState": ("user_state", lambda s: s.GetUserState(
        pb.GetUserStateRequest(user_id="u1"), timeout=30)),
    "DeleteUser": ("delete_user", lambda s: s.DeleteUser(pb.DeleteUserRequest(user_id="u1"),
                                                         timeout=30)),
    "WatchRecommendations": ("recommend", lambda s: list(s.WatchRecommendations(
        pb.WatchRecommendationsRequest(user_id="u1"), timeout=30))),
    "SetAttributeSynonyms": ("set_attribute_synonyms", lambda s: s.SetAttributeSynonyms(
        pb.SetAttributeSynonymsRequest(entries=[pb.AttributeSynonyms(
            attribute="genre", value="Mystery", synonyms=["悬疑"])]), timeout=30)),
}


def test_every_rpc_is_covered() -> None:
    service = pb.DESCRIPTOR.services_by_name["InterestService"]
    assert {m.name for m in service.methods} == set(CALLS)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("rpc", list(CALLS))
def test_forced_fault_leaks_nothing(module_server: RunningServer, rpc: str, fault: str,
                                    monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    method, call = CALLS[rpc]
    raised: list[BaseException] = []

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        exc = FAULTS[fault]()
        raised.append(exc)
        raise exc

    monkeypatch.setattr(module_server.engine, method, boom)
    caplog.set_level(logging.INFO, logger="interest_server")
    with grpc.insecure_channel(module_server.target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            call(Stub(channel))
        err = info.value
        # The process is still up and serving.
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert raised, "the fault was never reached"
    details = err.details() or ""
    status = " ".join([details, *(f"{k}={v!r}" for k, v in err.trailing_metadata() or ())])
    for secret in secrets_of(module_server):
        assert secret not in status, (secret, status)

    expected = EXPECTED.get(fault, grpc.StatusCode.INTERNAL)
    assert err.code() == expected, details
    if expected == grpc.StatusCode.UNAVAILABLE:
        assert details in ("the state store is unreachable; retry later",
                           "the state store timed out; retry later")
        return
    match = INTERNAL_DETAILS.fullmatch(details)
    assert match, details
    # The traceback, with the real message, is in the server log under that request id.
    logged = [r for r in caplog.records
              if r.levelno == logging.ERROR and match.group(1) in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    text = logging.Formatter().formatException(logged[0].exc_info)
    assert "Traceback" in text and str(raised[0]) in text and method in text


def test_request_ids_differ_between_faults(module_server: RunningServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret")

    monkeypatch.setattr(module_server.engine, "recommend", boom)
    ids = set()
    with grpc.insecure_channel(module_server.target) as channel:
        for _ in range(5):
            with pytest.raises(grpc.RpcError) as info:
                Stub(channel).Recommend(pb.RecommendRequest(user_id="u"), timeout=30)
            match = INTERNAL_DETAILS.fullmatch(info.value.details())
            assert match
            ids.add(match.group(1))
    assert len(ids) == 5


def test_auth_refusals_echo_no_token(module_server: RunningServer) -> None:
    interceptor = AuthInterceptor(parse_tokens(f"{TOKEN} read"))
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[interceptor])
    add_servicer(InterestService(module_server.tenants, module_server.engine.settings), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            for md in ((("authorization", f"Bearer {TOKEN}x"),),
                       (("authorization", f"Basic {TOKEN}"),),
                       (("authorization", f"Bearer {TOKEN}"),)):
                with pytest.raises(grpc.RpcError) as info:
                    Stub(channel).DeleteUser(pb.DeleteUserRequest(user_id="u"), timeout=10,
                                             metadata=md)
                assert info.value.code() in (grpc.StatusCode.UNAUTHENTICATED,
                                             grpc.StatusCode.PERMISSION_DENIED)
                assert TOKEN not in (info.value.details() or "")
    finally:
        server.stop(0)


def test_help_and_settings_repr_show_no_secret(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("INTEREST_REDIS_URL", f"redis://svc:{TOKEN}@{REDIS_ADDRESS}/0")
    monkeypatch.setenv("INTEREST_AUTH_TOKENS", f"{TOKEN} read")
    with pytest.raises(SystemExit):
        server_cli.main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "--auth-tokens" in out and "--redis-url" in out
    assert TOKEN not in out and REDIS_ADDRESS not in out
    assert TOKEN not in repr(from_env())
