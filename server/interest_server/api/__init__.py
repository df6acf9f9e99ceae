"""Transport: the gRPC server factory, servicer, status mapping, validation, auth, TLS,
tenant resolution, stream admission."""
