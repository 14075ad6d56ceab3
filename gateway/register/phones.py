"""Phone numbers as the register stores them: E.164 (``+8613700000001``).

Operators type numbers the way they are printed locally (``137 0000 0001``, ``023-76000000``,
``008613700000001``); alerts are sent to whatever ends up in the register, so a number is
only accepted when ``phonenumbers`` says it is a *valid* number, not merely one of a
plausible length: a mobile number with a digit missing must be refused here, not discovered
when an SOS call fails.
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["national_digits", "normalize_phone", "takes_sms"]

#: Mainland numbers are written without a country code more often than with one.
DEFAULT_REGION = "CN"

# "+86 023 7600 0000" / "+8602376000000" / "0086 (0) 23 ...": the domestic trunk prefix 0
# kept behind the country code. Current phonenumbers metadata drops it by itself, but older
# releases (still allowed by our dependency range) keep it and then judge the number
# invalid, so it is removed here rather than relying on the metadata version.
_TRUNK_ZERO_AFTER_CC = re.compile(r"^(?:\+|00)[\s.-]*86[\s.-]*\(?0\)?(?=[\s.()-]*[1-9])")

# Numbers a provider refuses to text (Twilio 21614 "not a mobile number", Aliyun
# isv.MOBILE_NUMBER_ILLEGAL). Only the types that certainly cannot: FIXED_LINE_OR_MOBILE
# (every US number), VOIP and UNKNOWN may well take an SMS, and on doubt a message is sent.
_NO_SMS = frozenset(
    {
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.TOLL_FREE,
        phonenumbers.PhoneNumberType.PREMIUM_RATE,
        phonenumbers.PhoneNumberType.SHARED_COST,
        phonenumbers.PhoneNumberType.UAN,
        phonenumbers.PhoneNumberType.VOICEMAIL,
    }
)

_REASON_TEXT = {
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: (
        "is a local number without its area code (write e.g. 023-76000000)"
    ),
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "has an unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "is too short",
    phonenumbers.ValidationResult.TOO_LONG: "is too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "has the wrong number of digits",
}


def normalize_phone(value: str) -> str:
    """Return ``value`` as an E.164 number (``+86…``), reading it as a Chinese number by default.

    Accepts mobiles and landlines in the usual spellings: ``13700000001``,
    ``137 0000 0001``, ``+86 137-0000-0001``, ``008613700000001``, ``023-76000000`` and
    ``+8602376000000`` (a landline keeping its trunk 0 after ``+86``).

    Raises:
        ValueError: ``value`` is not a valid phone number, or carries an extension (an
            extension cannot be dialled by an SMS or voice provider). The message is meant
            for operators and quotes the value.
    """
    text = value.strip()
    if not text:
        raise ValueError("phone number is empty")
    text = _TRUNK_ZERO_AFTER_CC.sub("+86", text)
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not a phone number") from exc
    if number.extension:
        raise ValueError(f"{value!r} has an extension, which cannot be dialled for alerts")
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        detail = _REASON_TEXT.get(reason, "is not a possible number")
        raise ValueError(f"phone number {value!r} {detail}")
    if not phonenumbers.is_valid_number(number):
        raise ValueError(
            f"{value!r} is not a valid phone number: check the digits "
            "(a landline needs its area code, e.g. 023-76000000)"
        )
    result: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return result


def takes_sms(e164: str) -> bool:
    """Whether ``e164`` (a number as the register holds it) can receive an SMS.

    False only for numbers that certainly cannot: a landline (``+862376000000``), a 400/800
    service number and the like; such a number is called instead of texted. True for mobiles
    and for anything ``phonenumbers`` cannot tell apart from one (a US number, a number it
    does not know): a message is never withheld on doubt.
    """
    number = _parsed(e164)
    return number is None or phonenumbers.number_type(number) not in _NO_SMS


def national_digits(e164: str) -> str:
    """``e164`` as dialled inside its country, digits only: a mainland landline keeps its
    trunk 0 (``+862376000000`` -> ``02376000000``, ``+861012345678`` -> ``01012345678``), a
    mobile has none (``+8613700000001`` -> ``13700000001``). A value ``phonenumbers`` cannot
    read comes back without its ``+``."""
    number = _parsed(e164)
    if number is None:
        return _TRUNK_ZERO_AFTER_CC.sub("+86", e164.strip()).lstrip("+")
    national: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return re.sub(r"\D", "", national)


def _parsed(e164: str) -> phonenumbers.PhoneNumber | None:
    """A stored number as ``phonenumbers`` reads it (a trunk 0 after +86 dropped), or None."""
    try:
        return phonenumbers.parse(_TRUNK_ZERO_AFTER_CC.sub("+86", e164.strip()), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
