"""Record types contributed by each department to ``Person``.

Each record is built from the department's rows for one resident (``hub.schema.records``): its ``value``
fields are computed once from those rows, read through the request's batched loaders. Predicates keep a
resolver: they are computed in the department's own query, and the raw value never reaches the hub.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import strawberry
from sqlalchemy import Table
from strawberry.types import Info

from hub.departments import (
    assistance,
    business_roles,
    certificates,
    employment,
    enrolment,
    hpf_accounts,
    income,
    medical,
    properties,
    vehicles,
)
from hub.errors import RequestError
from hub.policy import forms
from hub.policy.model import Form
from hub.schema.records import answer, items, predicate, value

RAW, MASKED, BAND, PRED, EXISTS = Form.RAW, Form.MASKED, Form.BAND, Form.PREDICATE, Form.EXISTS

for _band in (forms.IncomeBand, forms.CostBand, forms.AmountBand, forms.AreaBand, forms.BalanceBand):
    strawberry.enum(_band, description=_band.__doc__)


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


# the tables, under names the record classes do not shadow (their ``properties`` and ``vehicles`` fields)
_PROPERTIES, _VEHICLES = properties, vehicles


def _changed(c: Any, days: int) -> tuple[str, Any]:
    if not 1 <= days <= 3660:
        raise RequestError("days must be between 1 and 3660", code="BAD_ARGUMENT")
    since = c.today - timedelta(days=days)
    return f"changed{days}", (certificates.c.issue_date >= since) | (certificates.c.change_date >= since)


def _oop_at_least(c: Any, threshold: int) -> tuple[str, Any]:
    if not 0 <= threshold <= 10_000_000:
        raise RequestError("threshold must be between 0 and 10,000,000", code="BAD_ARGUMENT")
    return f"oop>={threshold}", medical.c.oop_12m >= threshold


def _income_below(c: Any, threshold: int) -> tuple[str, Any]:
    if not 0 <= threshold <= 100_000_000:
        raise RequestError("threshold must be between 0 and 100,000,000", code="BAD_ARGUMENT")
    return f"inc<{threshold}", (income.c.annual_wage_income + income.c.business_income) < threshold


@strawberry.type(description="Civil affairs (民政) assistance: tier, dates and amount.")
class CivilAffairsRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    tier: str | None = value(
        RAW,
        "civil_affairs",
        "Assistance tier: dibao, special_hardship, low_edge, rigid_expenditure, temporary.",
        "tier",
    )
    start_date: date | None = value(RAW, "civil_affairs", "Date the current assistance started.", "start_date")
    end_date: date | None = value(
        RAW, "civil_affairs", "Date the assistance ended; null while it continues.", "end_date"
    )
    monthly_amount: float | None = value(
        RAW,
        "civil_affairs",
        "Monthly amount paid to this person, yuan.",
        lambda r: _f(r.monthly_amount),
        columns=("monthly_amount",),
    )

    @predicate(
        "civil_affairs",
        "Whether the person currently receives any assistance tier.",
        assistance,
        lambda c: ("current", assistance.c.end_date.is_(None) | (assistance.c.end_date >= c.today)),
    )
    def is_recipient(self, info: Info) -> bool:
        return answer(self, info)


@strawberry.type(description="Disabled Persons' Federation (残联) disability certificate.")
class DisabilityRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    cert_no_masked: str | None = value(
        MASKED,
        "disability",
        "Certificate number, masked to its 6-digit area code (the tail would disclose category and grade).",
        lambda r: forms.mask_cert(r.cert_no),
        columns=("cert_no",),
    )
    category: int | None = value(
        RAW,
        "disability",
        "Category: 1 vision, 2 hearing, 3 speech, 4 physical, 5 intellectual, 6 mental, 7 multiple.",
        "category",
    )
    grade: int | None = value(RAW, "disability", "Grade 1 (most severe) to 4.", "grade")
    issue_date: date | None = value(RAW, "disability", "Date the certificate was issued.", "issue_date")
    change_date: date | None = value(RAW, "disability", "Date of the last change of category or grade.", "change_date")
    two_subsidies_status: str | None = value(
        RAW,
        "disability",
        "Status of the two subsidies (两项补贴): none, living, care, both.",
        "two_subsidies",
    )
    has_certificate: bool = value(
        EXISTS, "disability", "Whether the person holds a disability certificate.", bool, rows=True, columns=()
    )

    @predicate(
        "disability",
        "Whether the person has a severe disability (grade 1 or 2).",
        certificates,
        lambda c: ("severe", certificates.c.grade <= 2),
    )
    def is_severe(self, info: Info) -> bool:
        return answer(self, info)

    @predicate(
        "disability",
        "Whether the certificate was issued or upgraded within the last `days` days. `days` must be one your "
        "grant lists (policies/disability.toml, [grants.thresholds]: 30, 90 or 365 days today); any other value "
        "refuses the whole request with POLICY_DENIED.",
        certificates,
        _changed,
    )
    def changed_within_days(self, info: Info, days: int) -> bool:
        return answer(self, info)


@strawberry.type(description="Medical security (医保): insurance and 12-month costs. Never a diagnosis.")
class MedicalRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    insured: bool | None = value(RAW, "medical_security", "Whether the person is insured.", "insured")
    scheme: str | None = value(RAW, "medical_security", "Scheme: employee or resident.", "scheme")
    out_of_pocket_12m: float | None = value(
        RAW,
        "medical_security",
        "Out-of-pocket medical cost over the last 12 months, yuan.",
        lambda r: _f(r.oop_12m),
        columns=("oop_12m",),
    )
    out_of_pocket_12m_band: forms.CostBand | None = value(
        BAND,
        "medical_security",
        "Out-of-pocket medical cost over 12 months, as a band.",
        lambda r: forms.cost_band(float(r.oop_12m)),
        columns=("oop_12m",),
    )
    inpatient_count: int | None = value(
        RAW, "medical_security", "Number of inpatient stays over 12 months.", "inpatient_count"
    )

    @predicate(
        "medical_security",
        "Whether out-of-pocket cost over 12 months is at least `threshold` yuan. `threshold` must be one your "
        "grant lists (policies/medical_security.toml, [grants.thresholds]): the law's fixed figures, such as "
        "20,000 yuan, the catastrophic medical cost of monitoring rule M2. Any other threshold refuses the whole "
        "request with POLICY_DENIED before any department is asked.",
        medical,
        _oop_at_least,
    )
    def out_of_pocket_12m_at_least(self, info: Info, threshold: int) -> bool:
        return answer(self, info)

    @predicate(
        "medical_security",
        "Whether a chronic or serious disease is registered (never which one).",
        medical,
        lambda c: ("chronic", medical.c.chronic_flag.is_(True)),
    )
    def has_chronic_disease(self, info: Info) -> bool:
        return answer(self, info)


@strawberry.type(description="Human resources and social security (人社): pension and unemployment.")
class EmploymentRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    pension_type: str | None = value(RAW, "hrss", "Pension type: employee, resident or none.", "pension_type")
    pension_monthly: float | None = value(
        RAW, "hrss", "Monthly pension, yuan.", lambda r: _f(r.pension_monthly), columns=("pension_monthly",)
    )
    pension_monthly_band: forms.AmountBand | None = value(
        BAND,
        "hrss",
        "Monthly pension as a band.",
        lambda r: forms.amount_band(float(r.pension_monthly)),
        columns=("pension_monthly",),
    )
    unemployed_registered: bool | None = value(
        RAW, "hrss", "Whether the person is registered unemployed.", "unemployed_registered"
    )
    benefit_end: date | None = value(RAW, "hrss", "Unemployment-benefit end date, if any.", "ui_benefit_end")

    @predicate(
        "hrss",
        "Whether the person is registered unemployed.",
        employment,
        lambda c: ("unemployed", employment.c.unemployed_registered.is_(True)),
    )
    def is_unemployed(self, info: Info) -> bool:
        return answer(self, info)


@strawberry.type(description="Tax (税务): annual income.")
class TaxRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    year: int | None = value(RAW, "tax", "Tax year of the income figures.", "year")
    annual_wage_income: float | None = value(
        RAW, "tax", "Annual wage income, yuan.", lambda r: _f(r.annual_wage_income), columns=("annual_wage_income",)
    )
    business_income: float | None = value(
        RAW, "tax", "Annual business income, yuan.", lambda r: _f(r.business_income), columns=("business_income",)
    )
    income_band: forms.IncomeBand | None = value(
        BAND,
        "tax",
        "Wage plus business income, per month, as a multiple of the minimum living standard.",
        lambda r: forms.income_band(float(r.annual_wage_income) + float(r.business_income)),
        columns=("annual_wage_income", "business_income"),
    )

    @predicate(
        "tax",
        "Whether annual wage plus business income is below `threshold` yuan. `threshold` must be one your grant "
        "lists (policies/tax.toml, [grants.thresholds]): fixed multiples of the local minimum living standard, "
        "such as 1x, 1.5x or 2x of 1,300 yuan a month (15,600, 23,400, 31,200 a year). Any other threshold "
        "refuses the whole request with POLICY_DENIED.",
        income,
        _income_below,
    )
    def annual_income_below(self, info: Info, threshold: int) -> bool:
        return answer(self, info)


@strawberry.type(description="One registered property (不动产).")
class Property:
    row: strawberry.Private[Any]

    address_masked: str = value(
        MASKED,
        "real_estate",
        "Property address, masked after the street.",
        lambda r: forms.mask_address(r.address),
        columns=("address",),
    )
    area_m2: float = value(
        RAW, "real_estate", "Floor area, square metres.", lambda r: float(r.area_m2), columns=("area_m2",)
    )
    acquired_date: date = value(RAW, "real_estate", "Date acquired.", "acquired_date")


def _total_area(rows: list[Any]) -> float:
    return float(sum(float(r.area_m2) for r in rows))


@strawberry.type(description="Real estate registration (不动产登记): properties held.")
class RealEstateRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    property_count: int = value(RAW, "real_estate", "Number of properties held.", len, rows=True, columns=())
    total_area_m2: float = value(
        RAW, "real_estate", "Total floor area held, square metres.", _total_area, rows=True, columns=("area_m2",)
    )
    total_area_band: forms.AreaBand = value(
        BAND,
        "real_estate",
        "Total floor area held, as a band.",
        lambda rows: forms.area_band(_total_area(rows)),
        rows=True,
        columns=("area_m2",),
    )
    properties: list[Property] = items(
        "The properties, one by one. Provider: Real estate registration (不动产登记).", Property
    )

    @predicate(
        "real_estate",
        "Whether a property was acquired in the last 12 months.",
        _PROPERTIES,
        lambda c: ("recent", properties.c.acquired_date >= c.today - timedelta(days=365)),
    )
    def acquired_last_12_months(self, info: Info) -> bool:
        return answer(self, info)


@strawberry.type(description="One registered vehicle (车辆).")
class Vehicle:
    row: strawberry.Private[Any]

    plate_masked: str = value(
        MASKED,
        "traffic",
        "Plate, masked: province, city letter and last character.",
        lambda r: forms.mask_plate(r.plate),
        columns=("plate",),
    )
    vehicle_type: str = value(
        RAW, "traffic", "Vehicle type: small_car, motorcycle, mobility_vehicle, truck.", "vehicle_type"
    )
    use: str = value(RAW, "traffic", "Use: operating or non_operating.", "use")
    reg_date: date = value(RAW, "traffic", "Registration date.", "reg_date")


# Exempt from the asset test: a disabled person's mobility vehicle, or an operating vehicle that is a livelihood.
_NON_EXEMPT = ~((vehicles.c.vehicle_type == "mobility_vehicle") | (vehicles.c.use == "operating"))


@strawberry.type(description="Public security traffic administration (公安交管): vehicles held.")
class VehicleRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    vehicle_count: int = value(
        RAW, "traffic", "Number of vehicles registered to the person.", len, rows=True, columns=()
    )
    vehicles: list[Vehicle] = items("The vehicles, one by one. Provider: Public security, traffic (公安交管).", Vehicle)

    @predicate(
        "traffic",
        "Whether the person owns a car that is not exempt from the asset test.",
        _VEHICLES,
        lambda c: ("nonexempt", _NON_EXEMPT),
    )
    def has_non_exempt_car(self, info: Info) -> bool:
        return answer(self, info)


@strawberry.type(description="One business role (市场主体身份).")
class BusinessRole:
    row: strawberry.Private[Any]

    role: str = value(
        RAW,
        "market_regulation",
        "Role: legal_rep, director, supervisor, senior_manager, investor, sole_trader.",
        "role",
    )
    uscc: str = value(RAW, "market_regulation", "Unified social credit code of the business.", "uscc")
    subscribed_capital: float = value(
        RAW,
        "market_regulation",
        "Subscribed capital, yuan.",
        lambda r: float(r.subscribed_capital),
        columns=("subscribed_capital",),
    )


@strawberry.type(description="Market regulation (市场监管): business roles.")
class BusinessRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    roles: list[BusinessRole] = items("Business roles held. Provider: Market regulation (市场监管).", BusinessRole)

    @predicate(
        "market_regulation",
        "Whether the person holds any business role.",
        business_roles,
        lambda c: ("any", business_roles.c.role.is_not(None)),
    )
    def has_business_role(self, info: Info) -> bool:
        return answer(self, info)


@strawberry.type(description="Housing provident fund (住房公积金).")
class ProvidentFundRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    monthly_contribution: float | None = value(
        RAW,
        "provident_fund",
        "Monthly contribution, yuan.",
        lambda r: _f(r.monthly_contrib),
        columns=("monthly_contrib",),
    )
    balance_band: forms.BalanceBand | None = value(
        BAND,
        "provident_fund",
        "Account balance as a band.",
        lambda r: forms.balance_band(float(r.balance)),
        columns=("balance",),
    )

    @predicate(
        "provident_fund",
        "Whether contributions have stopped.",
        hpf_accounts,
        lambda c: ("stopped", hpf_accounts.c.status == "stopped"),
    )
    def contributions_stopped(self, info: Info) -> bool:
        return answer(self, info)


@strawberry.type(description="Education (教育): enrolment.")
class EducationRecord:
    id_number: strawberry.Private[str]
    answers: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)  # predicates

    stage: str | None = value(
        RAW,
        "education",
        "Stage: preschool, primary, junior_high, senior_high, vocational, undergraduate.",
        "stage",
    )
    school: str | None = value(RAW, "education", "School name.", "school")
    aid_received: bool | None = value(RAW, "education", "Whether education aid was received.", "aid_received")

    @predicate(
        "education",
        "Whether the person is a full-time student (counts as a household member).",
        enrolment,
        lambda c: ("enrolled", enrolment.c.enrolled.is_(True)),
    )
    def is_full_time_student(self, info: Info) -> bool:
        return answer(self, info)

    @predicate(
        "education",
        "Whether the person has a dropout flag.",
        enrolment,
        lambda c: ("dropout", enrolment.c.dropout_flag.is_(True)),
    )
    def dropped_out(self, info: Info) -> bool:
        return answer(self, info)


# Each record type: its provider department and the table its rows come from (one resident's rows).
RECORD_TABLES: dict[type, tuple[str, Table]] = {
    CivilAffairsRecord: ("civil_affairs", assistance),
    DisabilityRecord: ("disability", certificates),
    MedicalRecord: ("medical_security", medical),
    EmploymentRecord: ("hrss", employment),
    TaxRecord: ("tax", income),
    RealEstateRecord: ("real_estate", properties),
    VehicleRecord: ("traffic", vehicles),
    BusinessRecord: ("market_regulation", business_roles),
    ProvidentFundRecord: ("provident_fund", hpf_accounts),
    EducationRecord: ("education", enrolment),
}
