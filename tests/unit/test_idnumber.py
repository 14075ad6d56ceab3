"""GB 11643 ID numbers: length, birth date, MOD 11-2 check character, gender digit."""

from __future__ import annotations

import pytest

from gateway.register.idnumber import check_digit, describe_problem, mask

VALID_MALE = "500241194905050016"  # the SPEC's 张三: born 1949-05-05, sequence 001 (odd: 男)
VALID_X = "50024119600110106X"  # check character X; sequence 106 (even: 女)


def test_valid_number_for_a_man() -> None:
    assert describe_problem(VALID_MALE, "男") is None
    assert describe_problem(VALID_MALE) is None


def test_check_digit_of_the_example() -> None:
    assert check_digit(VALID_MALE[:17]) == "6"
    assert check_digit(VALID_X[:17]) == "X"


def test_wrong_check_digit_names_the_right_one() -> None:
    assert describe_problem("500241194905050017", "男") == "check digit is 7, should be 6"


def test_impossible_birth_date() -> None:
    # 30 February 1949; the check character is right for these 17 digits, so only the
    # date can be the problem.
    first17 = "50024119490230001"
    problem = describe_problem(first17 + check_digit(first17), "男")
    assert problem == "birth date 19490230 is not a real date"


def test_birth_date_in_the_future_or_too_old() -> None:
    for first17 in ("50024121000101001", "50024118800101001"):
        problem = describe_problem(first17 + check_digit(first17))
        assert problem is not None
        assert "out of range" in problem


def test_gender_digit_must_agree_with_gender() -> None:
    assert describe_problem(VALID_MALE, "女") == "17th digit says 男 but 性别 is 女"
    assert describe_problem(VALID_X, "男") == "17th digit says 女 but 性别 is 男"


@pytest.mark.parametrize("number", ["50024119490505001", "5002411949050500160", ""])
def test_wrong_length(number: str) -> None:
    assert describe_problem(number) == f"must have 18 characters, has {len(number)}"


def test_letters_other_than_a_final_x_are_refused() -> None:
    assert describe_problem("5002411949O5050016") == "must be 17 digits followed by a digit or X"
    assert describe_problem("50024119490505001Y") == "must be 17 digits followed by a digit or X"


def test_lowercase_x_is_accepted() -> None:
    assert describe_problem(VALID_X.lower(), "女") is None
    assert describe_problem(VALID_X, "女") is None


def test_mask_hides_birth_date_and_sequence() -> None:
    assert mask(VALID_MALE) == "5002**********0016"
