"""Real-time interest server: gRPC service, encoder, Redis state, catalog index, ranking."""
