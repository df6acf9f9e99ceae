"""Python module paths written outside Python files (.ci/run, Makefile, Dockerfile, docs) exist:
a module that moves must take its shell snippets and docs along (.ci/run once named a module
that had moved, which only a CI run showed)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / ".ci" / "run", ROOT / "Makefile", ROOT / "Dockerfile", ROOT / "README.md",
         *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "deploy").rglob("*.y*ml")),
         ROOT / "deploy" / "README.md", ROOT / "bench" / "README.md"]
FROM_IMPORT = re.compile(r"\bfrom (interest_server[\w.]*) import ([\w, ]+)")
RUN_MODULE = re.compile(r"python[\d.]* -m (interest_server[\w.]*)")


def references() -> list[tuple[str, str, list[str]]]:
    found = []
    for path in FILES:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(ROOT))
        for match in FROM_IMPORT.finditer(text):
            names = [n.strip().split(" as ")[0] for n in match.group(2).split(",") if n.strip()]
            found.append((where, match.group(1), names))
        for match in RUN_MODULE.finditer(text):
            found.append((where, match.group(1), []))
    return found


def test_some_references_are_checked() -> None:
    assert any(where == ".ci/run" for where, _, _ in references())


@pytest.mark.parametrize(("where", "module", "names"), references(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_reference_resolves(where: str, module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    missing = [n for n in names if not hasattr(loaded, n)
               and importlib.util.find_spec(f"{module}.{n}") is None]
    assert not missing, f"{where}: {module} has no {missing}"
