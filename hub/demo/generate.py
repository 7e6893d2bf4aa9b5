"""Deterministic synthetic data for every source department, one SQLite file each.

Everything is drawn from one ``random.Random(seed)`` against the fixed :data:`REFERENCE_DATE`, so a
seed always yields the same rows. Parameters follow the domain notes, section (d); money figures
there marked as extrapolations (the dibao standard) are demo assumptions, not policy. All people
are invented and flagged ``synthetic``; street and community names are invented as well, except
the golden scenario's 临平区运河街道东新村 (building, unit and room are invented).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine
from tqdm import tqdm

from hub import departments as dep
from hub.clock import CHINA
from hub.ids import make_id

REFERENCE_DATE = date(2026, 11, 1)
DIBAO_STANDARD = 1300.0  # yuan per person per month; an extrapolation (domain notes d)
SPECIAL_HARDSHIP_STANDARD = 2100.0  # ~1.6x dibao
TAX_YEAR = 2025

# district code -> (name, relative population weight)
DISTRICTS: dict[str, tuple[str, int]] = {
    "330102": ("上城区", 13), "330105": ("拱墅区", 11), "330106": ("西湖区", 12), "330108": ("滨江区", 5),
    "330109": ("萧山区", 20), "330110": ("余杭区", 13), "330111": ("富阳区", 8), "330112": ("临安区", 6),
    "330113": ("临平区", 12), "330114": ("钱塘区", 8), "330122": ("桐庐县", 4), "330127": ("淳安县", 3),
    "330182": ("建德市", 4),
}  # fmt: skip
_AREAS = list(DISTRICTS)
_AREA_WEIGHTS = [w for _, w in DISTRICTS.values()]
_RURAL = {"330111", "330112", "330122", "330127", "330182"}  # these also have village addresses
_ABOLISHED = {"330102": "330104", "330105": "330103", "330114": "330104"}  # 江干/下城, merged in 2021
_TITLE_CITY = {"330122": "桐庐县", "330127": "淳安县", "330182": "建德市"}

SIZE_MIX = {1: 35, 2: 30, 3: 20, 4: 9, 5: 4, 6: 2}  # 4+ is 15%
_ARCHETYPES: dict[int, dict[str, int]] = {
    1: {"elderly_alone": 55, "single_adult": 45},
    2: {"elderly_couple": 45, "couple": 30, "single_parent": 25},
    3: {"working_family": 60, "single_parent": 15, "three_generation": 25},
    4: {"working_family": 40, "three_generation": 60},
}
_ASSIST_P = {"elderly_alone": 0.13, "single_adult": 0.04, "elderly_couple": 0.075, "couple": 0.025,
             "single_parent": 0.18, "working_family": 0.035, "three_generation": 0.11}  # fmt: skip
_TIERS_ALONE = {"dibao": 38, "special_hardship": 42, "low_edge": 4, "rigid_expenditure": 3, "temporary": 13}
_TIERS_OTHER = {"dibao": 72, "low_edge": 4, "rigid_expenditure": 6, "temporary": 18}
_NEEDY_TIERS = {"dibao", "special_hardship", "low_edge"}  # qualify for the needy-disabled living subsidy

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭"
    "曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢钟陆汪范金方俞邵钱孔楼应"
)
_GIVEN = {
    "male": "伟强军杰磊涛斌勇建国明华平刚俊峰鹏浩宇超辉志文博林海波忠晨嘉安",
    "female": "芳娟敏静丽燕霞艳玲红梅萍琴英慧雪婷颖丹洁倩莉琳佳怡晨嘉安",
}
_WORD_A = "青云和丰安宁兴福瑞康永春景明泰嘉华锦翠新"
_WORD_B = "溪桥湖塘山林园苑港浦湾岭田洲"
_TRADES = ("贸易", "科技", "建材", "餐饮", "物流", "服饰", "电子", "装饰", "农业", "信息技术")
_SHOPS = ("便利店", "小吃店", "五金店", "理发店", "水果店", "快递服务部", "家电维修部")
_ROLES = {
    "sole_trader": 35,
    "legal_rep": 25,
    "investor": 20,
    "director": 8,
    "supervisor": 7,
    "senior_manager": 5,
}
_PLATE_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

GOLDEN_DOB = date(1952, 3, 18)
GOLDEN_ID = make_id("330113", GOLDEN_DOB, 17)
GOLDEN_HOUSEHOLD = "H330113000001"
GOLDEN_ADDRESS = "临平区运河街道东新村12幢3单元201室"

Row = dict[str, Any]


@dataclass(frozen=True)
class GenerateResult:
    residents: int
    households: int
    rows: dict[str, int]  # rows per department code, all of its tables together
    golden_id: str  # ID number of the golden-scenario man
    golden_household: str
    events: dict[str, int] = field(default_factory=dict)  # change events per department (outbox rows)


def uscc_check(first17: str) -> str:
    """GB 32100 check character of a unified social credit code."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def _org_code(digits8: str) -> str:
    """GB 11714 organization code (8 digits + check character), which is positions 9-17 of a USCC."""
    rest = 11 - sum(int(c) * w for c, w in zip(digits8, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    return digits8 + ("X" if rest == 10 else "0" if rest == 11 else str(rest))


def _age(born: date) -> int:
    ref = REFERENCE_DATE
    return ref.year - born.year - ((ref.month, ref.day) < (born.month, born.day))


def _money(x: float) -> Decimal:
    return Decimal(f"{x:.2f}")


@dataclass
class _Person:
    id_number: str
    name: str
    sex: str
    dob: date
    age: int
    relation: str
    status: str = "normal"
    stage: str | None = None  # school stage (current, or last attended) for ages 3-22
    enrolled: bool = False
    dropout: bool = False
    employed: bool = False
    unemployed: bool = False
    pension_type: str = "none"
    pension: float = 0.0
    wage: float = 0.0
    business: float = 0.0


@dataclass
class _Household:
    household_id: str
    hukou: str
    area: str
    address: str
    archetype: str
    members: list[_Person] = field(default_factory=list)
    tier: str | None = None
    tier_current: bool = False
    low_income: bool = False


class _Generator:
    def __init__(self, rng: random.Random, events_rng: random.Random | None = None) -> None:
        self.rng = rng
        # change events draw from their own generator, so adding them left every department row as it was
        self.erng = events_rng or random.Random(0)
        self.events: list[tuple[str, date, str, str]] = []  # (department, occurred_on, id_number, kind)
        tables = [t for d in dep.DEPARTMENTS.values() if d.metadata is not None for t in d.metadata.sorted_tables]
        tables += list(dep.OUTBOXES.values())
        self.rows: dict[Table, list[Row]] = {t: [] for t in tables}
        self.columns = {t: t.c.keys() for t in tables}
        self.used: dict[str, set[str]] = {k: set() for k in ("id", "hukou", "plate", "title", "uscc")}
        self.serial: dict[str, int] = {}
        self.residents = 0
        self.households = 0

    # ---- small helpers --------------------------------------------------------------------------
    def _emit(self, table: Table, *values: Any) -> None:
        """Add a row; ``values`` in the table's column order (see ``hub.departments``)."""
        self.rows[table].append(dict(zip(self.columns[table], values, strict=True)))

    def _unique(self, kind: str, make: Callable[[], str]) -> str:
        while (value := make()) in self.used[kind]:
            pass
        self.used[kind].add(value)
        return value

    def _pick(self, weights: dict[str, int]) -> str:
        return self.rng.choices(list(weights), list(weights.values()))[0]

    def _sex(self, p_male: float) -> str:
        return "male" if self.rng.random() < p_male else "female"

    def _between(self, lo: date, hi: date) -> date:
        """A random day in [lo, hi]; hi itself when the range is empty."""
        return hi if hi <= lo else lo + timedelta(days=self.rng.randint(0, (hi - lo).days))

    def _dob(self, age: int) -> date:
        ref = REFERENCE_DATE
        return self._between(ref.replace(year=ref.year - age - 1) + timedelta(days=1), ref.replace(year=ref.year - age))

    def _word(self) -> str:
        return self.rng.choice(_WORD_A) + self.rng.choice(_WORD_B)

    def _address(self, area: str) -> str:
        rng, district = self.rng, DISTRICTS[area][0]
        if area in _RURAL and rng.random() < 0.5:
            return f"{district}{self._word()}镇{self._word()}村{rng.randint(1, 12)}组{rng.randint(1, 80)}号"
        community = self._word() + ("社区" if rng.random() < 0.8 else "村")
        room = f"{rng.randint(1, 18)}{rng.randint(1, 4):02d}"
        return f"{district}{self._word()}街道{community}{rng.randint(1, 40)}幢{rng.randint(1, 4)}单元{room}室"

    def _children(self, parent_age: int, n: int, cap: int) -> list[int]:
        """Ages of n children 19-45 years younger than the parent (19 keeps the dob gap >= 18)."""
        lo, hi = max(0, parent_age - 45), min(cap, parent_age - 19)
        return sorted((self.rng.randint(lo, hi) for _ in range(n)), reverse=True)

    # ---- households and people ------------------------------------------------------------------
    def _spouse(self, age: int, kids: list[int], spread: tuple[int, int] = (-4, 3)) -> int:
        """Age of a spouse near ``age``, still 19-45 years older than each of the kids."""
        spouse = age + self.rng.randint(*spread)
        return min(max(spouse, max(kids) + 19), min(kids) + 45) if kids else spouse

    def _compose(self, archetype: str, size: int) -> list[tuple[str, int, str]]:
        """(relation, age, sex) of each member, head first."""
        rng, other = self.rng, {"male": "female", "female": "male"}
        if archetype in ("elderly_alone", "single_adult"):
            old = archetype == "elderly_alone"
            age = 60 + int(rng.triangular(0, 36, 14)) if old else rng.randint(22, 59)
            return [("01", age, self._sex(0.4 if old else 0.55))]
        if archetype in ("elderly_couple", "couple"):
            old = archetype == "elderly_couple"
            age, sex = 62 + int(rng.triangular(0, 30, 8)) if old else rng.randint(24, 59), self._sex(0.85)
            return [("01", age, sex), ("02", max(age + rng.randint(-6, 3), 58 if old else 22), other[sex])]
        if archetype == "single_parent":
            age = rng.randint(25, 50)
            return [("01", age, self._sex(0.25))] + [
                ("03", a, self._sex(0.5)) for a in self._children(age, size - 1, 17)
            ]
        if archetype == "working_family":
            age, sex = rng.randint(26, 55), self._sex(0.8)
            kids = self._children(age, size - 2, 22)
            out = [("01", age, sex), ("02", self._spouse(age, kids), other[sex])]
            return out + [("03", a, self._sex(0.5)) for a in kids]
        if rng.random() < 0.5:  # three generations, head in the middle with parent(s) living in
            age, sex = rng.randint(32, 55), self._sex(0.7)
            n_parents = 2 if size >= 5 else 1
            has_spouse = size - 1 - n_parents >= 2
            kids = self._children(age, size - 1 - n_parents - has_spouse, 22)
            out = [("01", age, sex)] + [("02", self._spouse(age, kids), other[sex])] * has_spouse
            father = min(age + rng.randint(22, 40), 98)
            out += [("04", father, "male"), ("04", min(father + rng.randint(-5, 2), 98), "female")][2 - n_parents :]
            return out + [("03", a, self._sex(0.5)) for a in kids]
        age, sex = rng.randint(58, 82), self._sex(0.6)  # three generations, elderly head
        child, child_sex = rng.randint(max(20, age - 45), min(age - 19, 55)), self._sex(0.6)
        out = [("01", age, sex)] + [("02", self._spouse(age, [child], (-6, 3)), other[sex])] * (size >= 4)
        out.append(("03", child, child_sex))
        if size >= 5:  # the child's spouse
            out.append(("09", max(child + rng.randint(-3, 3), 20), other[child_sex]))
        return out + [("05", a, self._sex(0.5)) for a in self._children(child, size - len(out), 17)]

    def _person(self, area: str, relation: str, age: int, sex: str, surname: str | None) -> _Person:
        rng = self.rng
        dob = self._dob(age)
        id_area = _ABOLISHED[area] if age >= 40 and area in _ABOLISHED and rng.random() < 0.12 else area
        first = 1 if sex == "male" else 2
        id_number = self._unique("id", lambda: make_id(id_area, dob, rng.randrange(first, 1000, 2)))
        given = "".join(rng.choice(_GIVEN[sex]) for _ in range(1 if rng.random() < 0.3 else 2))
        r = rng.random()
        status = "deceased" if r < (0.01 if age >= 60 else 0.003) else "moved" if r > 0.995 else "normal"
        return _Person(id_number, (surname or rng.choice(_SURNAMES)) + given, sex, dob, age, relation, status)

    def _household(self, area: str, address: str, archetype: str, hukou: str | None = None) -> _Household:
        self.serial[area] = self.serial.get(area, 0) + 1
        self.households += 1
        hukou = hukou or self._unique("hukou", lambda: str(self.rng.randrange(10**8, 10**9)))
        self.used["hukou"].add(hukou)
        return _Household(f"H{area}{self.serial[area]:06d}", hukou, area, address, archetype)

    def _add_members(self, hh: _Household, members: list[_Person]) -> None:
        hh.members = members
        self.residents += len(members)
        self._emit(dep.households, hh.household_id, hh.hukou, hh.area, hh.address, members[0].id_number)
        for p in members:
            self._emit(dep.residents, p.id_number, p.name, p.sex, p.dob, hh.area, hh.address,
                       hh.household_id, p.relation, p.status, True)  # fmt: skip

    def add_household(self, limit: int) -> int:
        """Add one random household of at most ``limit`` people; return its size."""
        rng = self.rng
        size = rng.choices(list(SIZE_MIX), list(SIZE_MIX.values()))[0]
        archetype = self._pick(_ARCHETYPES[min(size, 4)])
        specs = self._compose(archetype, size)
        area = rng.choices(_AREAS, _AREA_WEIGHTS)[0]
        hh = self._household(area, self._address(area), archetype)
        family = rng.choice(_SURNAMES)  # the head's; children and grandchildren take it too
        specs = specs[:limit]
        self._add_members(hh, [self._person(area, *s, family if s[0] in ("01", "03", "05") else None) for s in specs])
        self._fill(hh)
        return len(specs)

    # ---- departments ----------------------------------------------------------------------------
    def _fill(self, hh: _Household) -> None:
        rng = self.rng
        start = {t: len(v) for t, v in self.rows.items()}
        # archetype "three generations with a disabled member": 30% of three-generation households
        three_generations = hh.archetype == "three_generation"
        forced = rng.randrange(len(hh.members)) if three_generations and rng.random() < 0.3 else -1
        if rng.random() < _ASSIST_P[hh.archetype]:
            hh.tier = self._pick(_TIERS_ALONE if hh.archetype == "elderly_alone" else _TIERS_OTHER)
        hh.low_income = hh.tier is not None or rng.random() < 0.07
        for p in hh.members:
            self._school(p, hh)
            self._work(p, hh)
            self._business(p, hh)
        if hh.tier is not None:
            self._assistance(hh)
        for i, p in enumerate(hh.members):
            category = self._disability(p, hh, forced=i == forced)
            self._medical(p, category is not None)
            self._employment_and_tax(p)
            self._vehicle(p, hh, category)
            self._provident_fund(p, hh)
            self._education(p, hh)
        self._properties(hh)
        self._events(hh, {t: self.rows[t][n:] for t, n in start.items()})

    def _school(self, p: _Person, hh: _Household) -> None:
        rng, a = self.rng, p.age
        if not 3 <= a <= 22:
            return
        by_age = "preschool" if a <= 5 else "primary" if a <= 11 else "junior_high" if a <= 14 else ""
        if a <= 17:
            p.stage = by_age or ("senior_high" if rng.random() < 0.65 else "vocational")
            p.dropout = a >= 10 and rng.random() < (0.05 if hh.low_income else 0.02)
            p.enrolled = not p.dropout and rng.random() < (0.9 if a <= 5 else 1.0 if a <= 15 else 0.93)
        else:
            p.enrolled = rng.random() < 0.55
            p.stage = rng.choice(
                ("undergraduate", "undergraduate", "vocational")
                if p.enrolled
                else ("senior_high", "vocational", "undergraduate")
            )

    def _work(self, p: _Person, hh: _Household) -> None:
        rng = self.rng
        poor = hh.tier in ("dibao", "special_hardship")  # below the dibao line: no employee pension
        if p.age >= 60:
            weights = (0, 97, 3) if poor else (25, 72, 3) if hh.low_income else (70, 28, 2)
            p.pension_type = rng.choices(("employee", "resident", "none"), weights)[0]
            if p.pension_type != "none":
                p.pension = rng.uniform(2000, 4500) if p.pension_type == "employee" else rng.uniform(180, 420)
            return
        if p.age < 16 or p.enrolled:
            return
        r = rng.random()
        p.unemployed = r < (0.15 if hh.low_income else 0.03)
        p.employed = not p.unemployed and r < (0.4 if poor else 0.6 if hh.low_income else 0.9)
        if p.employed:  # low earners 18,000-42,000 a year; others log-normal, median ~90,000
            p.wage = rng.randint(180, 420) * 100 if hh.low_income else max(30e3, rng.lognormvariate(11.4, 0.5))
        elif p.unemployed and rng.random() < 0.5:
            p.wage = rng.randint(60, 300) * 100

    def _business(self, p: _Person, hh: _Household) -> None:
        rng = self.rng
        if not 18 <= p.age <= 75 or p.status == "deceased":
            return
        if rng.random() >= (0.01 if hh.low_income or p.age >= 65 else 0.045):
            return
        role = self._pick(_ROLES)
        sole = role == "sole_trader"

        def make_uscc() -> str:  # registered by market regulation (9); 1 enterprise, 2 sole trader
            body = f"9{2 if sole else 1}{hh.area}{_org_code(str(rng.randrange(10**7, 10**8)))}"
            return body + uscc_check(body)

        uscc = self._unique("uscc", make_uscc)
        if sole:
            name = f"{DISTRICTS[hh.area][0]}{self._word()}{rng.choice(_SHOPS)}"
            capital = rng.randint(1, 50) * 1000
            p.business = rng.uniform(30_000, 200_000)
        else:
            name = f"杭州{self._word()}{rng.choice(_TRADES)}有限公司"
            capital = rng.randint(1, 500) * 10_000 if role in ("legal_rep", "investor") else 0
            p.business = rng.uniform(0, 100_000) if capital and rng.random() < 0.3 else 0.0
        self._emit(dep.business_roles, p.id_number, uscc, name, role, _money(capital))

    def _assistance(self, hh: _Household) -> None:
        rng, n = self.rng, len(hh.members)
        income = sum(p.wage + p.business for p in hh.members) / 12 + sum(p.pension for p in hh.members)
        per_capita = income / n
        if hh.tier in ("dibao", "special_hardship") and per_capita >= 0.9 * DIBAO_STANDARD:
            hh.tier = "low_edge" if per_capita < 2 * DIBAO_STANDARD else "temporary"
        if hh.tier == "dibao":  # the standard minus the household's per-capita income
            amount = max(DIBAO_STANDARD - per_capita, 0.1 * DIBAO_STANDARD)
        elif hh.tier == "special_hardship":
            amount = SPECIAL_HARDSHIP_STANDARD
        elif hh.tier == "low_edge":
            amount = 0.0  # low-edge status brings special assistance, not a cash payment
        elif hh.tier == "rigid_expenditure":
            amount = rng.randint(3, 8) * 100.0
        else:  # temporary assistance
            amount = rng.randint(5, 30) * 100.0
        start = REFERENCE_DATE - timedelta(days=rng.randint(365, 8 * 365))
        end: date | None = None
        if hh.tier == "temporary":
            end = start + timedelta(days=rng.randint(30, 90))
        elif rng.random() < 0.12:
            end = start + timedelta(days=rng.randint(180, (REFERENCE_DATE - start).days - 1))
        hh.tier_current = end is None
        for p in hh.members:
            self._emit(dep.assistance, p.id_number, hh.tier, start, end, _money(amount))

    def _disability(self, p: _Person, hh: _Household, *, forced: bool) -> int | None:
        rng, a = self.rng, p.age
        p_cert = 0.0 if a < 1 else 0.01 if a < 18 else 0.03 if a < 60 else 0.07 if a < 75 else 0.12
        if not forced and rng.random() >= p_cert:
            return None
        category = rng.choices(range(1, 8), (12, 15, 2, 40, 9, 12, 10))[0]
        grade = rng.choices(range(1, 5), (12, 22, 30, 36))[0]
        last = REFERENCE_DATE - timedelta(days=7)
        issue = self._between(min(max(p.dob + timedelta(days=365), date(2001, 1, 1)), last), last)
        change = None
        if rng.random() < 0.12 and (last - issue).days > 365:
            change = self._between(issue + timedelta(days=365), last)
        # the care subsidy (severe, grade 1-2) is not yet granted for an upgrade in the last 30 days
        care = grade <= 2 and (change is None or (REFERENCE_DATE - change).days > 30)
        living = hh.tier in _NEEDY_TIERS and hh.tier_current and rng.random() < 0.9
        subsidies = "both" if care and living else "care" if care else "living" if living else "none"
        cert_no = f"{p.id_number}{category}{grade}"
        self._emit(dep.certificates, p.id_number, cert_no, category, grade, issue, change, subsidies)
        return category

    def _medical(self, p: _Person, disabled: bool) -> None:
        rng, a = self.rng, p.age
        if rng.random() >= 0.97:
            return
        chronic = rng.random() < (0.03 if a < 18 else 0.10 if a < 60 else 0.35)
        employee = p.employed or p.pension_type == "employee"
        insured = rng.random() < 0.985
        mu = math.log(1800) + (-0.6 if a < 18 else 0.0 if a < 60 else 0.5) + 0.5 * chronic + 0.4 * disabled
        oop = rng.lognormvariate(mu, 1.3)
        share = 1.0 if not insured else rng.uniform(0.2, 0.45) if employee else rng.uniform(0.35, 0.65)
        if oop >= 20_000:
            inpatient = rng.choices(range(1, 6), (35, 30, 18, 10, 7))[0]
        elif oop >= 5_000:
            inpatient = rng.choices(range(3), (50, 35, 15))[0]
        else:
            inpatient = int(rng.random() < 0.03)
        scheme, total = "employee" if employee else "resident", _money(oop / share)
        self._emit(dep.medical, p.id_number, insured, scheme, total, _money(oop), inpatient, chronic)

    def _employment_and_tax(self, p: _Person) -> None:
        rng = self.rng
        if p.age < 16:
            return
        ui_start = ui_end = None
        if p.unemployed and rng.random() < 0.6:
            ui_start = REFERENCE_DATE - timedelta(days=rng.randint(30, 720))
            ui_end = ui_start + timedelta(days=30 * rng.randint(3, 24))
        pension = _money(p.pension)
        self._emit(dep.employment, p.id_number, p.pension_type, pension, p.unemployed, ui_start, ui_end)
        if p.age < 60:  # working age
            self._emit(dep.income, p.id_number, TAX_YEAR, _money(p.wage), _money(p.business))

    def _plate(self, new_energy: bool) -> str:
        rng = self.rng
        if new_energy:
            return "浙A" + rng.choice("DF") + "".join(rng.choice(_PLATE_CHARS[:10]) for _ in range(5))
        letters = set(rng.sample(range(5), rng.randint(0, 2)))
        return "浙A" + "".join(rng.choice(_PLATE_CHARS[10:] if i in letters else _PLATE_CHARS[:10]) for i in range(5))

    def _vehicle(self, p: _Person, hh: _Household, category: int | None) -> None:
        rng = self.rng
        if p.age < 18 or p.status == "deceased":
            return
        if category == 4 and rng.random() < 0.12:
            kind = "mobility_vehicle"
        elif rng.random() < (0.03 if hh.low_income else 0.05 if p.age >= 70 else 0.21):
            kind = rng.choices(("small_car", "motorcycle", "truck"), (84, 8, 8))[0]
        else:
            return
        operating = rng.random() < {"truck": 0.7, "small_car": 0.05}.get(kind, 0.0)
        reg = self._between(
            max(p.dob + timedelta(days=18 * 366), REFERENCE_DATE - timedelta(days=15 * 365)),
            REFERENCE_DATE - timedelta(days=1),
        )
        new_energy = kind == "small_car" and reg.year >= 2018 and rng.random() < 0.35
        plate = self._unique("plate", lambda: self._plate(new_energy))
        self._emit(dep.vehicles, p.id_number, plate, kind, "operating" if operating else "non_operating", reg)

    def _provident_fund(self, p: _Person, hh: _Household) -> None:
        rng = self.rng
        if p.employed and rng.random() < (0.15 if hh.low_income else 0.45):
            status, contrib = "active", min(max(p.wage / 12 * 0.24, 300.0), 3000.0)
        elif p.unemployed and rng.random() < 0.35:
            status, contrib = "stopped", rng.uniform(300, 1500)  # the last contribution before it stopped
        else:
            return
        balance = contrib * rng.randint(6, 180) * rng.uniform(0.2, 1.0)
        self._emit(dep.hpf_accounts, p.id_number, _money(contrib), _money(balance), status)

    def _education(self, p: _Person, hh: _Household) -> None:
        rng = self.rng
        if p.stage is None:
            return
        district, word = DISTRICTS[hh.area][0], self._word()
        school = {
            "preschool": f"{district}{word}幼儿园",
            "primary": f"{district}{word}小学",
            "junior_high": f"{district}{word}初级中学",
            "senior_high": f"杭州市{word}高级中学",
            "vocational": f"杭州市{word}职业高级中学" if p.age <= 17 else f"杭州{word}职业技术学院",
            "undergraduate": f"浙江{word}大学",
        }[p.stage]
        aid = p.enrolled and rng.random() < (0.5 if hh.tier else 0.1 if hh.low_income else 0.01)
        self._emit(dep.enrolment, p.id_number, p.enrolled, p.stage, school, aid, p.dropout)

    def _property(self, owner: _Person, address: str, area: str, area_m2: float) -> None:
        rng = self.rng
        lo = min(max(owner.dob + timedelta(days=22 * 366), date(1995, 1, 1)), REFERENCE_DATE)
        acquired = self._between(lo, REFERENCE_DATE - timedelta(days=10))
        year = acquired.year if acquired.year >= 2016 else rng.randint(2016, REFERENCE_DATE.year - 1)
        number = self._unique("title", lambda: f"{rng.randrange(10**7):07d}")
        title = f"浙({year}){_TITLE_CITY.get(area, '杭州市')}不动产权第{number}号"
        self._emit(dep.properties, owner.id_number, title, address, _money(area_m2), acquired)

    def _properties(self, hh: _Household) -> None:
        rng = self.rng
        owners = [p for p in hh.members if p.relation in ("01", "02") and p.age >= 18]
        low = hh.low_income
        if rng.random() < (0.4 if low else 0.75):  # the home they live in
            size = rng.triangular(30, 90, 55) if low else rng.triangular(45, 160, 90)
            self._property(rng.choice(owners), hh.address, hh.area, size)
        if rng.random() < (0.02 if low else 0.12):  # a second home
            area = rng.choices(_AREAS, _AREA_WEIGHTS)[0]
            self._property(rng.choice(owners), self._address(area), area, rng.triangular(30, 160, 80))

    # ---- change events (outboxes) ----------------------------------------------------------------
    def _recent(self, days: int = 90) -> date:
        return REFERENCE_DATE - timedelta(days=self.erng.randint(1, days))

    def _event(self, dept: str, on: date, id_number: str, kind: str) -> None:
        self.events.append((dept, min(on, REFERENCE_DATE), id_number, kind))

    def _events(self, hh: _Household, mine: dict[Table, list[Row]]) -> None:
        """Dated events for the last months, consistent with the rows just written, so that every monitoring
        rule (policies/monitoring/) fires somewhere and most events match no rule."""
        er, since = self.erng, REFERENCE_DATE - timedelta(days=180)
        for r in mine[dep.certificates]:
            changed = r["change_date"] or r["issue_date"]
            if changed >= since:
                self._event("disability", changed, r["id_number"], "disability_changed")
        for p in hh.members:
            if p.status == "deceased":
                self._event("public_security", self._recent(), p.id_number, "death_registered")
        head = hh.members[0]
        if (len(hh.members) == 1 and head.age >= 75 and er.random() < 0.4) or er.random() < 0.02:
            self._event("public_security", self._recent(), head.id_number, "household_changed")
        if er.random() < 0.006:
            self._event("emergency", self._recent(), head.id_number, "house_damaged")
        for r in mine[dep.medical]:
            if r["inpatient_count"] > 0 and er.random() < 0.5:
                self._event("medical_security", self._recent(), r["id_number"], "hospital_discharge")
        for r in mine[dep.employment]:
            if r["unemployed_registered"] and er.random() < 0.5:
                self._event("hrss", self._recent(), r["id_number"], "unemployment_registered")
            if r["ui_benefit_end"] is not None and since <= r["ui_benefit_end"] <= REFERENCE_DATE:
                self._event("hrss", r["ui_benefit_end"], r["id_number"], "benefit_ended")
        for r in mine[dep.assistance]:
            if r["end_date"] is not None and REFERENCE_DATE - timedelta(days=3 * 365) <= r["end_date"]:
                self._event("civil_affairs", r["end_date"], r["id_number"], "benefit_ended")
        for r in mine[dep.vehicles]:
            if r["reg_date"] >= since or (hh.tier_current and er.random() < 0.5):
                self._event("traffic", max(r["reg_date"], since), r["id_number"], "vehicle_registered")
        for r in mine[dep.properties]:
            if r["acquired_date"] >= since:
                self._event("real_estate", r["acquired_date"], r["id_number"], "property_registered")
        for r in mine[dep.business_roles]:
            if er.random() < (0.5 if hh.tier_current else 0.1):
                self._event("market_regulation", self._recent(), r["id_number"], "business_role_registered")
        for r in mine[dep.income]:
            if er.random() < (0.3 if hh.low_income else 0.03):
                self._event("tax", self._recent(), r["id_number"], "income_reassessed")
        for r in mine[dep.hpf_accounts]:
            if r["status"] == "stopped" and er.random() < 0.5:
                self._event("provident_fund", self._recent(), r["id_number"], "contributions_stopped")
        for r in mine[dep.enrolment]:
            if r["dropout_flag"]:
                self._event("education", self._recent(), r["id_number"], "dropout_flagged")
            elif r["enrolled"] and r["stage"] in ("senior_high", "undergraduate") and er.random() < 0.5:
                self._event("education", date(REFERENCE_DATE.year, 9, 1), r["id_number"], "school_enrolled")

    def write_events(self) -> None:
        """Each department's events in the order they happened: seq 1, 2, ... (recorded that evening)."""
        for code, table in dep.OUTBOXES.items():
            mine = sorted((on, i, kind) for d, on, i, kind in self.events if d == code)
            for n, (on, id_number, kind) in enumerate(mine, start=1):
                recorded = datetime.combine(on, time(18, 0), CHINA).isoformat()
                self._emit(table, n, id_number, kind, on, recorded)

    # ---- the golden scenario --------------------------------------------------------------------
    def add_golden(self) -> None:
        """The seed article's man in 东新村: stroke, certificate upgraded from grade 4 to 2 (M1 fires)."""
        hh = self._household("330113", GOLDEN_ADDRESS, "elderly_alone", hukou="113052017")
        man = _Person(GOLDEN_ID, "钱国良", "male", GOLDEN_DOB, _age(GOLDEN_DOB), "01")
        self._add_members(hh, [man])
        gid, money = man.id_number, Decimal
        self._emit(dep.assistance, gid, "low_edge", date(2023, 6, 1), None, money("0.00"))
        self._emit(dep.certificates, gid, f"{gid}42", 4, 2, date(2019, 5, 10), date(2026, 10, 20), "living")
        self._emit(dep.medical, gid, True, "resident", money("58750.00"), money("23500.00"), 2, True)
        self._emit(dep.employment, gid, "resident", money("260.00"), False, None, None)
        self.used["title"].add("0035612")
        title = "浙(2017)杭州市不动产权第0035612号"
        self._emit(dep.properties, gid, title, GOLDEN_ADDRESS, money("48.00"), date(1998, 6, 20))


def _write(out_dir: Path, rows: dict[Table, list[Row]]) -> dict[str, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for code, department in dep.DEPARTMENTS.items():
        if department.metadata is None:
            continue
        path = out_dir / f"{code}.sqlite"
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        engine = create_engine(f"sqlite:///{path}")
        try:
            with engine.begin() as conn:
                department.metadata.create_all(conn)
                dep.OUTBOX_METADATA[code].create_all(conn)
                for table in [*department.metadata.sorted_tables, dep.OUTBOXES[code]]:
                    if rows[table]:
                        conn.execute(table.insert(), rows[table])
        finally:
            engine.dispose()
        counts[code] = sum(len(rows[t]) for t in department.metadata.sorted_tables)
    return counts


def generate(out_dir: Path, *, residents: int = 10_000, seed: int = 20241, progress: bool = False) -> GenerateResult:
    """Write ``out_dir/<department>.sqlite`` for every source department, replacing existing files.

    The golden-scenario household comes first; random households follow until exactly ``residents``
    people exist (the last household is cut short when needed).
    """
    if residents < 1:
        raise ValueError("residents must be at least 1 (the golden scenario)")
    gen = _Generator(random.Random(seed), random.Random(seed * 7919 + 13))
    with tqdm(total=residents, unit="resident", desc="households", disable=not progress) as bar:
        gen.add_golden()
        bar.update(1)
        while gen.residents < residents:
            bar.update(gen.add_household(residents - gen.residents))
    gen.write_events()
    counts = _write(Path(out_dir), gen.rows)
    events = {code: len(gen.rows[table]) for code, table in dep.OUTBOXES.items()}
    return GenerateResult(gen.residents, gen.households, counts, GOLDEN_ID, GOLDEN_HOUSEHOLD, events)
