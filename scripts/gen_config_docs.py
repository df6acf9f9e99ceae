"""Regenerate docs/configuration.md from the Settings docstrings (`make config-docs`)."""

from __future__ import annotations

from pathlib import Path

from interest_server.config import reference_markdown

OUT = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def main() -> None:
    OUT.write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
