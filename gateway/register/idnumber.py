"""GB 11643-1999 citizen identity numbers: 18 characters, ISO 7064 MOD 11-2 check digit."""

from __future__ import annotations

from datetime import date

__all__ = ["check_digit", "describe_problem", "mask"]

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


def check_digit(first17: str) -> str:
    """The 18th character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def describe_problem(number: str, gender: str | None = None) -> str | None:
    """Why ``number`` is not a valid ID number for a person of ``gender`` (男/女), or None."""
    if len(number) != 18:
        return f"must have 18 characters, has {len(number)}"
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] in "Xx"):
        return "must be 17 digits followed by a digit or X"
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return f"birth date {number[6:14]} is not a real date"
    if born.year < 1890 or born > date.today():  # noqa: DTZ011 - a calendar date, no zone
        return f"birth date {born.isoformat()} is out of range"
    expected = check_digit(number[:17])
    if number[17].upper() != expected:
        return f"check digit is {number[17]}, should be {expected}"
    if gender is not None:
        digit_gender = "男" if int(number[16]) % 2 == 1 else "女"
        if gender != digit_gender:
            return f"17th digit says {digit_gender} but 性别 is {gender}"
    return None


def mask(number: str) -> str:
    """What a helper sees: region and check kept, birth date and sequence hidden."""
    if len(number) < 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]
