"""Aggregates for statistics: counts from the sources, perturbed by the cell-key method (a multiple of 10, at most
9 off), cells under 10 suppressed, jurisdiction applies. The differencing attack: tests/test_inference.py."""

from __future__ import annotations

import sqlite3
from collections import Counter

from tests.conftest import Hub, without_receipt

Q = """query($a: String!) { statistics(area: $a) { residentsByArea { key count suppressed }
  recipientsByTier { key count suppressed } disabilityByGrade { key count suppressed } } }"""


def near(published: int | None, true: int) -> int | None:
    """The true count if ``published`` is a perturbed form of it (a multiple of 10 at most 9 away), else the
    published figure (so the comparison fails and shows it)."""
    if published is not None and published % 10 == 0 and abs(published - true) <= 9:
        return true
    return published


async def test_counts_match_the_sources_and_small_cells_are_suppressed(hub: Hub) -> None:
    r = await hub.query(Q, client="hangzhou-ca", purpose="STAT", case=None, variables={"a": "3301"})
    assert r.status_code == 200, r.text
    stats = r.json()["data"]["statistics"]
    depts = hub.settings.data_dir / "departments"
    ps = sqlite3.connect(depts / "public_security.sqlite")
    by_area = Counter(
        a for (a,) in ps.execute("SELECT area_code FROM residents WHERE status='normal' AND area_code LIKE '3301%'")
    )
    assert {c["key"]: near(c["count"], by_area[c["key"]]) for c in stats["residentsByArea"]} == {
        k: (n if n >= 10 else None) for k, n in by_area.items()
    }
    assert all(c["suppressed"] == (by_area[c["key"]] < 10) for c in stats["residentsByArea"])
    ids = {i for (i,) in ps.execute("SELECT id_number FROM residents WHERE area_code LIKE '3301%'")}
    ca = sqlite3.connect(depts / "civil_affairs.sqlite")
    tiers = Counter(
        t for i, t in ca.execute("SELECT id_number, tier FROM assistance WHERE end_date IS NULL") if i in ids
    )
    assert {c["key"]: near(c["count"], tiers[c["key"]]) for c in stats["recipientsByTier"]} == {
        k: (n if n >= 10 else None) for k, n in tiers.items()
    }
    assert (
        any(c["suppressed"] for c in stats["recipientsByTier"] + stats["disabilityByGrade"])
        or min(tiers.values()) >= 10
    )


async def test_statistics_outside_jurisdiction_is_null(hub: Hub) -> None:
    r = await hub.query(Q, client="linping-ca", purpose="STAT", case=None, variables={"a": "330106"})
    assert r.status_code == 200 and without_receipt(r.json()) == {"data": {"statistics": None}}


async def test_statistics_need_the_stat_purpose(hub: Hub) -> None:
    r = await hub.query(Q, client="hangzhou-ca", purpose="MON", case=None, variables={"a": "3301"})
    assert r.status_code == 403
    denied = [d["coordinate"] for d in r.json()["errors"][0]["extensions"]["denied"]]
    assert denied == ["Statistics.residentsByArea", "Statistics.recipientsByTier", "Statistics.disabilityByGrade"]
