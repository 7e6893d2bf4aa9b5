"""BulkLoader: one fetch per event-loop turn, each key fetched once per request, failures shared."""

from __future__ import annotations

import asyncio

import pytest

from hub.errors import UpstreamUnavailable
from hub.schema.loader import BulkLoader


class Fetcher:
    def __init__(self, fail: bool = False, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.fail, self.delay = fail, delay

    async def __call__(self, keys: list[str]) -> list[str]:
        self.batches.append(keys)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise UpstreamUnavailable("department x is unavailable")
        return [k.upper() for k in keys]


async def test_keys_asked_in_one_turn_go_in_one_batch_in_order() -> None:
    fetch = Fetcher()
    loader = BulkLoader(fetch)
    a, b, c = loader.load_many(["a", "b"]), loader.load("c"), loader.load_many(["b", "d", "a"])
    assert (await a, await b, await c) == (["A", "B"], "C", ["B", "D", "A"])
    assert fetch.batches == [["a", "b", "c", "d"]]
    # later: answered from what this request already fetched; only new keys are fetched
    assert await loader.load_many(["d", "e", "a"]) == ["D", "E", "A"]
    assert fetch.batches == [["a", "b", "c", "d"], ["e"]] and loader.calls == 2


async def test_a_key_in_flight_is_not_fetched_twice() -> None:
    fetch = Fetcher(delay=0.02)
    loader = BulkLoader(fetch)
    first = loader.load_many(["a", "b"])
    await asyncio.sleep(0.005)  # the first batch is in flight now
    second = loader.load_many(["b", "c"])
    assert await second == ["B", "C"] and await first == ["A", "B"]
    assert fetch.batches == [["a", "b"], ["c"]]


async def test_a_failed_batch_fails_every_caller_and_is_not_retried() -> None:
    fetch = Fetcher(fail=True)
    loader = BulkLoader(fetch)
    one, many = loader.load("a"), loader.load_many(["a", "b"])
    for pending in (one, many):
        with pytest.raises(UpstreamUnavailable, match="department x is unavailable"):
            await pending
    with pytest.raises(UpstreamUnavailable):
        await loader.load("b")
    assert fetch.batches == [["a", "b"]]


async def test_empty_and_wrong_length_answers() -> None:
    assert await BulkLoader(Fetcher()).load_many([]) == []

    async def short(keys: list[str]) -> list[str]:
        return keys[:-1]

    with pytest.raises(RuntimeError, match="a batch of 2 keys was answered with 1 values"):
        await BulkLoader(short).load_many(["a", "b"])
