"""Disclosure transforms at the level where the value is decided: exact outputs and every band boundary.

Gap 3 of issue 19: ``mask_plate``, ``mask_tail`` and the address fallback are pinned here, and every band
boundary (income, cost, pension amount, balance, area) on both sides, including the income formula.
"""

from __future__ import annotations

import pytest

from hub.policy import forms
from hub.policy.forms import AmountBand, AreaBand, BalanceBand, CostBand, IncomeBand


def test_mask_name_keeps_surname_and_hides_length() -> None:
    assert forms.mask_name("王小明") == "王**"
    assert forms.mask_name("欧阳娜娜") == "欧**"
    assert forms.mask_name("李") == "李**"
    assert forms.mask_name("") == "**"


def test_mask_plate() -> None:
    assert forms.mask_plate("浙A12345") == "浙A****5"
    assert forms.mask_plate("浙AD12345") == "浙A*****5"  # new-energy plates are one longer
    assert forms.mask_plate("浙A1") == "浙A1"  # nothing between the kept parts
    assert forms.mask_plate("浙A1X") == "浙A*X"


def test_mask_tail_keeps_four_and_hides_short_values() -> None:
    assert forms.mask_tail("6222021234567890123") == "*" * 15 + "0123"
    assert forms.mask_tail("123456789") == "*****6789"  # 9 > 2 * 4: the tail is shown
    assert forms.mask_tail("12345678") == "********"  # exactly 2 * keep: all stars
    assert forms.mask_tail("1234567") == "*******"
    assert forms.mask_tail("") == ""
    assert forms.mask_tail("abcdefg", keep=3) == "****efg"  # 7 > 6
    assert forms.mask_tail("abcdef", keep=3) == "******"


def test_mask_address_markers_and_fallback() -> None:
    assert forms.mask_address("临平区运河街道星光路12号3幢") == "临平区运河街道****"
    assert forms.mask_address("临安区於潜镇中心村5号") == "临安区於潜镇****"
    assert forms.mask_address("淳安县大墅乡上坊村1号") == "淳安县大墅乡****"
    # 街道 wins over a later 镇 or 乡 in the house part
    assert forms.mask_address("西湖区北山街道镇东路1号") == "西湖区北山街道****"
    # a marker at the very start still counts
    assert forms.mask_address("镇东路1号") == "镇****"
    # no marker: only the first three characters survive
    assert forms.mask_address("杭州市某处一号楼") == "杭州市****"
    assert forms.mask_address("AB") == "AB****"


def test_mask_id_is_reexported() -> None:
    assert forms.mask_id("33011319500101123X") == "330113************"


def test_dibao_standard() -> None:
    assert forms.DIBAO_MONTHLY == 1300


@pytest.mark.parametrize(
    ("annual", "persons", "band"),
    [
        (0, 1, IncomeBand.BELOW_1X),
        (15599.99, 1, IncomeBand.BELOW_1X),
        (15600, 1, IncomeBand.FROM_1X_TO_1_5X),  # 1300 * 12: exactly 1x
        (23399.99, 1, IncomeBand.FROM_1X_TO_1_5X),
        (23400, 1, IncomeBand.FROM_1_5X_TO_2X),  # exactly 1.5x
        (31199.99, 1, IncomeBand.FROM_1_5X_TO_2X),
        (31200, 1, IncomeBand.FROM_2X_TO_3X),  # exactly 2x
        (46799.99, 1, IncomeBand.FROM_2X_TO_3X),
        (46800, 1, IncomeBand.ABOVE_3X),  # exactly 3x
        (10**7, 1, IncomeBand.ABOVE_3X),
        # the household divides: 31,200 a year for two persons is 1,300 a month each
        (31200, 2, IncomeBand.FROM_1X_TO_1_5X),
        (31199.99, 2, IncomeBand.BELOW_1X),
        (46800, 3, IncomeBand.FROM_1X_TO_1_5X),
        (46800, 2, IncomeBand.FROM_1_5X_TO_2X),
        # persons below one count as one
        (15600, 0, IncomeBand.FROM_1X_TO_1_5X),
        (15600, -3, IncomeBand.FROM_1X_TO_1_5X),
    ],
)
def test_income_band_boundaries(annual: float, persons: int, band: IncomeBand) -> None:
    assert forms.income_band(annual, persons) is band


def test_income_band_default_is_one_person() -> None:
    assert forms.income_band(15600) is IncomeBand.FROM_1X_TO_1_5X
    assert forms.income_band(15599) is IncomeBand.BELOW_1X


@pytest.mark.parametrize(
    ("amount", "band"),
    [
        (0, CostBand.BELOW_2K),
        (1999.99, CostBand.BELOW_2K),
        (2000, CostBand.FROM_2K_TO_10K),
        (9999.99, CostBand.FROM_2K_TO_10K),
        (10000, CostBand.FROM_10K_TO_20K),
        (19999.99, CostBand.FROM_10K_TO_20K),
        (20000, CostBand.ABOVE_20K),
        (23500, CostBand.ABOVE_20K),
    ],
)
def test_cost_band_boundaries(amount: float, band: CostBand) -> None:
    assert forms.cost_band(amount) is band


@pytest.mark.parametrize(
    ("amount", "band"),
    [
        (-1, AmountBand.NONE),
        (0, AmountBand.NONE),
        (0.01, AmountBand.BELOW_1K),
        (999.99, AmountBand.BELOW_1K),
        (1000, AmountBand.FROM_1K_TO_3K),
        (2999.99, AmountBand.FROM_1K_TO_3K),
        (3000, AmountBand.FROM_3K_TO_6K),
        (5999.99, AmountBand.FROM_3K_TO_6K),
        (6000, AmountBand.ABOVE_6K),
    ],
)
def test_pension_amount_band_boundaries(amount: float, band: AmountBand) -> None:
    assert forms.amount_band(amount) is band


@pytest.mark.parametrize(
    ("amount", "band"),
    [
        (-5, BalanceBand.NONE),
        (0, BalanceBand.NONE),
        (0.01, BalanceBand.BELOW_5K),
        (4999.99, BalanceBand.BELOW_5K),
        (5000, BalanceBand.FROM_5K_TO_20K),
        (19999.99, BalanceBand.FROM_5K_TO_20K),
        (20000, BalanceBand.FROM_20K_TO_50K),
        (49999.99, BalanceBand.FROM_20K_TO_50K),
        (50000, BalanceBand.ABOVE_50K),
    ],
)
def test_balance_band_boundaries(amount: float, band: BalanceBand) -> None:
    assert forms.balance_band(amount) is band


@pytest.mark.parametrize(
    ("area", "band"),
    [
        (0, AreaBand.NONE),
        (0.5, AreaBand.BELOW_60),
        (59.99, AreaBand.BELOW_60),
        (60, AreaBand.FROM_60_TO_120),
        (119.99, AreaBand.FROM_60_TO_120),
        (120, AreaBand.ABOVE_120),
    ],
)
def test_area_band_boundaries(area: float, band: AreaBand) -> None:
    assert forms.area_band(area) is band


def test_band_labels() -> None:
    """The labels are the documented ones (docs/policies.md); clients may display them."""
    assert [b.value for b in IncomeBand] == [
        "below 1x dibao standard",
        "1x to 1.5x",
        "1.5x to 2x",
        "2x to 3x",
        "3x or more",
    ]
    assert [b.value for b in CostBand] == ["under 2,000", "2,000 to 10,000", "10,000 to 20,000", "20,000 or more"]
    assert [b.value for b in AmountBand] == ["0", "under 1,000", "1,000 to 3,000", "3,000 to 6,000", "6,000 or more"]
    assert [b.value for b in BalanceBand] == [
        "0",
        "under 5,000",
        "5,000 to 20,000",
        "20,000 to 50,000",
        "50,000 or more",
    ]
    assert [b.value for b in AreaBand] == ["none", "under 60", "60 to 120", "120 or more"]


def test_mask_cert_keeps_only_the_area_code() -> None:
    # ID number (18) + category + grade: the tail would tell the disability category and grade
    assert forms.mask_cert("33011319520318017642") == "330113" + "*" * 14
    assert forms.mask_cert("3301131952031801764") == "330113" + "*" * 13
