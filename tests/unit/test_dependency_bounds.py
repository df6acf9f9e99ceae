"""pyproject.toml's dependency bounds follow the rules of docs/dependencies.md."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
MAJOR_BOUNDED = {"redis", "numpy", "torch", "transformers", "protobuf"}
"""Packages whose major releases have changed what we rely on (docs/dependencies.md)."""


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return {r.name.lower(): r for r in reqs}


def test_packages_whose_majors_broke_us_have_an_upper_bound() -> None:
    reqs = _requirements()
    for name in MAJOR_BOUNDED:
        uppers = [s for s in reqs[name].specifier if s.operator == "<"]
        assert uppers, f"{name} needs an upper bound (docs/dependencies.md)"
        # The bound admits the version this environment was tested with, and no later major.
        installed = Version(version(name))
        assert reqs[name].specifier.contains(installed, prereleases=True), (name, installed)
        assert Version(uppers[0].version).major <= installed.major + 1, (name, uppers[0])


def test_the_protobuf_floor_is_the_stubs_gencode_version() -> None:
    """The generated stubs refuse a runtime older than the protoc that made them, at import."""
    floor = min(Version(s.version) for s in _requirements()["protobuf"].specifier
                if s.operator == ">=")
    gencode = set()
    for stub in (ROOT / "client" / "interest").rglob("*_pb2.py"):
        match = re.search(r"^# Protobuf Python Version: (\S+)$", stub.read_text(), re.M)
        assert match, stub
        gencode.add(Version(match.group(1)))
    assert gencode and floor >= max(gencode), (floor, gencode)
