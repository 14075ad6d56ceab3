"""Reading Aliyun's receipt pushes: the path token and the body, before anything is recorded."""

from __future__ import annotations

import pytest

from alerts.channels.aliyun.webhooks import ReceiptPushError, receipt_items, token_matches


def test_only_the_configured_token_is_accepted() -> None:
    assert token_matches("s3cret", "s3cret")
    assert not token_matches("s3cre", "s3cret")
    assert not token_matches("", None), "without a configured token nothing is accepted"
    assert not token_matches("", "")


def test_a_push_is_an_array_of_receipts_or_one_receipt() -> None:
    assert receipt_items(b'[{"out_id": "1"}, {"out_id": "2"}]') == [
        {"out_id": "1"},
        {"out_id": "2"},
    ]
    assert receipt_items('{"content": "１"}'.encode()) == [{"content": "１"}]
    assert receipt_items(b"[]") == []


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"not json", "not JSON"), (b'"text"', "array"), (b"[1, 2]", "array"), (b"{", "not JSON")],
)
def test_anything_else_is_refused_with_a_reason(body: bytes, why: str) -> None:
    with pytest.raises(ReceiptPushError, match=why):
        receipt_items(body)
