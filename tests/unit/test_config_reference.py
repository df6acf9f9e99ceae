"""docs/configuration.md is what config.reference_markdown() renders now, and --help gives each
setting one short sentence."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest
from interest_server import config

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_configuration_reference_is_current() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == config.reference_markdown(), (
        f"{REFERENCE} is stale: run `{config.REFERENCE_COMMAND}` and commit the result")


def test_every_setting_has_a_short_first_sentence() -> None:
    docs = config._field_docs()
    for f in fields(config.Settings):
        first = config.summary(docs.get(f.name, ""))
        assert first.endswith((".", "!", "?")) and 10 < len(first) <= 140, (f.name, first)


def test_help_gives_the_first_sentence_the_variable_and_the_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTEREST_PORT", raising=False)
    monkeypatch.setenv("INTEREST_AUTH_TOKENS", "s3cret-token read")
    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    config.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "gRPC port; 0 picks a free one. [env INTEREST_PORT; default 50051]" in text
    assert "[env INTEREST_AUTH_TOKENS; value not shown]" in text
    assert "s3cret" not in text and "(default:" not in text
    assert "docs/configuration.md" in text
    # The full docstring stays out of --help: only its first sentence.
    assert "bench/README.md" not in text
