"""Redis key builders: one hash slot per user, injective escaping, SCAN patterns that fit."""

from __future__ import annotations

import itertools

import pytest
from interest_server.state.keys import KeySpace, item_key, user_key_pattern, user_keys

SLOTS = 16384


def crc16_xmodem(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the checksum Redis Cluster uses; written out bit by bit."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_hash_slot(key: str) -> int:
    """Redis Cluster's keyHashSlot(): hash only a non-empty {tag}, else the whole key."""
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end != -1 and end != start + 1:
            raw = raw[start + 1:end]
    return crc16_xmodem(raw) % SLOTS


def test_slot_function_matches_the_cluster_spec() -> None:
    # Reference values from the Redis Cluster specification and redis-py's implementation.
    assert crc16_xmodem(b"123456789") == 0x31C3
    assert key_hash_slot("foo") == 12182
    assert key_hash_slot("{user1000}.following") == key_hash_slot("{user1000}.followers")
    assert key_hash_slot("foo{}{bar}") != key_hash_slot("bar")  # empty tag: whole key hashed
    assert key_hash_slot("foo{{bar}}zap") == key_hash_slot("{bar")
    crc = pytest.importorskip("redis.crc")
    for key in ["foo", "u:{42}:state", "a{b}c", "{}x", "x{", "ü{ß}"]:
        assert key_hash_slot(key) == crc.key_slot(key.encode())


USER_IDS = ["42", "alice", "{", "}", "}{", "{}", "{x}", "%7B", "%7D", "%", "%25", "a}b{c",
            "ü-漢字-🙂", "{漢}", "u:{1}:state", "*", "[a]", "\\", "a b"]


@pytest.mark.parametrize("user_id", USER_IDS)
def test_all_keys_of_a_user_share_one_slot(user_id: str) -> None:
    keys = user_keys(user_id).all()
    assert len(keys) == 8
    assert len(set(keys)) == 8
    slots = {key_hash_slot(k) for k in keys}
    assert len(slots) == 1, (user_id, keys)
    # The slot is that of the tag alone, i.e. the keys really use a hash tag.
    tag = keys[0][keys[0].index("{") + 1:keys[0].index("}")]
    assert tag
    assert slots == {key_hash_slot(tag)}


def test_empty_user_id_keys_share_one_slot() -> None:
    # Was a bug: 'u:{}:...' is an empty hash tag, so Redis hashed whole keys to different slots.
    keys = user_keys("").all()
    assert len({key_hash_slot(k) for k in keys}) == 1


def test_key_shapes() -> None:
    keys = user_keys("42")
    assert keys.record == "u:{42}:rec"
    assert keys.all() == ["u:{42}:rec", "u:{42}:concepts", "u:{42}:log", "u:{42}:state",
                          "u:{42}:win", "u:{42}:seen", "u:{42}:ids", "u:{42}:idt"]
    assert user_keys("{a}").record == "u:{%7Ba%7D}:rec"
    assert item_key("m1") == "item:m1"


def test_escaping_is_injective_over_a_small_alphabet() -> None:
    # Every string over the troublesome characters up to length 4: no two users share a key.
    alphabet = "{}%7BD"
    ids = ["".join(p) for n in range(5) for p in itertools.product(alphabet, repeat=n)]
    states = [user_keys(i).state for i in ids]
    assert len(set(states)) == len(ids) == sum(len(alphabet) ** n for n in range(5))


@pytest.mark.parametrize(("a", "b"), [
    ("{a}", "%7Ba%7D"), ("%7B", "{"), ("%257B", "%7B"), ("a}", "a%7D"), ("}{", "%7D%7B"),
    ("%", "%25"), ("{}", "%7B%7D"),
])
def test_ids_differing_only_by_braces_or_escapes_get_different_keys(a: str, b: str) -> None:
    ka, kb = user_keys(a), user_keys(b)
    assert not set(ka.all()) & set(kb.all())


def redis_glob(pattern: str, text: str) -> bool:
    """Redis' stringmatchlen(): *, ?, [...] with ^ and ranges, backslash escapes."""
    p, t = 0, 0
    while p < len(pattern):
        c = pattern[p]
        if c == "*":
            while p + 1 < len(pattern) and pattern[p + 1] == "*":
                p += 1
            if p + 1 == len(pattern):
                return True
            return any(redis_glob(pattern[p + 1:], text[i:]) for i in range(t, len(text) + 1))
        if t >= len(text):
            return False
        if c == "?":
            p, t = p + 1, t + 1
            continue
        if c == "[":
            p += 1
            negate = p < len(pattern) and pattern[p] == "^"
            if negate:
                p += 1
            matched = False
            while p < len(pattern) and pattern[p] != "]":
                if pattern[p] == "\\" and p + 1 < len(pattern):
                    p += 1
                    matched |= pattern[p] == text[t]
                elif p + 2 < len(pattern) and pattern[p + 1] == "-":
                    lo, hi = sorted((pattern[p], pattern[p + 2]))
                    matched |= lo <= text[t] <= hi
                    p += 2
                else:
                    matched |= pattern[p] == text[t]
                p += 1
            if matched == negate:
                return False
            p, t = p + 1, t + 1
            continue
        if c == "\\" and p + 1 < len(pattern):
            p += 1
            c = pattern[p]
        if c != text[t]:
            return False
        p, t = p + 1, t + 1
    return t == len(text)


def test_redis_glob_helper() -> None:
    assert redis_glob("u:\\{a\\}:*", "u:{a}:state")
    assert not redis_glob("u:\\{a\\}:*", "u:{ab}:state")
    assert redis_glob("h?llo", "hello") and not redis_glob("h?llo", "hllo")
    assert redis_glob("h[^e]llo", "hallo") and not redis_glob("h[^e]llo", "hello")
    assert redis_glob("a\\*", "a*") and not redis_glob("a\\*", "ab")


PATTERN_IDS = USER_IDS + ["a", "ab", "a*", "a?", "[ab]", "a\\", "a\\*", "^", "-", ""]


@pytest.mark.parametrize("user_id", PATTERN_IDS)
def test_user_key_pattern_matches_exactly_the_users_keys(user_id: str) -> None:
    pattern = user_key_pattern(user_id)
    for key in user_keys(user_id).all():
        assert redis_glob(pattern, key), (pattern, key)
    for other in PATTERN_IDS:
        if other == user_id:
            continue
        for key in user_keys(other).all():
            assert not redis_glob(pattern, key), (user_id, other, pattern, key)
    assert not redis_glob(pattern, "item:" + user_id)


@pytest.mark.parametrize("tenant", ["default", "acme"])
def test_user_of_inverts_the_user_keys(tenant: str) -> None:
    space = KeySpace(tenant)
    for user_id in [*USER_IDS, ""]:
        for key in space.user(user_id).all():
            assert space.user_of(key) == user_id
            assert space.user_of(key.encode()) == user_id
    with pytest.raises(ValueError):
        space.user_of(KeySpace("other").user("42").log)
