"""Use cases: ingest, encode, recommend, watch, one engine per tenant."""
