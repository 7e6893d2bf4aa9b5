"""Resident identity numbers (GB 11643-1999): validation and check digits."""

from __future__ import annotations

import re
from datetime import date
from operator import mul

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


def check_char(first17: str) -> str:
    """The check character for the first 17 digits of an ID number."""
    if len(first17) != len(WEIGHTS):
        raise ValueError(f"check_char takes 17 digits, got {len(first17)} characters")
    return CHECK_CHARS[sum(map(mul, map(int, first17), WEIGHTS)) % 11]  # (map, not a generator: a 1,000-ID batch)


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid 18-digit ID number, or None when it is.

    The message never repeats the number itself, so it is safe for errors and logs.
    """
    if len(value) != 18:
        return f"an ID number has 18 characters, got {len(value)}"
    if not _SHAPE.match(value):
        return "an ID number is 17 digits followed by a digit or X"
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "the birth date inside the ID number is not a real date"
    if check_char(value[:17]) != value[17]:
        return "the ID number's check character is wrong"
    return None


def is_valid_id(value: str) -> bool:
    return id_problem(value) is None


def make_id(area: str, born: date, sequence: int) -> str:
    """Build a valid ID number; ``sequence`` is odd for men and even for women."""
    body = f"{area}{born:%Y%m%d}{sequence:03d}"
    return body + check_char(body)


def birth_date(id_number: str) -> date:
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def sex(id_number: str) -> str:
    return "male" if int(id_number[16]) % 2 else "female"


def mask_id(id_number: str) -> str:
    """Masked form: the 6-digit area code, then 12 stars (``330113************``).

    Remaining information, in bits (docs/policies.md, "masked"): the mask discloses only the area code, which a
    consumer already knows to within its jurisdiction (a district: 0 bits more; a city of 13 districts: 3.7 bits).
    What is hidden: the birth date (about 36,500 plausible days, 15.2 bits) and the 3-digit sequence (10 bits);
    the check character is a function of them. An enumeration of the full number from the mask must try about
    2^25 candidates, 2^18.5 if the birth year is known, 2^9 (500) even if the birth date and sex are known.
    The former mask kept the last 4 characters (sequence and check character, 13.5 bits): it left ~3,500
    candidates (11.8 bits) without the birth date and exactly one with it, and was enumerated in 2 requests.
    """
    return id_number[:6] + "*" * 12
