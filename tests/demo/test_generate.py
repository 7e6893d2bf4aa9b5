"""The synthetic department databases written by ``hub.demo.generate``."""

from __future__ import annotations

import random
import re
import sqlite3
from collections import Counter, defaultdict
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from hub.demo.generate import REFERENCE_DATE, GenerateResult, generate
from hub.departments import DEPARTMENTS, OUTBOX, SOURCE_DEPARTMENTS
from hub.ids import is_valid_id

N = 2_000
GOLDEN_ID = "330113195203180176"
GOLDEN_ADDRESS = "临平区运河街道东新村12幢3单元201室"
HANGZHOU = {"330102", "330105", "330106", "330108", "330109", "330110", "330111", "330112", "330113",
            "330114", "330122", "330127", "330182"}  # fmt: skip
# data tables per department (the change-event outbox is checked on its own)
TABLES = {
    code: names
    for code, d in DEPARTMENTS.items()
    if d.metadata is not None and (names := [t.name for t in d.metadata.sorted_tables if t.name != OUTBOX])
}
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def read(out: Path, department: str, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(out / f"{department}.sqlite")) as db:
        return db.execute(sql).fetchall()


def table(out: Path, department: str, name: str) -> list[tuple[Any, ...]]:
    return read(out, department, f"SELECT * FROM {name} ORDER BY rowid")


def everything(out: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {name: table(out, code, name) for code, names in TABLES.items() for name in names}


def full_years(older: date, younger: date) -> int:
    return younger.year - older.year - ((younger.month, younger.day) < (older.month, older.day))


def ids_of(out: Path) -> set[str]:
    return {i for (i,) in read(out, "public_security", "SELECT id_number FROM residents")}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateResult]:
    out = tmp_path_factory.mktemp("demo")
    return out, generate(out, residents=N)


def test_reference_date_is_fixed() -> None:
    assert REFERENCE_DATE == date(2026, 11, 1)


def test_one_database_per_source_department(demo: tuple[Path, GenerateResult]) -> None:
    out, result = demo
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c}.sqlite" for c in SOURCE_DEPARTMENTS)
    assert "utilities.sqlite" not in {p.name for p in out.iterdir()}
    for code, names in TABLES.items():
        counts = [read(out, code, f"SELECT count(*) FROM {n}")[0][0] for n in names]
        assert result.rows[code] == sum(counts)
        assert min(counts) > 0, f"{code} has an empty table"
    assert set(result.rows) == set(SOURCE_DEPARTMENTS)
    for code in SOURCE_DEPARTMENTS:
        assert read(out, code, f"SELECT count(*) FROM {OUTBOX}") == [(result.events[code],)]


def test_resident_ids_are_valid_and_unique(demo: tuple[Path, GenerateResult]) -> None:
    out, _ = demo
    ids = [i for (i,) in read(out, "public_security", "SELECT id_number FROM residents")]
    assert len(ids) == N
    assert len(set(ids)) == N
    assert all(is_valid_id(i) for i in ids)
    areas = Counter(i[:6] for i in ids)
    assert set(areas) <= HANGZHOU | {"330103", "330104"}
    assert areas["330103"] + areas["330104"] > 0  # a few older people keep abolished codes
    assert areas["330103"] + areas["330104"] < 0.03 * N


def test_sex_and_dob_agree_with_the_id(demo: tuple[Path, GenerateResult]) -> None:
    out, _ = demo
    rows = read(out, "public_security", "SELECT id_number, sex, dob, synthetic FROM residents")
    for id_number, sex, dob, synthetic in rows:
        assert sex == ("male" if int(id_number[16]) % 2 == 1 else "female")
        assert dob == f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
        assert synthetic == 1
        assert date.fromisoformat(dob) <= REFERENCE_DATE


@pytest.mark.parametrize("residents", [1, 2, 37, 501])
def test_resident_count_is_exact(tmp_path: Path, residents: int) -> None:
    result = generate(tmp_path, residents=residents, seed=5)
    assert result.residents == residents
    assert read(tmp_path, "public_security", "SELECT count(*) FROM residents") == [(residents,)]
    assert read(tmp_path, "public_security", "SELECT count(*) FROM households") == [(result.households,)]
    if residents == 1:
        assert result.households == 1  # the golden household alone


def test_zero_residents_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate(tmp_path, residents=0)


def test_household_size_mix_and_heads(demo: tuple[Path, GenerateResult]) -> None:
    out, result = demo
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for hid, pid, rel in read(out, "public_security", "SELECT household_id, id_number, relation_code FROM residents"):
        members[hid].append((pid, rel))
    assert len(members) == result.households
    sizes = Counter(min(len(m), 4) for m in members.values())
    for size, share in {1: 0.35, 2: 0.30, 3: 0.20, 4: 0.15}.items():
        assert abs(sizes[size] / len(members) - share) < 0.04, (size, sizes)
    households = read(
        out, "public_security", "SELECT household_id, hukou_no, area_code, head_id_number FROM households"
    )
    assert {h[0] for h in households} == set(members)
    assert len({h[1] for h in households}) == len(households)
    for hid, hukou, area, head in households:
        assert re.fullmatch(r"H\d{12}", hid) and hid[1:7] == area and area in HANGZHOU
        assert re.fullmatch(r"\d{9}", hukou)
        assert [p for p, rel in members[hid] if rel == "01"] == [head]


def test_same_seed_same_rows_other_seed_other_rows(tmp_path: Path, demo: tuple[Path, GenerateResult]) -> None:
    out, result = demo
    again = generate(tmp_path / "again", residents=N)
    assert again == result
    first, second = everything(out), everything(tmp_path / "again")
    assert first == second
    generate(tmp_path / "other", residents=N, seed=7)
    other = everything(tmp_path / "other")
    for name, rows in first.items():
        assert rows != other[name], name
    assert first["residents"][0] == other["residents"][0]  # the golden man comes first whatever the seed
    assert first["residents"][1] != other["residents"][1]


def test_global_random_is_neither_used_nor_disturbed(tmp_path: Path) -> None:
    random.seed(1)
    before = random.getstate()
    generate(tmp_path / "a", residents=300)
    assert random.getstate() == before
    random.seed(2)
    generate(tmp_path / "b", residents=300)
    assert everything(tmp_path / "a") == everything(tmp_path / "b")


def test_existing_files_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "tax.sqlite").write_bytes(b"not a database")
    with closing(sqlite3.connect(tmp_path / "traffic.sqlite")) as db:
        db.execute("CREATE TABLE vehicles (id_number TEXT, stale INTEGER)")
        db.execute("INSERT INTO vehicles VALUES ('x', 1)")
        db.commit()
    result = generate(tmp_path, residents=300)
    assert read(tmp_path, "tax", "SELECT count(*) FROM income") == [(result.rows["tax"],)]
    ids = ids_of(tmp_path)
    vehicles = read(tmp_path, "traffic", "SELECT id_number FROM vehicles")
    assert len(vehicles) == result.rows["traffic"] and {v for (v,) in vehicles} <= ids


def test_golden_scenario(demo: tuple[Path, GenerateResult]) -> None:
    out, result = demo
    assert (result.golden_id, result.golden_household) == (GOLDEN_ID, "H330113000001")
    assert is_valid_id(GOLDEN_ID)
    assert table(out, "public_security", "residents")[0] == (
        GOLDEN_ID, "钱国良", "male", "1952-03-18", "330113", GOLDEN_ADDRESS, "H330113000001", "01",
        "normal", 1,
    )  # fmt: skip
    assert table(out, "public_security", "households")[0] == (
        "H330113000001", "113052017", "330113", GOLDEN_ADDRESS, GOLDEN_ID,
    )  # fmt: skip
    assert read(out, "public_security", "SELECT count(*) FROM residents WHERE household_id = 'H330113000001'") == [(1,)]
    assert full_years(date(1952, 3, 18), REFERENCE_DATE) == 74

    def mine(department: str, name: str) -> list[tuple[Any, ...]]:
        return read(out, department, f"SELECT * FROM {name} WHERE id_number = '{GOLDEN_ID}'")

    assert mine("civil_affairs", "assistance") == [(GOLDEN_ID, "low_edge", "2023-06-01", None, 0)]
    assert mine("disability", "certificates") == [
        (GOLDEN_ID, GOLDEN_ID + "42", 4, 2, "2019-05-10", "2026-10-20", "living")
    ]
    assert mine("medical_security", "medical") == [(GOLDEN_ID, 1, "resident", 58750.0, 23500.0, 2, 1)]
    assert mine("hrss", "employment") == [(GOLDEN_ID, "resident", 260.0, 0, None, None)]
    assert mine("real_estate", "properties") == [
        (GOLDEN_ID, "浙(2017)杭州市不动产权第0035612号", GOLDEN_ADDRESS, 48.0, "1998-06-20")
    ]
    nothing = [("tax", "income"), ("traffic", "vehicles"), ("market_regulation", "business_roles"),
               ("provident_fund", "accounts"), ("education", "enrolment")]  # fmt: skip
    for department, name in nothing:
        assert mine(department, name) == [], name


def test_golden_scenario_does_not_depend_on_the_seed(tmp_path: Path, demo: tuple[Path, GenerateResult]) -> None:
    out, _ = demo
    generate(tmp_path, residents=50, seed=99)
    for code, names in TABLES.items():
        for name in names:
            column = "head_id_number" if name == "households" else "id_number"
            sql = f"SELECT * FROM {name} WHERE {column} = '{GOLDEN_ID}'"
            assert read(tmp_path, code, sql) == read(out, code, sql), name


def test_every_id_number_is_a_resident(demo: tuple[Path, GenerateResult]) -> None:
    out, _ = demo
    ids = ids_of(out)
    for code, names in TABLES.items():
        for name in names:
            column = "head_id_number" if name == "households" else "id_number"
            found = {i for (i,) in read(out, code, f"SELECT {column} FROM {name}")}
            assert found and found <= ids, name


def uscc_ok(code: str) -> bool:
    if len(code) != 18 or any(c not in USCC_ALPHABET for c in code):
        return False
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(code[:17], USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31] == code[17]


def test_uscc_check_vectors() -> None:
    assert uscc_ok("91350100M000100Y43")  # a published example code
    assert not uscc_ok("91350100M000100Y44")


def test_business_roles(demo: tuple[Path, GenerateResult]) -> None:
    out, _ = demo
    rows = table(out, "market_regulation", "business_roles")
    assert len({r[1] for r in rows}) == len(rows)
    for _id, uscc, company, role, capital in rows:
        assert uscc_ok(uscc), uscc
        assert uscc[:2] == ("92" if role == "sole_trader" else "91") and uscc[2:8] in HANGZHOU
        assert role in {"legal_rep", "director", "supervisor", "senior_manager", "investor", "sole_trader"}
        assert company.endswith("有限公司") != (role == "sole_trader")
        assert capital >= 0


def test_parents_are_18_to_45_years_older(demo: tuple[Path, GenerateResult]) -> None:
    out, _ = demo
    people: dict[str, dict[str, list[date]]] = defaultdict(lambda: defaultdict(list))
    for hid, rel, dob in read(out, "public_security", "SELECT household_id, relation_code, dob FROM residents"):
        people[hid][rel].append(date.fromisoformat(dob))
    pairs = 0
    for household in people.values():
        (head,) = household["01"]
        for child in household["03"]:
            assert 18 <= full_years(head, child) <= 45
            pairs += 1
        for grandchild in household["05"]:  # the parent is the head's one child (03) in those households
            assert 18 <= full_years(household["03"][0], grandchild) <= 45
    assert pairs > N / 5


def test_assistance_covers_whole_households(demo: tuple[Path, GenerateResult]) -> None:
    out, _ = demo
    household_of = dict(read(out, "public_security", "SELECT id_number, household_id FROM residents"))
    sizes = Counter(household_of.values())
    tiers: dict[str, set[tuple[str, str, float]]] = defaultdict(set)
    persons: Counter[str] = Counter()
    for pid, tier, start, end, amount in table(out, "civil_affairs", "assistance"):
        assert tier in {"dibao", "special_hardship", "low_edge", "rigid_expenditure", "temporary"}
        assert date(2018, 1, 1) <= date.fromisoformat(start) < REFERENCE_DATE
        assert end is None or start < end < REFERENCE_DATE.isoformat()
        tiers[household_of[pid]].add((tier, start, amount))
        persons[household_of[pid]] += 1
    assert all(len(t) == 1 for t in tiers.values())
    assert all(persons[h] == sizes[h] for h in persons)
    assert all(sizes[h] == 1 for h, t in tiers.items() if next(iter(t))[0] == "special_hardship")
    assert 0.05 < len(tiers) / len(sizes) < 0.11


def test_value_domains(demo: tuple[Path, GenerateResult]) -> None:
    out, _ = demo
    dob = {i: date.fromisoformat(d) for i, d in read(out, "public_security", "SELECT id_number, dob FROM residents")}
    age = {i: full_years(d, REFERENCE_DATE) for i, d in dob.items()}
    household_of = dict(read(out, "public_security", "SELECT id_number, household_id FROM residents"))
    needy = {
        household_of[p]
        for p, tier, end in read(out, "civil_affairs", "SELECT id_number, tier, end_date FROM assistance")
        if tier in {"dibao", "special_hardship", "low_edge"} and end is None
    }
    statuses = Counter(s for (s,) in read(out, "public_security", "SELECT status FROM residents"))
    assert set(statuses) == {"normal", "deceased", "moved"} and statuses["normal"] > 0.97 * N
    relations = {r for (r,) in read(out, "public_security", "SELECT relation_code FROM residents")}
    assert relations == {"01", "02", "03", "04", "05", "09"}
    for pid, cert, category, grade, issue, change, subsidies in table(out, "disability", "certificates"):
        assert cert == f"{pid}{category}{grade}" and 1 <= category <= 7 and 1 <= grade <= 4
        assert dob[pid].isoformat() < issue < REFERENCE_DATE.isoformat()
        assert change is None or issue < change < REFERENCE_DATE.isoformat()
        assert subsidies in {"none", "living", "care", "both"}
        assert grade <= 2 or subsidies in {"none", "living"}  # the care subsidy is for grades 1-2
        if subsidies in {"living", "both"}:  # the living subsidy is for needy disabled people
            assert household_of[pid] in needy
    for _pid, _insured, scheme, total, oop, inpatient, _chronic in table(out, "medical_security", "medical"):
        assert scheme in {"employee", "resident"} and 0 < oop <= total and 0 <= inpatient <= 5
    for pid, kind, pension, _unemployed, ui_start, ui_end in table(out, "hrss", "employment"):
        assert age[pid] >= 16
        if kind == "employee":
            assert age[pid] >= 60 and 2000 <= pension <= 4500
        elif kind == "resident":
            assert 0 < pension < 1000
        else:
            assert kind == "none" and pension == 0
        assert (ui_start is None) == (ui_end is None) and (ui_start or "") <= (ui_end or "")
    for pid, year, wage, business in table(out, "tax", "income"):
        assert year == 2025 and 16 <= age[pid] < 60 and wage >= 0 and business >= 0
    for _pid, title, address, area_m2, acquired in table(out, "real_estate", "properties"):
        assert re.fullmatch(r"浙\(20\d\d\)(杭州市|桐庐县|淳安县|建德市)不动产权第\d{7}号", title), title
        assert 30 <= area_m2 <= 160 and address.endswith(("室", "号")) and acquired < REFERENCE_DATE.isoformat()
    physical = {p for p, c in read(out, "disability", "SELECT id_number, category FROM certificates") if c == 4}
    for pid, plate, kind, use, reg in table(out, "traffic", "vehicles"):
        assert kind != "mobility_vehicle" or pid in physical
        assert re.fullmatch(r"浙A([0-9A-HJ-NP-Z]{5}|[DF][0-9]{5})", plate), plate
        assert kind in {"small_car", "motorcycle", "mobility_vehicle", "truck"}
        assert use in {"operating", "non_operating"} and age[pid] >= 18 and reg < REFERENCE_DATE.isoformat()
    for _pid, contrib, balance, status in table(out, "provident_fund", "accounts"):
        assert 300 <= contrib <= 3000 and balance > 0 and status in {"active", "stopped"}
    stages = {"preschool", "primary", "junior_high", "senior_high", "vocational", "undergraduate"}
    for pid, enrolled, stage, school, _aid, dropout in table(out, "education", "enrolment"):
        assert 3 <= age[pid] <= 22 and stage in stages and school
        assert not (enrolled and dropout)
        if enrolled and age[pid] <= 14:
            assert stage == ("preschool" if age[pid] <= 5 else "primary" if age[pid] <= 11 else "junior_high")


def test_default_size_counts_and_mix(demo_data: tuple[Path, GenerateResult]) -> None:
    out, result = demo_data[0] / "departments", demo_data[1]  # generate(out) with the defaults
    assert result.residents == 10_000
    count = {code: sum(read(out, code, f"SELECT count(*) FROM {n}")[0][0] for n in names)
             for code, names in TABLES.items()}  # fmt: skip
    assert count == {code: n for code, n in result.rows.items() if code in TABLES}
    households = read(out, "public_security", "SELECT count(*) FROM households")[0][0]
    assert households == result.households and result.rows["public_security"] == 10_000 + households
    adults = read(out, "public_security", "SELECT count(*) FROM residents WHERE dob <= '2008-11-01'")[0][0]
    assert 0.045 < result.rows["disability"] / 10_000 < 0.075
    assert 0.95 < result.rows["medical_security"] / 10_000 < 0.99
    assert 0.12 < result.rows["traffic"] / adults < 0.18
    assert 0.02 < result.rows["market_regulation"] / adults < 0.04
    oop = [o for (o,) in read(out, "medical_security", "SELECT oop_12m FROM medical ORDER BY oop_12m")]
    assert 1600 < oop[len(oop) // 2] < 2400
    assert 0.035 < sum(o >= 20_000 for o in oop) / len(oop) < 0.065
    deceased = read(out, "public_security", "SELECT count(*) FROM residents WHERE status = 'deceased'")[0][0]
    assert 20 <= deceased <= 90


def test_progress_bar_only_when_asked(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    generate(tmp_path, residents=200)
    assert capfd.readouterr() == ("", "")
    generate(tmp_path, residents=200, progress=True)
    captured = capfd.readouterr()
    assert captured.out == "" and "households" in captured.err and "200/200" in captured.err
