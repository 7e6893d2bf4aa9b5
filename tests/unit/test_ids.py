"""Resident ID numbers (GB 11643-1999): check characters, every validation message, derived values."""

from __future__ import annotations

from datetime import date

import pytest

from hub import ids

# a valid number for every check character 0..10 (X): the weights and the table are pinned by these
VALID = [
    "330113198001010180",
    "330113198001010041",
    "330113198001010092",
    "330113198001010033",
    "330113198001010084",
    "330113198001010025",
    "330113198001010076",
    "330113198001010017",
    "330113198001010068",
    "330113198001010009",
    "33011319800101005X",
]


def test_weights_and_table() -> None:
    assert ids.WEIGHTS == (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    assert ids.CHECK_CHARS == "10X98765432"


@pytest.mark.parametrize("n", range(17))
def test_each_weight_matters(n: int) -> None:
    """Raising one digit by one changes the check character by exactly that digit's weight (mod 11)."""
    base = "00000000000000000"
    body = base[:n] + "1" + base[n + 1 :]
    assert ids.check_char(body) == ids.CHECK_CHARS[ids.WEIGHTS[n] % 11]


def test_check_char_known_values() -> None:
    assert ids.check_char("11010519491231002") == "X"
    assert ids.check_char("33011319500101123") == "5"
    assert ids.check_char("00000000000000000") == "1"  # sum 0
    assert ids.check_char("00000000000000011") == "6"  # 4 + 2 = 6 -> index 6
    assert ids.check_char("10000000000000003") == "X"  # 7 + 6 = 13 -> 13 % 11 = 2
    with pytest.raises(ValueError):
        ids.check_char("1234")  # strict: the weights need exactly 17 digits


def test_id_problem_messages() -> None:
    assert ids.id_problem("11010519491231002X") is None
    assert ids.id_problem("11010519491231002") == "an ID number has 18 characters, got 17"
    assert ids.id_problem("11010519491231002X1") == "an ID number has 18 characters, got 19"
    assert ids.id_problem("") == "an ID number has 18 characters, got 0"
    assert ids.id_problem("11010519491231002x") == "an ID number is 17 digits followed by a digit or X"
    assert ids.id_problem("1101051949123100X2") == "an ID number is 17 digits followed by a digit or X"
    assert ids.id_problem("A10105194912310021") == "an ID number is 17 digits followed by a digit or X"
    assert ids.id_problem("110105194902300021") == "the birth date inside the ID number is not a real date"
    assert ids.id_problem("110105194913010021") == "the birth date inside the ID number is not a real date"
    assert ids.id_problem("110105000001010021") == "the birth date inside the ID number is not a real date"
    assert ids.id_problem("110105194912310028") == "the ID number's check character is wrong"
    assert ids.id_problem("11010519491231003X") == "the ID number's check character is wrong"


@pytest.mark.parametrize("value", VALID)
def test_valid_numbers(value: str) -> None:
    assert ids.id_problem(value) is None
    assert ids.is_valid_id(value) is True
    assert ids.check_char(value[:17]) == value[17]


def test_is_valid_id_false() -> None:
    assert ids.is_valid_id("110105194912310028") is False
    assert ids.is_valid_id("x") is False


def test_birth_date_positions() -> None:
    """Only a valid date at positions 7-14 passes: a date elsewhere does not rescue an invalid one."""
    # year 2000 at 7-10, month 02, day 29 (leap) is real; day 30 is not
    leap = ids.make_id("330113", date(2000, 2, 29), 1)
    assert ids.id_problem(leap) is None
    body = "33011320000230001"
    assert ids.id_problem(body + ids.check_char(body)) == "the birth date inside the ID number is not a real date"
    body = "33011319991231001"
    assert ids.id_problem(body + ids.check_char(body)) is None
    body = "33011319800431001"  # 31 April: both digits of the day are read
    assert ids.id_problem(body + ids.check_char(body)) == "the birth date inside the ID number is not a real date"
    body = "33011319800410001"  # 10 April is real
    assert ids.id_problem(body + ids.check_char(body)) is None
    body = "33011319993112001"  # day and month swapped: month 31
    assert ids.id_problem(body + ids.check_char(body)) == "the birth date inside the ID number is not a real date"


def test_make_id_birth_date_and_sex() -> None:
    man = ids.make_id("330113", date(1950, 1, 1), 123)
    assert man == "330113195001011235"
    assert ids.birth_date(man) == date(1950, 1, 1)
    assert ids.sex(man) == "male"
    woman = ids.make_id("330113", date(1987, 11, 23), 42)
    assert woman == "330113198711230428"
    assert ids.birth_date(woman) == date(1987, 11, 23)
    assert ids.sex(woman) == "female"
    assert ids.birth_date("11010519491231002X") == date(1949, 12, 31)
    assert ids.sex("11010519491231002X") == "female"  # 17th digit 2
    assert ids.sex("110105194912310038") == "male"  # 17th digit 3


def test_mask_id() -> None:
    # only the area code is left (docs/policies.md: the last four let a full number be enumerated)
    assert ids.mask_id("11010519491231002X") == "110105************"
    assert ids.mask_id("330113195001011235") == "330113************"
