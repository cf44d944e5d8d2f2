"""The gateway's lookup cache: one lookup per key however many requests miss at once, and a
`forget` is not undone by a lookup that was already under way."""

from __future__ import annotations

import asyncio

import pytest

from api.gateway.ttl_cache import TtlCache


async def test_concurrent_misses_share_one_lookup() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    async def load(key: str) -> str:
        calls.append(key)
        await release.wait()
        return key.upper()

    cache: TtlCache[str, str] = TtlCache(load, ttl=10)
    waiting = [asyncio.create_task(cache.get("a")) for _ in range(8)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == ["A"] * 8
    assert calls == ["a"]
    assert await cache.get("a") == "A" and calls == ["a"]


async def test_a_cancelled_caller_does_not_cancel_the_lookup() -> None:
    release = asyncio.Event()

    async def load(key: str) -> str:
        await release.wait()
        return key

    cache: TtlCache[str, str] = TtlCache(load, ttl=10)
    first = asyncio.create_task(cache.get("a"))
    second = asyncio.create_task(cache.get("a"))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "a"


async def test_forget_during_a_lookup_is_not_undone() -> None:
    values = iter(["valid", "revoked"])
    release = asyncio.Event()

    async def load(key: str) -> str:
        value = next(values)
        await release.wait()
        return value

    cache: TtlCache[str, str] = TtlCache(load, ttl=10)
    pending = asyncio.create_task(cache.get("key"))
    await asyncio.sleep(0)
    cache.forget(lambda key, value: key == "key")
    release.set()
    assert await pending == "valid"
    assert await cache.get("key") == "revoked"


async def test_a_failed_lookup_keeps_the_last_answer() -> None:
    answers: list[str | Exception] = ["valid", ConnectionRefusedError(), "revoked"]

    async def load(key: str) -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache: TtlCache[str, str] = TtlCache(load, ttl=0.01)
    assert await cache.get("key") == "valid"
    await asyncio.sleep(0.02)
    assert await cache.get("key") == "valid"  # the catalog is away
    await asyncio.sleep(0.02)
    assert await cache.get("key") == "revoked"
    with pytest.raises(ConnectionRefusedError):  # nothing known: nothing to fall back on
        await TtlCache(load_failing, ttl=1).get("other")


async def load_failing(key: str) -> str:
    raise ConnectionRefusedError


async def test_an_answer_is_kept_as_long_as_its_value_says() -> None:
    """The gateway keeps "no ready replica" for a moment only: a workload that has just
    become ready must not be refused from an older memory."""
    answers = iter(["", "ready", "other"])
    calls: list[str] = []

    async def load(key: str) -> str:
        calls.append(key)
        return next(answers)

    cache: TtlCache[str, str] = TtlCache(load, ttl=10, ttl_of=lambda value: 10 if value else 0.02)
    assert await cache.get("w") == "" and await cache.get("w") == ""  # kept for the moment
    await asyncio.sleep(0.03)
    assert await cache.get("w") == "ready"
    await asyncio.sleep(0.03)
    assert await cache.get("w") == "ready" and calls == ["w", "w"]
