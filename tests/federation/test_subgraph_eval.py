"""The hub-side evaluation of predicates and row scope for subgraph departments is safe under concurrency:
answers never mix rows of concurrent requests (a leak across jurisdictions found by the peer benchmark)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

from hub.departments import residents
from hub.sources.subgraph import _matching


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
