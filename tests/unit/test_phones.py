"""normalize_phone: the spellings operators type, all stored as E.164."""

from __future__ import annotations

import pytest

from gateway.register.phones import normalize_phone


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("13700000001", "+8613700000001"),
        ("137 0000 0001", "+8613700000001"),
        ("+86 137-0000-0001", "+8613700000001"),
        ("008613700000001", "+8613700000001"),
        ("+8613700000001", "+8613700000001"),
        ("  13700000001\t", "+8613700000001"),
        ("023-76000000", "+862376000000"),
        ("(023) 7600 0000", "+862376000000"),
        ("02376000000", "+862376000000"),
        ("010-12345678", "+861012345678"),
        # The SPEC's own town duty line: a landline keeping its trunk 0 behind +86.
        ("+8602376000000", "+862376000000"),
        ("+86 023 7600 0000", "+862376000000"),
        ("+86 (0) 23 7600 0000", "+862376000000"),
        ("0086 023 76000000", "+862376000000"),
        ("+86 0137 0000 0001", "+8613700000001"),
        # Foreign numbers (a guardian working abroad) keep their own country code.
        ("+1 650 253 0000", "+16502530000"),
    ],
)
def test_accepted_spellings_become_e164(written: str, e164: str) -> None:
    assert normalize_phone(written) == e164


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "not a phone number"),
        ("+860", "not a phone number"),
        ("110", "too short"),
        ("95588", "without its area code"),
        ("76000000", "needs its area code"),
        ("1370000000", "not a valid phone number"),  # a mobile with a digit missing
        ("137000000012", "not a valid phone number"),  # and with one too many
        ("+8612300000000", "not a valid phone number"),  # no such mobile range
        ("+86 13700000001 ext. 5", "extension"),
    ],
)
def test_impossible_numbers_are_refused_with_a_message(written: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        normalize_phone(written)


def test_message_quotes_the_value_as_written() -> None:
    with pytest.raises(ValueError, match=r"'1370000000'"):
        normalize_phone("1370000000")


def test_normalising_is_idempotent() -> None:
    for written in ("137 0000 0001", "+8602376000000", "+1 650 253 0000"):
        once = normalize_phone(written)
        assert normalize_phone(once) == once
