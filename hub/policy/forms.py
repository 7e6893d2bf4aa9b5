"""Disclosure transforms: masking patterns and bands. Pure functions; documented in docs/policies.md.

Each mask's docstring states what it leaves, in bits, against what an enumeration would need. The rule: a mask
must leave far more candidates than a consumer can test (lookups by ID number are also budgeted, ``hub/lookups.py``),
and must never carry a sensitive attribute.
"""

from __future__ import annotations

import enum

from hub.ids import mask_id

# Local minimum living standard (低保标准) used for income bands, yuan per person per month.
# Hangzhou's current figure was not confirmed; 1,300 is the demo's documented assumption.
DIBAO_MONTHLY = 1300

__all__ = ["DIBAO_MONTHLY", "mask_id", "mask_name", "mask_plate", "mask_address", "mask_tail", "mask_cert"]


def mask_name(name: str) -> str:
    """Keep the surname (first character), always two stars so the length is not revealed: ``王小明`` → ``王**``.

    Leaves the surname: about 7 bits (the 100 commonest surnames cover ~85% of residents, 王/李/张 ~7% each).
    The given name (1-2 characters from thousands, over 12 bits) and its length are hidden."""
    return name[:1] + "**"


def mask_plate(plate: str) -> str:
    """Keep the province and city letter and the last character: ``浙A12345`` → ``浙A****5``.

    Leaves the registering city (known from the area anyway) and one of ~34 characters (5.1 bits); the other 4-5
    characters (about 20 bits) are hidden."""
    return plate[:2] + "*" * (len(plate) - 3) + plate[-1:]


def mask_tail(value: str, keep: int = 4) -> str:
    """Keep only the last ``keep`` characters: account numbers. Short values are all stars.

    Leaves ``keep`` digits (13.3 bits for 4) of an account number of 16-19 digits; the rest is hidden. Not for
    certificate numbers, whose tail is the ID number's and the disability category and grade (``mask_cert``)."""
    if len(value) <= keep * 2:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]


def mask_cert(cert_no: str) -> str:
    """A disability certificate number (ID number + category + grade) keeps only the area code: ``330113`` and
    14 stars. Its last 4 characters would disclose the category and grade (sensitive, 4.8 bits) and 2 characters
    of the ID number; the rest follows ``mask_id``."""
    return cert_no[:6] + "*" * (len(cert_no) - 6)


def mask_address(address: str) -> str:
    """Keep the district and street (up to the first 街道/镇/乡), hide the rest: ``临平区运河街道****``.

    Leaves the street or town: a district has about 10-30 (4-5 bits), a street thousands of households; the
    community, building and room (the 10+ bits that would single out a household) are hidden."""
    for marker in ("街道", "镇", "乡"):
        i = address.find(marker)
        if i >= 0:
            return address[: i + len(marker)] + "****"
    return address[:3] + "****"


class IncomeBand(enum.Enum):
    """A person's monthly income (annual wage plus business income / 12) as a multiple of the local minimum
    living standard."""

    BELOW_1X = "below 1x dibao standard"
    FROM_1X_TO_1_5X = "1x to 1.5x"
    FROM_1_5X_TO_2X = "1.5x to 2x"
    FROM_2X_TO_3X = "2x to 3x"
    ABOVE_3X = "3x or more"


def income_band(annual_income: float, persons: int = 1) -> IncomeBand:
    ratio = annual_income / 12 / max(persons, 1) / DIBAO_MONTHLY
    if ratio < 1:
        return IncomeBand.BELOW_1X
    if ratio < 1.5:
        return IncomeBand.FROM_1X_TO_1_5X
    if ratio < 2:
        return IncomeBand.FROM_1_5X_TO_2X
    if ratio < 3:
        return IncomeBand.FROM_2X_TO_3X
    return IncomeBand.ABOVE_3X


class CostBand(enum.Enum):
    """Twelve-month medical out-of-pocket cost, yuan."""

    BELOW_2K = "under 2,000"
    FROM_2K_TO_10K = "2,000 to 10,000"
    FROM_10K_TO_20K = "10,000 to 20,000"
    ABOVE_20K = "20,000 or more"


def cost_band(amount: float) -> CostBand:
    if amount < 2000:
        return CostBand.BELOW_2K
    if amount < 10000:
        return CostBand.FROM_2K_TO_10K
    if amount < 20000:
        return CostBand.FROM_10K_TO_20K
    return CostBand.ABOVE_20K


class AmountBand(enum.Enum):
    """Monthly amounts (pensions, provident-fund contributions), yuan."""

    NONE = "0"
    BELOW_1K = "under 1,000"
    FROM_1K_TO_3K = "1,000 to 3,000"
    FROM_3K_TO_6K = "3,000 to 6,000"
    ABOVE_6K = "6,000 or more"


def amount_band(amount: float) -> AmountBand:
    if amount <= 0:
        return AmountBand.NONE
    if amount < 1000:
        return AmountBand.BELOW_1K
    if amount < 3000:
        return AmountBand.FROM_1K_TO_3K
    if amount < 6000:
        return AmountBand.FROM_3K_TO_6K
    return AmountBand.ABOVE_6K


class BalanceBand(enum.Enum):
    """Account balances (housing provident fund), yuan."""

    NONE = "0"
    BELOW_5K = "under 5,000"
    FROM_5K_TO_20K = "5,000 to 20,000"
    FROM_20K_TO_50K = "20,000 to 50,000"
    ABOVE_50K = "50,000 or more"


def balance_band(amount: float) -> BalanceBand:
    if amount <= 0:
        return BalanceBand.NONE
    if amount < 5000:
        return BalanceBand.BELOW_5K
    if amount < 20000:
        return BalanceBand.FROM_5K_TO_20K
    if amount < 50000:
        return BalanceBand.FROM_20K_TO_50K
    return BalanceBand.ABOVE_50K


class AreaBand(enum.Enum):
    """Total floor area owned, square metres."""

    NONE = "none"
    BELOW_60 = "under 60"
    FROM_60_TO_120 = "60 to 120"
    ABOVE_120 = "120 or more"


def area_band(area: float) -> AreaBand:
    if area <= 0:
        return AreaBand.NONE
    if area < 60:
        return AreaBand.BELOW_60
    if area < 120:
        return AreaBand.FROM_60_TO_120
    return AreaBand.ABOVE_120
