"""Policy files at the level where they are validated (``load_policies`` on files in a temporary folder, with a
small catalog): every refusal with its exact file, line, entry and message, and the grants built from valid files.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.policy.loader import (
    GRANT_KEYS,
    OPTIONAL_GRANT_KEYS,
    PURPOSE_KEYS,
    CatalogEntry,
    load_grants,
    load_policies,
    load_purposes,
)
from hub.policy.model import Form, Grant, Purpose, Scope

TODAY = date(2025, 6, 1)
DEPARTMENTS: dict[str, object] = {"tax": object(), "civil": object(), "utilities": object()}
CATALOG = {
    "Tax.income": CatalogEntry("Tax.income", "tax", Form.RAW, ""),
    "Tax.band": CatalogEntry("Tax.band", "tax", Form.BAND, ""),
    "Civil.tier": CatalogEntry("Civil.tier", "civil", Form.RAW, ""),
}
PURPOSES = """[purposes.VER]
name_zh = "核对"
name_en = "Verification"
legal_basis = "Law 1"
requires_case = true
requires_authorization = true
retention_days = 365

[purposes.MON]
name_zh = "监测"
name_en = "Monitoring"
legal_basis = "Law 2"
requires_case = false
requires_authorization = false
retention_days = 30
"""
TAX = """provider = "tax"

[[grants]]
id = "tax-ver"
consumers = ["civil"]
purposes = ["VER", "MON"]
scope = "jurisdiction"
valid_from = 2024-01-01
valid_to = 2028-12-31
legal_basis = "Agreement 7"
fields = { "Tax.income" = "raw", "Tax.band" = "band" }

[[grants]]
id = "tax-all"
consumers = ["civil", "utilities"]
purposes = ["MON"]
scope = "all"
valid_from = 2025-01-01
valid_to = 2025-06-01
legal_basis = "Agreement 8"
fields = { "Tax.band" = "band" }
"""


def folder(tmp_path: Path, purposes: str = PURPOSES, **files: str) -> Path:
    (tmp_path / "purposes.toml").write_text(purposes, encoding="utf-8")
    for name, text in ({"tax": TAX} | files).items():
        (tmp_path / f"{name}.toml").write_text(text, encoding="utf-8")
    return tmp_path


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_policies(path, DEPARTMENTS, CATALOG, TODAY)
    assert info.value.code == "POLICY_INVALID"
    return info.value.message


def test_keys() -> None:
    assert PURPOSE_KEYS == {
        "name_zh",
        "name_en",
        "legal_basis",
        "requires_case",
        "requires_authorization",
        "retention_days",
    }
    assert GRANT_KEYS == {"id", "consumers", "purposes", "fields", "scope", "valid_from", "valid_to", "legal_basis"}
    assert OPTIONAL_GRANT_KEYS == {"thresholds"}


def test_valid_folder(tmp_path: Path) -> None:
    civil = 'provider = "civil"\n\n[[grants]]\nid = "c"\nconsumers = ["tax"]\npurposes = ["VER"]\nscope = "all"\n'
    civil += 'valid_from = 2025-01-01\nvalid_to = 2025-12-31\nlegal_basis = "L"\nfields = { "Civil.tier" = "raw" }\n'
    p = load_policies(folder(tmp_path, civil=civil), DEPARTMENTS, CATALOG, TODAY)
    assert p.purposes == {
        "VER": Purpose("VER", "核对", "Verification", "Law 1", True, True, 365),
        "MON": Purpose("MON", "监测", "Monitoring", "Law 2", False, False, 30),
    }
    assert p.grants == [
        Grant(
            "c",
            "civil",
            ("tax",),
            ("VER",),
            {"Civil.tier": Form.RAW},
            Scope.ALL,
            date(2025, 1, 1),
            date(2025, 12, 31),
            "L",
            "civil.toml:3",
        ),
        Grant(
            "tax-ver",
            "tax",
            ("civil",),
            ("VER", "MON"),
            {"Tax.income": Form.RAW, "Tax.band": Form.BAND},
            Scope.JURISDICTION,
            date(2024, 1, 1),
            date(2028, 12, 31),
            "Agreement 7",
            "tax.toml:3",
        ),
        Grant(
            "tax-all",
            "tax",
            ("civil", "utilities"),
            ("MON",),
            {"Tax.band": Form.BAND},
            Scope.ALL,
            date(2025, 1, 1),
            date(2025, 6, 1),
            "Agreement 8",
            "tax.toml:13",
        ),
    ]
    assert sorted(p.table) == [("civil", "MON"), ("civil", "VER"), ("tax", "VER"), ("utilities", "MON")]
    # the last day of validity is today: still loaded
    assert [g.id for g in load_grants(tmp_path / "tax.toml", p.purposes, DEPARTMENTS, CATALOG, date(2025, 6, 1))] == [
        "tax-ver",
        "tax-all",
    ]


def test_folder_and_purposes_file(tmp_path: Path) -> None:
    assert refused(tmp_path / "nowhere") == f"policy folder {tmp_path / 'nowhere'} does not exist"
    assert refused(tmp_path) == f"{tmp_path}/purposes.toml is missing"
    (tmp_path / "purposes.toml").write_bytes(b"\xff\xfe")
    assert refused(tmp_path) == "purposes.toml: cannot be read (UnicodeDecodeError)"
    (tmp_path / "purposes.toml").write_text("[purposes\n", encoding="utf-8")
    assert refused(tmp_path).startswith("purposes.toml: not valid TOML: ")


PURPOSE_CASES = {
    "no-table": ("x = 1\n", "purposes.toml: purposes: expected [purposes.<ID>] tables"),
    "empty": ("[purposes]\n", "purposes.toml: purposes: expected [purposes.<ID>] tables"),
    "not-a-table": ("[purposes]\nVER = 1\n", "purposes.toml: purpose VER: must be a table"),
    "missing": (
        PURPOSES.replace('legal_basis = "Law 2"\n', "").replace("retention_days = 30\n", ""),
        "purposes.toml:9: purpose MON: missing legal_basis, retention_days",
    ),
    "unknown": (PURPOSES + "zeta = 1\nalpha = 2\n", "purposes.toml:9: purpose MON: unknown key alpha, zeta"),
    "case-not-bool": (
        PURPOSES.replace("requires_case = true", 'requires_case = "yes"'),
        "purposes.toml:1: purpose VER: requires_case must be true or false",
    ),
    "authorization-not-bool": (
        PURPOSES.replace("requires_authorization = false", "requires_authorization = 0"),
        "purposes.toml:9: purpose MON: requires_authorization must be true or false",
    ),
    "retention-zero": (
        PURPOSES.replace("retention_days = 30", "retention_days = 0"),
        "purposes.toml:9: purpose MON: retention_days must be a positive integer",
    ),
    "retention-text": (
        PURPOSES.replace("retention_days = 30", 'retention_days = "30"'),
        "purposes.toml:9: purpose MON: retention_days must be a positive integer",
    ),
}


@pytest.mark.parametrize(("text", "message"), PURPOSE_CASES.values(), ids=PURPOSE_CASES.keys())
def test_purpose_refusals(tmp_path: Path, text: str, message: str) -> None:
    assert refused(folder(tmp_path, purposes=text)) == message


def test_retention_of_one_day_is_enough(tmp_path: Path) -> None:
    p = load_purposes(
        folder(tmp_path, purposes=PURPOSES.replace("retention_days = 30", "retention_days = 1")) / "purposes.toml"
    )
    assert p["MON"].retention_days == 1


def second(old: str, new: str) -> str:
    """TAX with one line of the second grant (starting at line 13) changed."""
    head, tail = TAX.split('id = "tax-all"')
    return head + 'id = "tax-all"' + tail.replace(old, new)


GRANT_CASES = {
    "provider-missing": (TAX.replace('provider = "tax"\n', ""), "tax.toml: provider: must be 'tax' (the file's name)"),
    "provider-other": (
        TAX.replace('provider = "tax"', 'provider = "civil"'),
        "tax.toml:1: provider: must be 'tax' (the file's name)",
    ),
    "file-key": ("zeta = 1\n" + TAX, "tax.toml: file: unknown key zeta"),
    "grants-not-list": ('provider = "tax"\ngrants = 3\n', "tax.toml: grants: expected [[grants]] entries"),
    "grant-not-table": ('provider = "tax"\ngrants = [1]\n', "tax.toml:1: grants[0]: must be a table"),
    "missing": (second('legal_basis = "Agreement 8"\n', ""), "tax.toml:13: grant 'tax-all': missing legal_basis"),
    "unknown-key": (
        second('scope = "all"', 'scope = "all"\nzeta = 1\nbeta = 2'),
        "tax.toml:19: grant 'tax-all': unknown key beta, zeta",
    ),
    "id-empty": (TAX.replace('id = "tax-all"', 'id = ""'), "tax.toml:13: grant '': id must be a non-empty string"),
    "id-number": (TAX.replace('id = "tax-all"', "id = 7"), "tax.toml:13: grants[1]: id must be a non-empty string"),
    "id-duplicate": (
        TAX.replace('id = "tax-all"', 'id = "tax-ver"'),
        "tax.toml:13: grant 'tax-ver': duplicate grant id 'tax-ver'",
    ),
    "consumers-empty": (
        second('consumers = ["civil", "utilities"]', "consumers = []"),
        "tax.toml:15: grant 'tax-all': consumers must be a non-empty list of department codes",
    ),
    "consumers-not-strings": (
        second('consumers = ["civil", "utilities"]', 'consumers = ["civil", 1]'),
        "tax.toml:15: grant 'tax-all': consumers must be a non-empty list of department codes",
    ),
    "consumers-string": (
        second('consumers = ["civil", "utilities"]', 'consumers = "civil"'),
        "tax.toml:15: grant 'tax-all': consumers must be a non-empty list of department codes",
    ),
    "consumer-unknown": (
        second('consumers = ["civil", "utilities"]', 'consumers = ["civil", "nobody"]'),
        "tax.toml:15: grant 'tax-all': unknown consumer department 'nobody'",
    ),
    "purposes-empty": (
        second('purposes = ["MON"]', "purposes = []"),
        "tax.toml:16: grant 'tax-all': purposes must be a non-empty list of purpose ids",
    ),
    "purpose-unknown": (
        second('purposes = ["MON"]', 'purposes = ["MON", "XYZ"]'),
        "tax.toml:16: grant 'tax-all': unknown purpose 'XYZ'",
    ),
    "scope": (
        second('scope = "all"', 'scope = "everywhere"'),
        "tax.toml:17: grant 'tax-all': unknown scope 'everywhere' (jurisdiction or all)",
    ),
    "from-not-date": (
        second("valid_from = 2025-01-01", 'valid_from = "2025-01-01"'),
        "tax.toml:18: grant 'tax-all': valid_from and valid_to must be dates (YYYY-MM-DD)",
    ),
    "to-not-date": (
        second("valid_to = 2025-06-01", "valid_to = 20250601"),
        "tax.toml:18: grant 'tax-all': valid_from and valid_to must be dates (YYYY-MM-DD)",
    ),
    "from-after-to": (
        second("valid_from = 2025-01-01", "valid_from = 2025-06-02"),
        "tax.toml:18: grant 'tax-all': valid_from 2025-06-02 is after valid_to 2025-06-01",
    ),
    "expired": (
        second("valid_to = 2025-06-01", "valid_to = 2025-05-31"),
        "tax.toml:19: grant 'tax-all': expired on 2025-05-31; remove it or renew it with a new validity",
    ),
    "legal-basis-blank": (
        second('legal_basis = "Agreement 8"', 'legal_basis = "  "'),
        "tax.toml:20: grant 'tax-all': legal_basis must name the law or agreement",
    ),
    "legal-basis-number": (
        second('legal_basis = "Agreement 8"', "legal_basis = 8"),
        "tax.toml:20: grant 'tax-all': legal_basis must name the law or agreement",
    ),
    "fields-empty": (
        second('fields = { "Tax.band" = "band" }', "fields = {}"),
        "tax.toml:21: grant 'tax-all': fields must map field coordinates to forms",
    ),
    "fields-list": (
        second('fields = { "Tax.band" = "band" }', 'fields = ["Tax.band"]'),
        "tax.toml:21: grant 'tax-all': fields must map field coordinates to forms",
    ),
    "form-unknown": (
        second('fields = { "Tax.band" = "band" }', 'fields = { "Tax.band" = "fuzzy" }'),
        "tax.toml:21: grant 'tax-all': unknown form 'fuzzy' for Tax.band "
        "(raw, masked, band, predicate, exists, aggregate)",
    ),
    "field-unknown": (
        second('fields = { "Tax.band" = "band" }', 'fields = { "Tax.nope" = "band" }'),
        "tax.toml:21: grant 'tax-all': unknown field 'Tax.nope'",
    ),
    "field-of-another-provider": (
        second('fields = { "Tax.band" = "band" }', 'fields = { "Civil.tier" = "raw" }'),
        "tax.toml:21: grant 'tax-all': Civil.tier is provided by civil, not tax",
    ),
    "form-mismatch": (
        second('fields = { "Tax.band" = "band" }', 'fields = { "Tax.band" = "raw" }'),
        "tax.toml:21: grant 'tax-all': Tax.band is disclosed as band, not raw",
    ),
    "needle-not-found": (
        second('scope = "all"', 'scope = "all"\n"a\\u0062" = 1'),
        "tax.toml:13: grant 'tax-all': unknown key ab",
    ),
}


@pytest.mark.parametrize(("text", "message"), GRANT_CASES.values(), ids=GRANT_CASES.keys())
def test_grant_refusals(tmp_path: Path, text: str, message: str) -> None:
    assert refused(folder(tmp_path, tax=text)) == message


def test_unknown_provider_department(tmp_path: Path) -> None:
    text = 'provider = "ghost"\n'
    assert refused(folder(tmp_path, ghost=text)) == "ghost.toml:1: provider: unknown department 'ghost'"


def test_duplicate_grant_across_files(tmp_path: Path) -> None:
    civil = 'provider = "civil"\n\n[[grants]]\nid = "tax-ver"\nconsumers = ["tax"]\npurposes = ["VER"]\nscope = "all"\n'
    civil += 'valid_from = 2025-01-01\nvalid_to = 2025-12-31\nlegal_basis = "L"\nfields = { "Civil.tier" = "raw" }\n'
    assert refused(folder(tmp_path, civil=civil)) == "tax.toml:3: grant 'tax-ver' also defined in civil.toml:3"


def test_grants_written_inline_have_no_line(tmp_path: Path) -> None:
    text = (
        'provider = "tax"\ngrants = [{ id = "g", consumers = ["civil"], purposes = ["VER"], scope = "all", '
        'valid_from = 2025-01-01, valid_to = 2025-12-31, legal_basis = "L", fields = { "Tax.band" = "band" } }]\n'
    )
    p = load_policies(folder(tmp_path, tax=text), DEPARTMENTS, CATALOG, TODAY)
    assert [(g.id, g.file) for g in p.grants] == [("g", "tax.toml:1")]
    bad = text.replace('scope = "all"', 'scope = "none"')
    assert refused(folder(tmp_path, tax=bad)) == "tax.toml:2: grant 'g': unknown scope 'none' (jurisdiction or all)"


def test_a_one_day_grant(tmp_path: Path) -> None:
    text = second("valid_from = 2025-01-01", "valid_from = 2025-06-01")
    p = load_policies(folder(tmp_path, tax=text), DEPARTMENTS, CATALOG, TODAY)
    assert [(g.id, g.valid_from, g.valid_to) for g in p.grants][1] == ("tax-all", date(2025, 6, 1), date(2025, 6, 1))


def test_a_file_without_grants(tmp_path: Path) -> None:
    p = load_policies(folder(tmp_path, tax='provider = "tax"\n'), DEPARTMENTS, CATALOG, TODAY)
    assert p.grants == [] and p.table == {}


# -- [grants.thresholds]: a threshold predicate is granted only with the law's fixed figures (issue 11 part 2) --------
MED_CATALOG = {
    "Med.atLeast": CatalogEntry("Med.atLeast", "med", Form.PREDICATE, "", ("threshold",)),
    "Med.chronic": CatalogEntry("Med.chronic", "med", Form.PREDICATE, ""),
    "Med.band": CatalogEntry("Med.band", "med", Form.BAND, ""),
}
MED = """provider = "med"

[[grants]]
id = "m"
consumers = ["civil"]
purposes = ["MON"]
scope = "jurisdiction"
valid_from = 2024-01-01
valid_to = 2028-12-31
legal_basis = "L"
[grants.fields]
"Med.atLeast" = "predicate"
"Med.chronic" = "predicate"
[grants.thresholds]
"Med.atLeast" = [20000, 1300, 20000]
"""


def med_grants(tmp_path: Path, text: str) -> list[Grant]:
    path = tmp_path / "med.toml"
    path.write_text(text, encoding="utf-8")
    purposes = load_purposes(folder(tmp_path) / "purposes.toml")
    return load_grants(path, purposes, {"med": object(), "civil": object()}, MED_CATALOG, TODAY)


def med_refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        med_grants(tmp_path, text)
    return str(exc.value.message)


def test_thresholds_are_read_sorted_and_once(tmp_path: Path) -> None:
    [g] = med_grants(tmp_path, MED)
    assert g.thresholds == {"Med.atLeast": (1300, 20000)}
    assert g.fields == {"Med.atLeast": Form.PREDICATE, "Med.chronic": Form.PREDICATE}


THRESHOLD_CASES = {
    "not-a-table": (
        MED.replace('[grants.thresholds]\n"Med.atLeast" = [20000, 1300, 20000]\n', "").replace(
            'legal_basis = "L"\n', 'legal_basis = "L"\nthresholds = [20000]\n'
        ),
        "thresholds must map predicate coordinates to lists of whole numbers",
    ),
    "missing": (
        MED.replace('[grants.thresholds]\n"Med.atLeast" = [20000, 1300, 20000]\n', ""),
        "Med.atLeast takes a threshold (threshold): list the allowed values under [grants.thresholds]",
    ),
    "not-granted": (
        MED + '"Med.band" = [1]\n',
        "thresholds for Med.band, which this grant does not list in fields",
    ),
    "unknown": (
        MED + '"Med.nope" = [1]\n',
        "thresholds for Med.nope, which this grant does not list in fields",
    ),
    "takes-none": (
        MED + '"Med.chronic" = [1]\n',
        "Med.chronic takes no threshold",
    ),
    "empty": (
        MED.replace("[20000, 1300, 20000]", "[]"),
        "thresholds for Med.atLeast must be a non-empty list of whole numbers",
    ),
    "not-a-list": (
        MED.replace("[20000, 1300, 20000]", "20000"),
        "thresholds for Med.atLeast must be a non-empty list of whole numbers",
    ),
    "a-bool": (
        MED.replace("[20000, 1300, 20000]", "[20000, true]"),
        "thresholds for Med.atLeast must be a non-empty list of whole numbers",
    ),
    "a-float": (
        MED.replace("[20000, 1300, 20000]", "[20000.5]"),
        "thresholds for Med.atLeast must be a non-empty list of whole numbers",
    ),
}


@pytest.mark.parametrize(("text", "reason"), THRESHOLD_CASES.values(), ids=THRESHOLD_CASES.keys())
def test_threshold_refusals(tmp_path: Path, text: str, reason: str) -> None:
    message = med_refused(tmp_path, text)
    assert message.startswith("med.toml:") and message.endswith(f"grant 'm': {reason}"), message


def test_threshold_refusal_names_the_line(tmp_path: Path) -> None:
    text, reason = THRESHOLD_CASES["not-a-table"]
    assert med_refused(tmp_path, text) == f"med.toml:11: grant 'm': {reason}"  # the `thresholds = ...` line
    text, reason = THRESHOLD_CASES["takes-none"]
    assert med_refused(tmp_path, text) == f"med.toml:13: grant 'm': {reason}"  # where the grant first names it
