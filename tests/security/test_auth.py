"""TLS, mutual TLS and scoped bearer tokens on the gRPC port, through the client library."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_client import cli
from interest_client.client import InterestClient, InterestError
from interest_server.api import auth
from interest_server.api.app import RunningServer
from interest_server.config import Settings, from_env
from interest_server.model.encoder import TextEncoder

from .conftest import NO_OPENSSL, Certs, start_server, upsert_catalog

READ_TOKEN = "rd-3f9c1e7a2b4d"
WRITE_TOKEN = "wr-8a6b0c2d4e1f"
BOTH_TOKEN = "rw-5e7d9c1b3a0f"
TOKEN_FILE = f"""# interest-server bearer tokens: TOKEN SCOPE[,SCOPE]
{READ_TOKEN} read

{WRITE_TOKEN} write
{BOTH_TOKEN} read,write
"""
C = grpc.StatusCode
OK = "OK"
FAIL = C.UNAVAILABLE  # the TLS handshake fails: no call reaches the server

# transport -> token -> (code of a read RPC (Recommend), code of a write RPC (IngestEvents)).
# docs/security.md, "The auth matrix", documents exactly this table.
BY_TOKEN = {"none": (C.UNAUTHENTICATED, C.UNAUTHENTICATED),
            "bad": (C.UNAUTHENTICATED, C.UNAUTHENTICATED),
            "read": (OK, C.PERMISSION_DENIED),
            "write": (C.PERMISSION_DENIED, OK),
            "both": (OK, OK)}
MATRIX = {
    "plaintext": BY_TOKEN,
    "tls": BY_TOKEN,
    "mtls": BY_TOKEN,
    "mtls_wrong_ca": dict.fromkeys(BY_TOKEN, (FAIL, FAIL)),
    "auth_off": dict.fromkeys(BY_TOKEN, (OK, OK)),
}
TOKENS = {"none": None, "bad": "wr-0000000000", "read": READ_TOKEN, "write": WRITE_TOKEN,
          "both": BOTH_TOKEN}
NEEDS_CERTS = frozenset({"tls", "mtls", "mtls_wrong_ca"})
"""Transports that need certificates: without openssl only these rows skip."""


@pytest.fixture(scope="module")
def servers(module_redis: redis.Redis, redis_server: str, encoder: TextEncoder,
            maybe_certs: Certs | None, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, RunningServer]]:
    """Plaintext, TLS and mTLS servers with tokens (from a file; inline for mTLS), and one
    plaintext server without tokens, all on one Redis holding the test catalog. Without
    certificates (no openssl), only the plaintext ones."""
    token_file = tmp_path_factory.mktemp("auth") / "tokens"
    token_file.write_text(TOKEN_FILE)
    configs: dict[str, dict[str, object]] = {
        "plaintext": {"auth_token_file": str(token_file)},
        "auth_off": {},
    }
    if maybe_certs is not None:
        tls = {"tls_cert_file": str(maybe_certs.server_cert),
               "tls_key_file": str(maybe_certs.server_key)}
        configs["tls"] = {"auth_token_file": str(token_file), **tls}
        configs["mtls"] = {"auth_tokens": f"{READ_TOKEN} read; {WRITE_TOKEN} write; "
                                          f"{BOTH_TOKEN} read,write", **tls,
                           "tls_client_ca_file": str(maybe_certs.ca)}
    running: dict[str, RunningServer] = {}
    try:
        for name, overrides in configs.items():
            running[name] = start_server(redis_server, encoder, **overrides)
        with grpc.insecure_channel(running["plaintext"].target) as channel:
            upsert_catalog(interest_pb2_grpc.InterestServiceStub(channel),
                           metadata=(("authorization", f"Bearer {WRITE_TOKEN}"),))
        if "mtls" in running:
            running["mtls_wrong_ca"] = running["mtls"]
        yield running
    finally:
        for name, server in running.items():
            if name != "mtls_wrong_ca":
                server.stop(grace_s=0.5)


def client_for(servers: dict[str, RunningServer], certs: Certs | None, transport: str,
               token: str | None) -> InterestClient:
    """A client library instance dialing `transport` with `token`; no retries. Skips a
    transport that needs certificates when there are none (no openssl)."""
    tls: dict[str, object] = {}
    if transport in NEEDS_CERTS:
        if certs is None:
            pytest.skip(NO_OPENSSL)
        tls["tls_ca"] = certs.ca
        if transport == "mtls":
            tls.update(tls_cert=certs.client_cert, tls_key=certs.client_key)
        if transport == "mtls_wrong_ca":
            tls.update(tls_cert=certs.rogue_client_cert,
                       tls_key=certs.rogue_client_key.read_bytes())
    return InterestClient(servers[transport].target, timeout_s=10, max_attempts=1, token=token,
                          **tls)


def outcome(call: object) -> object:
    try:
        call()  # type: ignore[operator]
    except InterestError as err:
        return err.code
    return OK


def wait_for_item(client: InterestClient, item_id: str = "1") -> None:
    """The follower of a replica picks up the catalog within a second."""
    for _ in range(50):
        resp = client.recommend("warm", k=30)
        if item_id in {i.item_id for i in resp.items}:
            return
    raise AssertionError("catalog never reached the replica")


@pytest.mark.parametrize("token", list(TOKENS))
@pytest.mark.parametrize("transport", list(MATRIX))
def test_transport_and_token_matrix(servers: dict[str, RunningServer],
                                    maybe_certs: Certs | None, transport: str,
                                    token: str) -> None:
    expected_read, expected_write = MATRIX[transport][token]
    with client_for(servers, maybe_certs, transport, TOKENS[token]) as client:
        read = outcome(lambda: client.recommend("matrix-user", k=5))
        write = outcome(lambda: client.ingest([{"user_id": f"matrix-{transport}-{token}",
                                               "item_id": "1", "type": "like"}]))
    assert (read, write) == (expected_read, expected_write)


def test_scoped_tokens_from_the_environment_on_a_server(module_redis: redis.Redis,
                                                        redis_server: str, encoder: TextEncoder,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """INTEREST_AUTH_TOKENS with a read, a write and a read,write token, read by from_env() into
    a real server: each token against read RPCs (Recommend, GetUserState) and write RPCs
    (IngestEvents, StreamEvents). Needs no certificate."""
    monkeypatch.setenv("INTEREST_AUTH_TOKENS", f"{READ_TOKEN} read; {WRITE_TOKEN} write; "
                                               f"{BOTH_TOKEN} read,write")
    running = start_server(redis_server, encoder, auth_tokens=from_env().auth_tokens)
    try:
        with grpc.insecure_channel(running.target) as channel:
            upsert_catalog(interest_pb2_grpc.InterestServiceStub(channel),
                           metadata=(("authorization", f"Bearer {BOTH_TOKEN}"),))
        got = {}
        for name in ("read", "write", "both"):
            user = f"env-{name}"
            with InterestClient(running.target, timeout_s=10, max_attempts=1,
                                token=TOKENS[name]) as client:
                got[name] = (
                    outcome(lambda c=client, u=user: c.recommend(u, k=5)),
                    outcome(lambda c=client, u=user: c.get_user_state(u)),
                    outcome(lambda c=client, u=user: c.ingest(
                        [{"user_id": u, "item_id": "2", "type": "like"}])),
                    outcome(lambda c=client, u=user: list(c.stream_events(
                        [{"user_id": u, "item_id": "3", "type": "like"}]))),
                )
        denied = C.PERMISSION_DENIED
        assert got == {"read": (OK, OK, denied, denied), "write": (denied, denied, OK, OK),
                       "both": (OK, OK, OK, OK)}
        with InterestClient(running.target, timeout_s=10, max_attempts=1,
                            token=BOTH_TOKEN) as client:
            # The read,write token's two writes landed, and it reads them back.
            assert client.get_user_state("env-both").event_count == 2
            recommended = {i.item_id for i in client.recommend("env-both", k=30).items}
            assert recommended and not {"2", "3"} & recommended  # consumed: excluded
        with InterestClient(running.target, timeout_s=10, max_attempts=1,
                            token="rw-unknown") as client, pytest.raises(InterestError) as info:
            client.recommend("u")
        assert info.value.code == C.UNAUTHENTICATED
        assert "rw-unknown" not in info.value.details
    finally:
        running.stop(grace_s=0.5)


@pytest.mark.parametrize("transport", ["plaintext", "tls", "mtls"])
def test_streaming_rpcs_are_guarded_too(servers: dict[str, RunningServer],
                                        maybe_certs: Certs | None, transport: str) -> None:
    with client_for(servers, maybe_certs, transport, READ_TOKEN) as client:
        with pytest.raises(InterestError) as info:
            list(client.stream_events([{"user_id": "s", "item_id": "1", "type": "like"}]))
        assert info.value.code == C.PERMISSION_DENIED
        with pytest.raises(InterestError) as info:
            client.upsert_items([{"item_id": "x1", "text": "Some film"}])
        assert info.value.code == C.PERMISSION_DENIED
        for call in (lambda: client.encode_interest("s", "I like comedies"),
                     lambda: client.delete_items(["x1"]), lambda: client.delete_user("s")):
            assert outcome(call) == C.PERMISSION_DENIED
        assert outcome(lambda: client.get_user_state("s")) == OK
    with client_for(servers, maybe_certs, transport, WRITE_TOKEN) as client:
        acks = list(client.stream_events([{"user_id": "s", "item_id": "1", "type": "like"}]))
        assert acks[0].status == pb.ACK_STATUS_APPLIED
        assert client.delete_user("s").keys_deleted == 2  # record and event log (no concepts)


@pytest.mark.parametrize("transport", ["plaintext", "tls", "mtls"])
def test_health_and_reflection_stay_open(servers: dict[str, RunningServer],
                                         maybe_certs: Certs | None, transport: str) -> None:
    with client_for(servers, maybe_certs, transport, None) as client:
        assert client.health() == "SERVING"
        assert client.health("interest.v1.InterestService") == "SERVING"
        # Reflection through the same (authenticated transport, no token) channel.
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(client._channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            list_services="")]), timeout=10)
        names = {s.name for r in replies for s in r.list_services_response.service}
        assert "interest.v1.InterestService" in names


def test_failed_handshakes_are_unavailable(servers: dict[str, RunningServer],
                                           certs: Certs) -> None:
    health = health_pb2.HealthCheckRequest()
    # Plaintext to a TLS port; TLS to a plaintext port; a server cert from an untrusted CA;
    # mTLS without a client certificate.
    cases = [
        grpc.insecure_channel(servers["tls"].target),
        grpc.secure_channel(servers["plaintext"].target,
                            grpc.ssl_channel_credentials(certs.ca.read_bytes())),
        grpc.secure_channel(servers["tls"].target,
                            grpc.ssl_channel_credentials(certs.rogue_ca.read_bytes())),
        grpc.secure_channel(servers["mtls"].target,
                            grpc.ssl_channel_credentials(certs.ca.read_bytes())),
    ]
    for channel in cases:
        with channel, pytest.raises(grpc.RpcError) as info:
            health_pb2_grpc.HealthStub(channel).Check(health, timeout=5)
        assert info.value.code() == C.UNAVAILABLE


def test_client_cli_speaks_tls_with_a_token(servers: dict[str, RunningServer], certs: Certs,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    target = servers["mtls"].target
    tls = ["--tls-ca", str(certs.ca), "--tls-cert", str(certs.client_cert),
           "--tls-key", str(certs.client_key)]
    assert cli.main(["--target", target, *tls, "--token", READ_TOKEN,
                     "recommend", "--user", "cli-user", "-k", "3"]) == 0
    assert "strategy" in capsys.readouterr().out
    assert cli.main(["--target", target, *tls, "state", "--user", "cli-user"]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    monkeypatch.setenv("INTEREST_TOKEN", WRITE_TOKEN)
    assert cli.main(["--target", target, *tls, "send", "--user", "cli-user", "--item", "3",
                     "--type", "like"]) == 0
    assert "APPLIED" in capsys.readouterr().out
    # Flags after the subcommand work as well.
    assert cli.main(["state", "--target", target, *tls, "--token", READ_TOKEN,
                     "--user", "cli-user"]) == 0


def test_token_file_format(tmp_path: Path) -> None:
    tokens = auth.parse_tokens("# comment\n\n a read\nb read,write ; c write\na write\n")
    assert sorted((g.scopes for g in tokens.values()), key=sorted) == [
        frozenset({"read", "write"}), frozenset({"read", "write"}), frozenset({"write"})]
    assert all(g.tenants is None for g in tokens.values())  # no tenant list: every tenant
    assert all(len(digest) == 32 for digest in tokens)  # kept as sha256 digests, not in clear
    for bad in ("tok", "tok admin", "tok read acme extra", "tok ,", "tok read Acme",
                "tok read acme,{x}", "tok read ,"):
        with pytest.raises(ValueError, match="entry 1"):
            auth.parse_tokens(bad)
    scoped = auth.parse_tokens("t1 read acme,globex; t2 write *; t3 read acme; t3 write beta")
    grants = sorted(scoped.values(), key=lambda g: sorted(g.tenants or {"*"}))
    assert grants == [auth.Grant(frozenset({"write"}), None),
                      auth.Grant(frozenset({"read", "write"}), frozenset({"acme", "beta"})),
                      auth.Grant(frozenset({"read"}), frozenset({"acme", "globex"}))]
    assert (auth.parse_tokens("t read acme; t read *")[auth._digest("t")].tenants is None), \
        "a token listed for every tenant anywhere acts for every tenant"
    path = tmp_path / "tokens"
    path.write_text(TOKEN_FILE)
    loaded = auth.load_tokens(Settings(auth_token_file=str(path), auth_tokens="z read"))
    assert len(loaded) == len(auth.parse_tokens(TOKEN_FILE)) + 1
    assert auth.interceptors(Settings(host="127.0.0.1")) == []


def test_every_method_needs_a_scope_and_reads_need_read() -> None:
    service = pb.DESCRIPTOR.services_by_name["InterestService"]
    assert {m.name for m in service.methods} == {p.rsplit("/", 1)[1] for p in auth.METHOD_SCOPES}
    reads = {p.rsplit("/", 1)[1] for p, s in auth.METHOD_SCOPES.items() if s == auth.READ}
    assert reads == {"Recommend", "GetUserState", "WatchRecommendations"}
    # Listed in the code, not only defaulted: a method is read or write on purpose.
    assert {m.name for m in service.methods} == auth._READ_METHODS | auth._WRITE_METHODS
    assert not auth._READ_METHODS & auth._WRITE_METHODS
    assert auth.METHOD_SCOPES["/interest.v1.InterestService/SetAttributeSynonyms"] == auth.WRITE


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    interceptor = auth.AuthInterceptor(auth.parse_tokens(TOKEN_FILE))
    assert interceptor.scopes_of(READ_TOKEN) == frozenset({"read"})
    assert interceptor.scopes_of("x") is None
    # Every stored token is compared every time (no early exit), as equal-length digests.
    stored = len(auth.parse_tokens(TOKEN_FILE))
    assert len(calls) == 2 * stored and all(len(a) == len(b) == 32 for a, b in calls)


def test_client_security_arguments(certs: Certs) -> None:
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        InterestClient("127.0.0.1:1", tls_cert=certs.client_cert)
    with pytest.raises(ValueError, match="either credentials"):
        InterestClient("127.0.0.1:1", credentials=grpc.ssl_channel_credentials(), tls=True)
    for bad in ("", "two words", " "):
        with pytest.raises(ValueError, match="token"):
            InterestClient("127.0.0.1:1", token=bad)
    with InterestClient("127.0.0.1:1", token="abc", metadata=[("x-trace", "1")]) as client:
        assert client._metadata == (("x-trace", "1"), ("authorization", "Bearer abc"))
