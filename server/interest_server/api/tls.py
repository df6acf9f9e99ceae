"""Transport security for the gRPC port: plaintext, TLS, or mutual TLS, chosen by Settings."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from interest_server.config import Settings

log = logging.getLogger(__name__)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the cert/key files, requiring client certificates signed by
    tls_client_ca_file when it is set (mutual TLS); None when no certificate is configured."""
    if not settings.tls_cert_file and not settings.tls_key_file:
        if settings.tls_client_ca_file:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        return None
    if not settings.tls_cert_file or not settings.tls_key_file:
        raise ValueError("TLS needs both tls_cert_file and tls_key_file")
    key = Path(settings.tls_key_file).read_bytes()
    chain = Path(settings.tls_cert_file).read_bytes()
    client_ca = (Path(settings.tls_client_ca_file).read_bytes()
                 if settings.tls_client_ca_file else None)
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def add_port(server: grpc.Server, settings: Settings) -> int:
    """Bind settings.host:settings.port with the configured transport; returns the port."""
    address = f"{settings.host}:{settings.port}"
    credentials = server_credentials(settings)
    if credentials is None:
        return server.add_insecure_port(address)
    log.info("gRPC port uses %s", "mutual TLS" if settings.tls_client_ca_file else "TLS")
    return server.add_secure_port(address, credentials)


__all__ = ["add_port", "server_credentials"]
