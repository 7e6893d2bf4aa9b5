"""The docs keep up with the code: settings, error codes, purposes and disclosure forms are all documented."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from hub.auth.tokens import _CLAIM_CODES
from hub.policy.model import Form
from hub.settings import HELP, Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ERRORS = DOCS / "errors"
NOT_CODE_PAGES = {"README.md", "oauth.md"}

# Where a stable error code is written in hub/: code="X" / code = "X" (raise sites and class defaults),
# "code": "X" and .get("code", "X") (hand-built error bodies), _fail("X", ...) (token checks).
CODE_PATTERNS = [
    re.compile(r'\bcode\s*=\s*"([A-Z][A-Z0-9_]*)"'),
    re.compile(r'"code"\s*[:,]\s*"([A-Z][A-Z0-9_]*)"'),
    re.compile(r'\b_fail\(\s*"([A-Z][A-Z0-9_]*)"'),
]


def source_codes() -> set[str]:
    codes: set[str] = set()
    for file in sorted((ROOT / "hub").rglob("*.py")):
        text = file.read_text(encoding="utf-8")
        for pattern in CODE_PATTERNS:
            codes.update(pattern.findall(text))
    codes.update(code for code, _ in _CLAIM_CODES.values())
    return codes


def documented_codes() -> set[str]:
    return {p.stem for p in ERRORS.glob("*.md") if p.name not in NOT_CODE_PAGES}


def headings(page: Path) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^## (.+)$", page.read_text(encoding="utf-8"), re.M)}


SETTINGS_FIELDS = [f.name for f in dataclasses.fields(Settings)]


@pytest.mark.parametrize("name", SETTINGS_FIELDS)
def test_setting_has_help_and_docs_heading(name: str) -> None:
    assert HELP.get(name, "").strip(), f"hub/settings.py HELP has no entry for {name}"
    heading = "HUB_" + name.upper()
    assert heading in headings(DOCS / "settings.md"), f"docs/settings.md has no '## {heading}' heading"


def test_settings_page_documents_department_urls() -> None:
    assert "HUB_DEPT_<CODE>_URL" in headings(DOCS / "settings.md")


def test_settings_page_has_no_stale_settings() -> None:
    documented = {h for h in headings(DOCS / "settings.md") if h.startswith("HUB_")}
    expected = {"HUB_" + n.upper() for n in SETTINGS_FIELDS} | {"HUB_DEPT_<CODE>_URL"}
    assert documented - expected == set(), "docs/settings.md documents settings that no longer exist"


def test_help_has_no_stale_entries() -> None:
    assert set(HELP) - set(SETTINGS_FIELDS) == set()


def test_code_scan_finds_known_codes() -> None:
    # guards the scanner itself: one code from each kind of place it must look
    codes = source_codes()
    for code in ("POLICY_DENIED", "MAX_DEPTH_LIMIT", "TOKEN_EXPIRED", "TOKEN_WRONG_ISSUER", "METHOD_NOT_ALLOWED"):
        assert code in codes


@pytest.mark.parametrize("code", sorted(source_codes()))
def test_error_code_has_a_page(code: str) -> None:
    page = ERRORS / f"{code}.md"
    assert page.is_file(), f"error code {code} has no docs/errors/{code}.md"
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# {code}\n"), f"docs/errors/{code}.md must start with '# {code}'"
    for section in ("## What it means", "## Example", "## How to fix it"):
        assert section in text, f"docs/errors/{code}.md lacks '{section}'"


def test_no_stale_error_pages() -> None:
    stale = documented_codes() - source_codes()
    assert stale == set(), f"docs/errors/ has pages for codes no longer in hub/: {sorted(stale)}"


def test_error_index_lists_every_code() -> None:
    index = (ERRORS / "README.md").read_text(encoding="utf-8")
    missing = {code for code in source_codes() if f"[`{code}`]({code}.md)" not in index}
    assert missing == set(), f"docs/errors/README.md does not list {sorted(missing)}"


def test_oauth_page_names_every_token_endpoint_error() -> None:
    text = (ERRORS / "oauth.md").read_text(encoding="utf-8")
    used = set(re.findall(r'_oauth_error\(\s*"([a-z_]+)"', (ROOT / "hub" / "app.py").read_text(encoding="utf-8")))
    assert used, "no _oauth_error calls found in hub/app.py"
    assert {e for e in used if f"`{e}`" not in text} == set()


def test_policies_page_names_every_purpose() -> None:
    purposes = tomllib.loads((ROOT / "policies" / "purposes.toml").read_text(encoding="utf-8"))["purposes"]
    text = (DOCS / "policies.md").read_text(encoding="utf-8")
    assert purposes
    assert {p for p in purposes if f"`{p}`" not in text} == set()


def test_policies_page_describes_every_form() -> None:
    sections = headings(DOCS / "policies.md") | {
        m.group(1).strip() for m in re.finditer(r"^### (.+)$", (DOCS / "policies.md").read_text("utf-8"), re.M)
    }
    assert {f.value for f in Form if f.value not in sections} == set()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)}


DOC_PAGES = sorted(DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_links_between_pages_resolve(page: Path) -> None:
    for target, anchor in re.findall(r"\]\(([^)#\s]*\.md)(?:#([^)\s]*))?\)", page.read_text(encoding="utf-8")):
        if (page.parent / target).resolve() == DOCS / "audit.md":
            continue  # written separately
        path = (page.parent / target).resolve()
        assert path.is_file(), f"{page.name} links to missing {target}"
        if anchor:
            assert anchor in anchors(path), f"{page.name} links to missing anchor {target}#{anchor}"
