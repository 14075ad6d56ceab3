"""normalize_phone: the spellings operators type, all stored as E.164."""

from __future__ import annotations

import pytest

from gateway.register.phones import national_digits, normalize_phone, takes_sms


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


@pytest.mark.parametrize(
    ("e164", "texted"),
    [
        ("+8613700000001", True),  # a mainland mobile
        # The SPEC's duty line, as normalize_phone stores it and as an older register or a
        # hand-written row may hold it (trunk 0 kept behind +86).
        ("+862376000000", False),
        ("+8602376000000", False),
        ("+861012345678", False),  # a Beijing landline
        ("+864008001234", False),  # a 400 service number (shared cost)
        ("+868008101234", False),  # an 800 number (toll free)
        # A US number may be a mobile or a landline: never withhold a message on doubt.
        ("+16502530000", True),
        ("not a number", True),
    ],
)
def test_only_numbers_that_certainly_cannot_take_sms_are_called_instead(
    e164: str, texted: bool
) -> None:
    assert takes_sms(e164) is texted


@pytest.mark.parametrize(
    ("e164", "dialled"),
    [
        ("+8613700000001", "13700000001"),
        ("+862376000000", "02376000000"),
        ("+8602376000000", "02376000000"),
        ("+861012345678", "01012345678"),  # Beijing: a landline that starts with 1 after +86
    ],
)
def test_a_number_as_dialled_inside_china_keeps_a_landlines_trunk_zero(
    e164: str, dialled: str
) -> None:
    assert national_digits(e164) == dialled
