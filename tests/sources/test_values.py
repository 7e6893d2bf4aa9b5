"""The hub-side evaluation of predicates and row scope for subgraph departments is safe under concurrency:
answers never mix rows of concurrent requests (a leak across jurisdictions found by the peer benchmark)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

from hub.departments import residents
from hub.sources.values import matching as _matching


def _records(n: int, area: str, tag: int) -> list[dict[str, object]]:
    return [
        {
            "id_number": f"{tag:03d}{i:015d}",
            "name": "x",
            "sex": "male",
            "dob": date(1950, 1, 1),
            "area_code": area,
            "hukou_addr": "",
            "household_id": f"H{tag}",
            "relation_code": "01",
            "status": "normal",
            "synthetic": True,
        }
        for i in range(n)
    ]


def test_concurrent_evaluations_do_not_mix() -> None:
    condition = residents.c.area_code.startswith("330113", autoescape=True)

    def job(k: int) -> tuple[int, set[int]]:
        area = "330113" if k % 2 else "330106"  # odd jobs are in scope, even jobs are not
        return k, _matching(residents, _records(200, area, k), condition)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(job, range(200)))
    for k, hits in results:
        assert hits == (set(range(200)) if k % 2 else set()), k


async def test_the_row_scope_is_checked_in_python_exactly_as_sqlite_would() -> None:
    from hub.sources.values import prefix_test as _prefix_test
    from hub.sources.values import select_matching as _select

    records = _records(3, "330113", 1) + _records(2, "330106", 2) + _records(2, "3301", 3)
    records[0]["area_code"] = None  # a missing value is never in scope
    for prefix in ("330113", "3301", "33", "330106"):
        condition = residents.c.area_code.startswith(prefix, autoescape=True)
        assert _prefix_test(residents, condition) == ("area_code", prefix)  # the fast path is taken
        assert await _select(residents, records, condition) == _matching(residents, records, condition)
    assert await _select(residents, records, residents.c.area_code.startswith("3301", autoescape=True)) == {
        1,
        2,
        3,
        4,
        5,
        6,
    }
    # anything else (escaped LIKE characters, other operators) is left to SQLite
    odd = residents.c.area_code.startswith("33_1", autoescape=True)
    assert _prefix_test(residents, odd) is None
    assert await _select(residents, records, odd) == _matching(residents, records, odd) == set()
    assert _prefix_test(residents, residents.c.dob < date(1960, 1, 1)) is None
