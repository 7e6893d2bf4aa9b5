"""Interop: a department subgraph written independently with strawberry's federation support gives the hub the
same answers as the built-in subgraph (and the SQL source); Apollo Server's ``@apollo/subgraph`` is not installed
here (no npm registry), so it is not run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import serve, without_receipt
from tests.live import Fed, FedHub, running
from tests.sources.strawberry_edu import create_app
from tests.sources.test_subgraph import EDU_FIELDS, _ids


@pytest.fixture(scope="module")
async def strawberry_hub(fed: Fed) -> AsyncIterator[FedHub]:
    with serve(create_app(fed.root / "departments" / "education.sqlite")) as url:
        async with running(fed.settings("strawberry", department_urls={"education": url + "/graphql"})) as h:
            yield h


async def test_strawberry_federation_department_answers_like_the_built_in_one(
    fed: Fed, strawberry_hub: FedHub, sub_hub: FedHub, sql_hub: FedHub
) -> None:
    ids = _ids(fed, 300)
    q = f"query($ids: [String!]!) {{ people(idNumbers: $ids) {{ idNumber education {{ {EDU_FIELDS} }} }} }}"
    theirs = await strawberry_hub.query(q, variables={"ids": ids})
    ours = await sub_hub.query(q, variables={"ids": ids})
    assert theirs.status_code == 200 and "errors" not in theirs.json(), theirs.text[:500]
    assert (
        without_receipt(theirs.json())
        == without_receipt(ours.json())
        == without_receipt((await sql_hub.query(q, variables={"ids": ids})).json())
    )
    people = theirs.json()["data"]["people"]
    assert any(p["education"]["isFullTimeStudent"] for p in people)
    assert any(p["education"]["stage"] is not None for p in people)
