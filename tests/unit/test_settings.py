"""Settings refuse values the server cannot run with, and the CLI says which flag is wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest
from interest_server.config import Settings


def test_coalesce_events_must_be_positive() -> None:
    assert Settings(coalesce_events=1).coalesce_events == 1
    with pytest.raises(ValueError, match="--coalesce-events must be at least 1"):
        Settings(coalesce_events=0)


def test_the_cli_reports_a_bad_setting_as_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "interest_server.cli", "serve",
                           "--coalesce-events", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--coalesce-events must be at least 1" in proc.stderr
    assert "Traceback" not in proc.stderr
