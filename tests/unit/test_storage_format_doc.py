"""docs/storage-format.md matches the code: every key, script, record field and constant."""

from __future__ import annotations

import re
import struct
from pathlib import Path

from interest_server.events import EventType
from interest_server.state import keys, user_record, user_store
from interest_server.state.keys import KeySpace
from interest_server.state.user_record import EVENT_DTYPE, HEADER, MAGIC, META, ROW

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "storage-format.md"
LUA = Path(user_record.__file__).parent / "lua"
LINK = "Spec: docs/storage-format.md"


def spec() -> str:
    return SPEC.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The spec's text from the heading `title` to the next heading of any level."""
    text = spec()
    start = text.find(title)
    assert start >= 0, f"no heading {title!r} in {SPEC.name}: the code and the spec differ"
    end = text.find("\n#", start + len(title))
    return text[start:] if end < 0 else text[start:end]


def table_rows(text: str, first_header: str) -> list[list[str]]:
    """Cells of the body rows of the first table in `text` whose header starts with
    `| first_header |`."""
    lines = text.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[at + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_the_code_links_the_spec() -> None:
    for module in (keys, user_record):
        assert LINK in (module.__doc__ or ""), module.__name__
    scripts = sorted(LUA.glob("*.lua"))
    assert scripts
    for script in scripts:
        assert LINK in script.read_text(encoding="utf-8"), script.name


def test_every_lua_script_is_specced_with_its_own_section() -> None:
    text = spec()
    for script in sorted(LUA.glob("*.lua")):
        assert f"### `{script.name}`" in text, script.name


def test_every_key_builder_and_key_pattern_appears() -> None:
    text = spec()
    builders = [name for name, value in vars(keys).items()
                if callable(value) and not name.startswith("_")
                and getattr(value, "__module__", "") == keys.__name__
                and not isinstance(value, type)]
    members = [name for cls in (KeySpace, keys.UserKeys) for name, value in vars(cls).items()
               if not name.startswith("_") and isinstance(value, (property, type(spec)))]
    members += list(keys.UserKeys.__dataclass_fields__)
    assert {"user", "item", "channel", "user_pattern", "all", "record"} <= set(members)
    for name in builders + members:
        # `name`, `name(...)`, `KeySpace.name`, `UserKeys.name()` or `user(id).name`
        quoted = rf"`(KeySpace\.|UserKeys\.|user\(id\)\.)?{name}(\(|`)"
        assert re.search(quoted, text), name
    space = KeySpace()
    user = space.user("<tag>")
    patterns = [getattr(user, f) for f in keys.UserKeys.__dataclass_fields__]
    patterns += [space.item("<item id>"), space.channel("<tag>"), space.catalog_ids,
                 space.catalog_changes, space.popularity]
    for pattern in patterns:
        assert f"`{pattern}`" in text, pattern
    acme = KeySpace("acme")
    for example in (acme.user("42").record, acme.item("7"), acme.catalog_changes, acme.popularity,
                    acme.channel("42"), space.user("42").record, space.user_pattern("42")):
        assert f"`{example}" in text, example


def test_the_hash_tag_escaping_table_matches_the_code() -> None:
    rows = table_rows(section("### The user's hash tag"), "in the user id")
    quoted = {re.sub(r"`", "", r[0]): re.sub(r"`([^`]*)`.*", r"\1", r[1]) for r in rows}
    assert quoted.pop("the empty id") == keys._tag("")
    assert quoted == {c: keys._tag(c) for c in "%{}"}
    assert f"`{keys.DEFAULT_KEYS.user('a{b}%').record}`" in spec()


def _offsets(fmt: str) -> list[tuple[int, int]]:
    """(offset, size) of each field of a packed little-endian struct format."""
    out, at = [], 0
    for count, code in re.findall(r"(\d*)([a-zA-Z])", fmt.lstrip("<")):
        size = struct.calcsize("<" + count + code)
        out.append((at, size))
        at += size
    return out


def test_the_header_and_meta_table_matches_the_structs() -> None:
    title = f"### Header and meta ({HEADER.size + META.size} bytes, `HEADER` + `META`)"
    rows = table_rows(section(title), "offset")
    layout = _offsets(HEADER.format) + [(HEADER.size + o, s) for o, s in _offsets(META.format)]
    assert [(int(r[0]), int(r[1])) for r in rows] == layout
    text = spec()
    assert f"(`HEADER`, `struct` `{HEADER.format}`, {HEADER.size} bytes)" in text
    assert f"(`{META.format}`, {META.size} bytes)" in text
    assert f"first {HEADER.size} bytes" in text
    assert " ".join(f"{b:02x}" for b in MAGIC) in rows[0][4]


def test_the_event_row_table_matches_the_dtype() -> None:
    title = f"### Event row ({ROW.size} bytes, `EVENT_DTYPE` / `ROW` = `{ROW.format}`)"
    rows = table_rows(section(title), "offset")
    fields = [(EVENT_DTYPE.fields[n][1], EVENT_DTYPE.fields[n][0].itemsize, n)
              for n in EVENT_DTYPE.names]
    assert [(int(r[0]), int(r[1]), r[3]) for r in rows] == fields
    assert ROW.size == EVENT_DTYPE.itemsize
    assert f"{ROW.size} × count" in spec()


def test_the_constants_quoted_match() -> None:
    text = spec()
    assert f"`NO_ITEM` = `0x{user_record.NO_ITEM:08X}`" in text
    assert f"`VECTOR_F32` = {user_record.VECTOR_F32}" in text
    assert f"`POPULARITY_EPOCH_MS`\n({user_store.POPULARITY_EPOCH_MS:,}" in text
    assert f"| {user_store.WRITTEN} | written (`WRITTEN`) |" in text
    assert f"| {user_store.WRITE_FORMAT1} |" in text and "(`WRITE_FORMAT1`)" in text
    types = ", ".join(f"{t.value} {t.name.lower()}" for t in EventType)
    assert types in text
    assert f"`{keys.TENANT_PATTERN.pattern}`" in text


def test_the_script_arguments_are_all_specced() -> None:
    source = (LUA / "write_record.lua").read_text(encoding="utf-8")
    argv = max(int(n) for n in re.findall(r"ARGV\[(\d+)\]", source))
    nkeys = max(int(n) for n in re.findall(r"KEYS\[(\d+)\]", source))
    part = section("### `write_record.lua`")
    assert [r[0] for r in table_rows(part, "ARGV")] == [str(n) for n in range(1, argv + 1)]
    assert table_rows(part, "KEYS")[-1][0].endswith(str(nkeys))
    assert nkeys == len(keys.UserKeys.__dataclass_fields__)
