"""The console in a real browser: Playwright driving Debian's chromium (``/usr/bin/chromium``; .ci/run installs
it, and a laptop without it skips these tests). Screenshots of each view go to tests/console/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.demo.generate import GenerateResult
from tests.browser import CHROMIUM, MISSING, SHOTS, follow
from tests.console.conftest import OFFICER, PASSWORD, ConsoleHub

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING)


async def new_page(browser: Any, hub: ConsoleHub, **context: Any) -> tuple[Any, Any, list[str]]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True, **context)
    page = await ctx.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    return ctx, page, requested


async def test_an_officer_signs_in_finds_the_golden_resident_checks_a_proof_and_exports(
    browser: Any, console_hub: ConsoleHub, tmp_path: Path
) -> None:
    hub = console_hub
    ctx, page, requested = await new_page(browser, hub)
    await page.goto(f"{hub.url}/console/")
    assert page.url == f"{hub.url}/console/login"
    await page.screenshot(path=SHOTS / "login.png", full_page=True)
    await page.fill("input[name=name]", OFFICER)
    await page.fill("input[name=password]", PASSWORD)
    await follow(page, "button[type=submit]")
    assert page.url == f"{hub.url}/console/"
    assert await page.inner_text("h1") == "概览 Overview"
    assert int(await page.inner_text("#total")) >= 2
    await page.screenshot(path=SHOTS / "overview.png", full_page=True)

    # search by the resident's ID number: the URL carries the pseudonym, never the number
    await follow(page, "text=检索 Search")
    await page.fill("#id_number", hub.golden_id)
    await follow(page, "#find-button")
    pseudonym = hub.app.state.hub.audit.pseudonym(hub.golden_id)  # type: ignore[attr-defined]
    assert page.url == f"{hub.url}/console/search?subject={pseudonym}"
    rows = page.locator("#results tr")
    assert await rows.count() >= 3  # header, the golden request, the refused attempt
    assert "CASE-2026-0117" in await page.inner_text("#results")
    await page.screenshot(path=SHOTS / "search.png", full_page=True)

    # export the result as CSV
    async with page.expect_download() as dl:
        await page.click("#export-csv")
    saved = tmp_path / "export.csv"
    await (await dl.value).save_as(saved)
    lines = saved.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("seq,at,department,client_id,officer,purpose,case_ref,decision")
    golden = [line for line in lines[1:] if line.startswith(f"{hub.golden_seq},")]
    assert len(golden) == 1 and ",linping-ca,officer-wang,CASE,CASE-2026-0117,allow," in golden[0]

    # open the golden entry; sign a head if none covers it yet; the server checks its proof
    await follow(page, f"a.entry-link:text-is('{hub.golden_seq}')")
    assert page.url == f"{hub.url}/console/entry/{hub.golden_seq}?subject={pseudonym}"
    if await page.locator("#sign-now").count():
        await follow(page, "#sign-now")
    status = await page.inner_text("#proof-status")
    assert status.startswith("已验证") and "Verified: this entry is in the signed tree" in status
    assert "the resident you searched for" in await page.inner_text("#residents")
    await page.screenshot(path=SHOTS / "entry.png", full_page=True)

    # the resident's timeline: the disclosure and the refused attempt
    await page.goto(f"{hub.url}/console/resident/{pseudonym}")
    timeline = await page.inner_text("#timeline")
    assert "已披露 disclosed" in timeline and "被拒绝 refused" in timeline and "hz-utilities" in timeline
    await page.screenshot(path=SHOTS / "timeline.png", full_page=True)
    await page.emulate_media(media="print")
    await page.screenshot(path=SHOTS / "timeline-print.png", full_page=True)
    await page.emulate_media(media="screen")

    # the policy matrix, read-only
    await follow(page, "text=策略 Policies")
    await page.select_option("#consumer", "civil_affairs")
    await page.select_option("#purpose", "CASE")
    await follow(page, "text=显示 Explain")
    assert "TaxRecord." in await page.inner_text("#matrix")
    visible, total = (int(x) for x in (await page.inner_text("#visible-count")).split(" / "))
    assert 0 < visible < total
    await page.screenshot(path=SHOTS / "policies.png", full_page=True)

    assert requested and all(u.startswith(f"{hub.url}/") for u in requested), sorted(set(requested))
    await ctx.close()


async def test_a_consumer_clients_token_cannot_open_a_console_page(browser: Any, console_hub: ConsoleHub) -> None:
    token = console_hub.token("linping-ca")
    ctx, page, requested = await new_page(browser, console_hub, extra_http_headers={"authorization": f"Bearer {token}"})
    for path in ("/console/", "/console/search", f"/console/entry/{console_hub.golden_seq}", "/console/policies"):
        await page.goto(f"{console_hub.url}{path}")
        assert page.url == f"{console_hub.url}/console/login", path
        assert await page.locator("#results, #proof, #matrix").count() == 0
    # nor can its client id and secret sign in as a person
    await page.fill("input[name=name]", "linping-ca")
    await page.fill("input[name=password]", console_hub.secrets["linping-ca"])
    await follow(page, "button[type=submit]")
    assert "Wrong name or password, or not an officer account." in await page.inner_text("#login-error")
    await page.screenshot(path=SHOTS / "refused.png", full_page=True)
    assert all(u.startswith(f"{console_hub.url}/") for u in requested)
    await ctx.close()


async def test_an_officer_reads_the_alerts_and_approves_a_pending_document(
    browser: Any, console_hub: ConsoleHub
) -> None:
    from tests.console.test_console_approvals import make_alert, submit

    hub = console_hub
    alert = make_alert(hub, rule="M2")
    text = "query Household($id: String!) { person(idNumber: $id) { name civilAffairs { tier } household { size } } }"
    doc = submit(hub, text)
    ctx, page, requested = await new_page(browser, hub)
    await page.goto(f"{hub.url}/console/login")
    await page.fill("input[name=name]", OFFICER)
    await page.fill("input[name=password]", PASSWORD)
    await follow(page, "button[type=submit]")

    await follow(page, "text=告警 Alerts")
    assert alert.id in await page.inner_text("#alerts")
    assert hub.golden_id not in await page.content()
    await page.screenshot(path=SHOTS / "alerts.png", full_page=True)
    await follow(page, f"a[href='/console/alerts/{alert.id}']")
    assert await page.inner_text("#alert-rule") == "M2"
    await page.screenshot(path=SHOTS / "alert.png", full_page=True)

    await follow(page, "text=审批 Approvals")
    assert doc[:23] in await page.inner_text("#operations")
    await page.screenshot(path=SHOTS / "operations.png", full_page=True)
    await follow(page, f"a:has-text('{doc[:23]}')")
    assert await page.inner_text("#op-status") == "pending"
    assert "The policies allow it" in await page.inner_text("#op-plan")
    await page.screenshot(path=SHOTS / "operation-pending.png", full_page=True)
    await follow(page, "#approve")
    assert await page.inner_text("#op-status") == "approved"
    assert (await page.inner_text("#op-approved")).startswith(OFFICER)
    await page.screenshot(path=SHOTS / "operation-approved.png", full_page=True)
    op = hub.app.state.hub.operations.get(doc, "linping-ca", "CASE")  # type: ignore[attr-defined]
    assert (op.status, op.approved_by) == ("approved", OFFICER)
    assert requested and all(u.startswith(f"{hub.url}/") for u in requested), sorted(set(requested))
    await ctx.close()


async def test_an_officer_signs_in_through_the_organisations_provider_on_another_site(
    browser: Any, dept_data: tuple[Path, GenerateResult], tmp_path: Path
) -> None:
    """The OIDC flow in a real browser, the provider on another site (``localhost`` against the console's
    ``127.0.0.1``): its redirect back is a cross-site navigation, so the state cookie must be ``SameSite=Lax`` and
    the ``Strict`` session cookie set by the callback must reach the console on the next page."""
    from hub.app import create_app
    from hub.store.officers import OfficerStore
    from tests.conftest import make_settings, serve, working_clock
    from tests.console.test_console_oidc import CLIENT_ID, CLIENT_SECRET, Provider

    provider = Provider()
    with serve(provider.app()) as idp:
        provider.url = idp.replace("127.0.0.1", "localhost")
        (tmp_path / "departments").symlink_to(dept_data[0] / "departments")
        settings = make_settings(
            tmp_path, oidc_issuer=provider.url, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET
        )
        app = create_app(settings, sign_interval=3600, clock=working_clock())
        state = app.state.hub
        OfficerStore(state.engine, state.clock, settings.client_secret_scrypt_n).add(
            "zhao-min", None, display_name="赵敏", oidc_subject="u-1001"
        )
        with serve(app) as url:
            ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await ctx.new_page()
            visited: list[str] = []
            page.on("framenavigated", lambda f: visited.append(f.url) if f == page.main_frame else None)
            await page.goto(f"{url}/console/login")
            await follow(page, "#oidc-login")
            await page.wait_for_url(f"{url}/console/")  # through the provider, the callback and its refresh
            assert await page.inner_text("h1") == "概览 Overview"
            assert "zhao-min" in await page.content()
            await page.screenshot(path=SHOTS / "oidc-overview.png", full_page=True)
            assert any(u.startswith(f"{url}/console/oidc/callback?") for u in visited), visited
            assert provider.seen and provider.seen[-1]["redirect_uri"] == f"{url}/console/oidc/callback"
            cookies = {c["name"]: c for c in await ctx.cookies(f"{url}/console/")}
            assert cookies["hub_console"]["sameSite"] == "Strict" and cookies["hub_console"]["httpOnly"]
            await ctx.close()
