"""Python client for interest.v1.InterestService: stubs plus an ergonomic wrapper and CLI."""
