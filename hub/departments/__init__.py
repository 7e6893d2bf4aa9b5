"""Departments: who they are, and the tables each keeps in its own database.

The hub never copies these tables; it reads them live through each department's
read-only connection (``hub.sources``). The table definitions here are the contract the hub
expects of a department's database, and what ``hub demo`` generates synthetic data into.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Boolean, Column, Date, Integer, MetaData, Numeric, String, Table


@dataclass(frozen=True)
class Department:
    code: str
    name_zh: str
    name_en: str
    metadata: MetaData | None  # None: a consumer-only department with no data of its own


def _md() -> MetaData:
    return MetaData()


def _id() -> Column[str]:
    return Column("id_number", String(18), nullable=False, index=True)


OUTBOX = "change_events"


def _outbox(md: MetaData) -> Table:
    """The department's outbox: what changed, never the data itself (docs/monitoring.md). The department writes
    a row in the same transaction as the change; ``seq`` only grows. The hub reads it read-only, after its cursor."""
    return Table(
        OUTBOX,
        md,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("id_number", String(18), nullable=False),
        Column("kind", String(40), nullable=False),
        Column("occurred_on", Date, nullable=False),
        Column("recorded_at", String(32), nullable=False),  # ISO 8601 with offset (a type subgraphs can carry)
    )


# Public security, household registration (户籍)
public_security = _md()
residents = Table(
    "residents",
    public_security,
    Column("id_number", String(18), primary_key=True),
    Column("name", String(40), nullable=False),
    Column("sex", String(6), nullable=False),
    Column("dob", Date, nullable=False),
    Column("area_code", String(6), nullable=False, index=True),
    Column("hukou_addr", String(200), nullable=False),
    Column("household_id", String(20), nullable=False, index=True),
    Column("relation_code", String(2), nullable=False),
    Column("status", String(10), nullable=False),
    Column("synthetic", Boolean, nullable=False, default=True),
)
households = Table(
    "households",
    public_security,
    Column("household_id", String(20), primary_key=True),
    Column("hukou_no", String(20), nullable=False),
    Column("area_code", String(6), nullable=False, index=True),
    Column("address", String(200), nullable=False),
    Column("head_id_number", String(18), nullable=False),
)

# Civil affairs (民政): assistance records
civil_affairs = _md()
assistance = Table(
    "assistance",
    civil_affairs,
    _id(),
    Column("tier", String(20), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date),
    Column("monthly_amount", Numeric(10, 2), nullable=False),
)

# Disabled Persons' Federation (残联)
disability = _md()
certificates = Table(
    "certificates",
    disability,
    _id(),
    Column("cert_no", String(24), nullable=False),
    Column("category", Integer, nullable=False),
    Column("grade", Integer, nullable=False),
    Column("issue_date", Date, nullable=False),
    Column("change_date", Date),
    Column("two_subsidies", String(20), nullable=False),
)

# Medical security (医保)
medical_security = _md()
medical = Table(
    "medical",
    medical_security,
    _id(),
    Column("insured", Boolean, nullable=False),
    Column("scheme", String(20), nullable=False),
    Column("total_cost_12m", Numeric(12, 2), nullable=False),
    Column("oop_12m", Numeric(12, 2), nullable=False),
    Column("inpatient_count", Integer, nullable=False),
    Column("chronic_flag", Boolean, nullable=False),
)

# Human resources and social security (人社)
hrss = _md()
employment = Table(
    "employment",
    hrss,
    _id(),
    Column("pension_type", String(20), nullable=False),
    Column("pension_monthly", Numeric(10, 2), nullable=False),
    Column("unemployed_registered", Boolean, nullable=False),
    Column("ui_benefit_start", Date),
    Column("ui_benefit_end", Date),
)

# Tax (税务)
tax = _md()
income = Table(
    "income",
    tax,
    _id(),
    Column("year", Integer, nullable=False),
    Column("annual_wage_income", Numeric(12, 2), nullable=False),
    Column("business_income", Numeric(12, 2), nullable=False),
)

# Real estate registration (不动产)
real_estate = _md()
properties = Table(
    "properties",
    real_estate,
    _id(),
    Column("title_no", String(60), nullable=False),
    Column("address", String(200), nullable=False),
    Column("area_m2", Numeric(8, 2), nullable=False),
    Column("acquired_date", Date, nullable=False),
)

# Public security, traffic (车辆)
traffic = _md()
vehicles = Table(
    "vehicles",
    traffic,
    _id(),
    Column("plate", String(12), nullable=False),
    Column("vehicle_type", String(20), nullable=False),
    Column("use", String(20), nullable=False),
    Column("reg_date", Date, nullable=False),
)

# Market regulation (市场监管)
market_regulation = _md()
business_roles = Table(
    "business_roles",
    market_regulation,
    _id(),
    Column("uscc", String(18), nullable=False),
    Column("company_name", String(100), nullable=False),
    Column("role", String(30), nullable=False),
    Column("subscribed_capital", Numeric(14, 2), nullable=False),
)

# Housing provident fund (公积金)
provident_fund = _md()
hpf_accounts = Table(
    "accounts",
    provident_fund,
    _id(),
    Column("monthly_contrib", Numeric(10, 2), nullable=False),
    Column("balance", Numeric(12, 2), nullable=False),
    Column("status", String(10), nullable=False),
)

# Emergency management (应急管理): disaster victims. No fields are shared yet; only its change events.
emergency = _md()

# Education (教育)
education = _md()
enrolment = Table(
    "enrolment",
    education,
    _id(),
    Column("enrolled", Boolean, nullable=False),
    Column("stage", String(20), nullable=False),
    Column("school", String(100), nullable=False),
    Column("aid_received", Boolean, nullable=False),
    Column("dropout_flag", Boolean, nullable=False),
)

DEPARTMENTS: dict[str, Department] = {
    d.code: d
    for d in [
        Department("public_security", "公安户籍", "Public security, household registration", public_security),
        Department("civil_affairs", "民政", "Civil affairs", civil_affairs),
        Department("disability", "残联", "Disabled Persons' Federation", disability),
        Department("medical_security", "医保", "Medical security", medical_security),
        Department("hrss", "人社", "Human resources and social security", hrss),
        Department("tax", "税务", "Tax", tax),
        Department("real_estate", "不动产登记", "Real estate registration", real_estate),
        Department("traffic", "公安交管", "Public security, traffic (vehicles)", traffic),
        Department("market_regulation", "市场监管", "Market regulation", market_regulation),
        Department("provident_fund", "住房公积金", "Housing provident fund", provident_fund),
        Department("education", "教育", "Education", education),
        Department("emergency", "应急管理", "Emergency management (change events only)", emergency),
        Department("utilities", "公用事业", "Utilities (consumer only)", None),
        Department("audit_office", "数据安全监督", "Privacy oversight (reads the audit log)", None),
    ]
}

SOURCE_DEPARTMENTS = [code for code, d in DEPARTMENTS.items() if d.metadata is not None]

# Every source department publishes its change events in an outbox table in its own database. The outbox has its
# own MetaData: it is not data the hub's queries read (nor part of a subgraph department's entity schema).
OUTBOX_METADATA: dict[str, MetaData] = {code: MetaData() for code in SOURCE_DEPARTMENTS}
OUTBOXES: dict[str, Table] = {code: _outbox(md) for code, md in OUTBOX_METADATA.items()}
