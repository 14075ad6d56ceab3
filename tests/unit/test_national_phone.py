"""The phone number an SMS shows its reader (``{phone}`` in the alert texts)."""

from __future__ import annotations

import pytest

from alerts.recipients import national_phone


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("+8613700000001", "13700000001"),
        ("+862376000000", "02376000000"),
        # Beijing's area code begins with 1 too: read as a mobile it lost its trunk 0.
        ("+861012345678", "01012345678"),
        ("+14155550100", "+14155550100"),
        (None, "无"),
    ],
)
def test_a_number_is_shown_as_it_is_dialled_at_home(stored: str | None, shown: str) -> None:
    assert national_phone(stored) == shown
