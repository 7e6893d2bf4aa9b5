"""Row scope over HTTP (issue 19, gap 5): a grant with scope ``all`` answers for a resident outside the consumer's
area; one jurisdiction grant in the same operation narrows the whole operation to the area again."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.app import create_app
from hub.demo.generate import GenerateResult
from hub.settings import Settings
from tests.conftest import POLICIES, Hub


@pytest.fixture(scope="module")
async def scoped(
    dept_data: tuple[Path, GenerateResult], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Hub]:
    root = tmp_path_factory.mktemp("scope")
    (root / "departments").symlink_to(dept_data[0] / "departments")
    policies = root / "policies"
    shutil.copytree(POLICIES, policies)
    ps = policies / "public_security.toml"
    head, ref = ps.read_text(encoding="utf-8").split('id = "ps-ref"')
    assert 'scope = "jurisdiction"' in ref.split("[[grants]]")[0]
    ps.write_text(head + 'id = "ps-ref"' + ref.replace('scope = "jurisdiction"', 'scope = "all"', 1), encoding="utf-8")
    settings = Settings(data_dir=root, policy_dir=policies)
    app = create_app(settings, sign_interval=3600)
    # a 西湖 (330106) consumer; the golden resident lives in 临平 (330113)
    _, secret = app.state.hub.clients.add("xihu-util", "utilities", "330106", ["REF"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield Hub(app, client, settings, {"xihu-util": secret}, dept_data[1], {})
    app.state.hub.close()


async def test_all_scope_grant_answers_out_of_area(scoped: Hub) -> None:
    q = "query($id: String!) { person(idNumber: $id) { nameMasked household { addressMasked } } }"
    r = await scoped.query(q, client="xihu-util", purpose="REF", variables={"id": scoped.data.golden_id})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"person": {"nameMasked": "钱**", "household": {"addressMasked": "临平区运河街道****"}}}


async def test_one_jurisdiction_grant_narrows_the_operation(scoped: Hub) -> None:
    q = "query($id: String!) { person(idNumber: $id) { nameMasked civilAffairs { isRecipient } } }"
    r = await scoped.query(q, client="xihu-util", purpose="REF", variables={"id": scoped.data.golden_id})
    assert r.json()["data"] == {"person": None}, r.text
    assert "钱" not in r.text
