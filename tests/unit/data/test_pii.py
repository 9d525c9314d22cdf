"""Personal identifiers in free text: what is masked, and what looks alike but is not."""

from __future__ import annotations

from datetime import date
from typing import get_args

import pytest

from canonml.data.pii import (
    PII_KINDS,
    Match,
    cn_id_valid,
    find_pii,
    iban_valid,
    luhn_valid,
    mask_column,
    mask_text,
)
from canonml.spec.anonymize import PiiKind

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id(first17: str) -> str:
    """The 17 digits and their ISO 7064 MOD 11-2 check character, computed here."""
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def wrong_check(number: str) -> str:
    return number[:17] + ("1" if number[17] != "1" else "2")


VALID_ID = cn_id("11010519900307123")  # Beijing, born 1990-03-07
# A sequence whose check character is X, written with a lower-case x.
X_ID = next(i for i in (cn_id(f"44030419851231{s:03d}") for s in range(1000)) if i[-1] == "X")
IMPOSSIBLE_DATE = cn_id("11010519990231123")  # 31 February, with a correct check character

CASES = [
    # email
    ("plus-addressing, subdomains", "write to ann+news@mail.cs.example.edu.", "write to [EMAIL]."),
    ("email in Chinese", "联系zhang.san@example.com.cn谢谢", "联系[EMAIL]谢谢"),
    ("email beats phone", "邮箱13812345678@qq.com", "邮箱[EMAIL]"),
    ("no top-level domain", "root@localhost is local", "root@localhost is local"),
    ("a handle", "follow @canonml and a @ b.com", "follow @canonml and a @ b.com"),
    # phone
    ("CN mobile in Chinese", "电话13812345678联系", "电话[PHONE]联系"),
    ("CN mobile +86 grouped", "call +86 138 1234 5678 now", "call [PHONE] now"),
    ("CN mobile +86 joined", "手机+8613912345678。", "手机[PHONE]。"),
    ("CN mobile 86-dashes", "86-138-1234-5678", "[PHONE]"),
    ("two mobiles with comma", "13812345678,13987654321", "[PHONE],[PHONE]"),
    ("international", "London +44 20 7946 0958, NY +1-555-123-4567", "London [PHONE], NY [PHONE]"),
    ("12-digit order number", "订单号138123456789已发货", "订单号138123456789已发货"),
    ("second digit 2", "编号12812345678", "编号12812345678"),
    ("after a letter", "SKU13812345678", "SKU13812345678"),
    ("in a decimal", "比值3.13812345678", "比值3.13812345678"),
    ("plus and too few digits", "+12 3456", "+12 3456"),
    # iban
    ("IBAN GB grouped", "IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN [IBAN] please"),
    ("IBAN DE grouped", "DE89 3704 0044 0532 0130 00", "[IBAN]"),
    ("IBAN compact in Chinese", "账户DE89370400440532013000。", "账户[IBAN]。"),
    ("IBAN wrong check", "GB83 WEST 1234 5698 7654 32", "GB83 WEST 1234 5698 7654 32"),
    ("IBAN changed digit", "DE89370400440532013001", "DE89370400440532013001"),
    # credit_card
    ("card with spaces", "Visa 4111 1111 1111 1111 exp", "Visa [CARD] exp"),
    ("card with dashes", "卡号5500-0000-0000-0004。", "卡号[CARD]。"),
    ("card joined", "4012888888881881", "[CARD]"),
    ("amex 4-6-5", "3782 822463 10005", "[CARD]"),
    ("card then a year", "4111 1111 1111 1111 2027", "[CARD] 2027"),
    ("card Luhn-invalid", "4111 1111 1111 1112", "4111 1111 1111 1112"),
    ("16 digits Luhn-invalid", "4111111111111112", "4111111111111112"),
    ("mixed separators", "4111 1111-1111 1111", "4111 1111-1111 1111"),
    # cn_id
    ("cn_id in Chinese", f"身份证号{VALID_ID}，", "身份证号[CN_ID]，"),
    ("cn_id lower-case x", f"ID: {X_ID.lower()}", "ID: [CN_ID]"),
    ("cn_id upper-case X", X_ID, "[CN_ID]"),
    ("cn_id wrong check digit", wrong_check(VALID_ID), wrong_check(VALID_ID)),
    ("cn_id 19990231", IMPOSSIBLE_DATE, IMPOSSIBLE_DATE),
    ("cn_id in a longer run", f"{VALID_ID}7", f"{VALID_ID}7"),
    # nothing
    ("no PII", "这个产品很好用，推荐！v2.0.1 on 2024-01-15 12:00", None),
    ("prices and years", "价格 1,299.00 元，2023 年 12 月", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mask_text(text: str, expected: str | None) -> None:
    masked, counts = mask_text(text)
    assert masked == (text if expected is None else expected)
    assert sum(counts.values()) == masked.count("[") - text.count("[")


def test_check_characters_of_the_fixtures() -> None:
    assert VALID_ID == "110105199003071239"
    assert X_ID.endswith("X") and cn_id_valid(X_ID.lower())
    assert not cn_id_valid(wrong_check(VALID_ID))
    assert not cn_id_valid(IMPOSSIBLE_DATE)


def test_wrong_check_id_is_no_identifier_at_all() -> None:
    assert find_pii(wrong_check(VALID_ID)) == []
    assert find_pii(f"号码{IMPOSSIBLE_DATE}") == []


def test_birth_date_must_not_be_in_the_future() -> None:
    born_2010 = cn_id("11010520100101123")
    assert cn_id_valid(born_2010)
    assert not cn_id_valid(born_2010, today=date(2009, 12, 31))


@pytest.mark.parametrize(
    ("check", "value", "valid"),
    [
        (luhn_valid, "79927398713", True),
        (luhn_valid, "79927398710", False),
        (iban_valid, "GB82WEST12345698765432", True),
        (iban_valid, "GB82 WEST 1234 5698 7654 32", True),
        (iban_valid, "GB82WEST12345698765433", False),
        (iban_valid, "NO9386011117947", True),  # the shortest (15)
        (iban_valid, "GB00WEST12345698765432", False),  # check digits 00 are never issued
    ],
)
def test_checksums(check: object, value: str, valid: bool) -> None:
    assert callable(check) and check(value) is valid


def test_find_pii_positions_and_kinds() -> None:
    text = f"张三 {VALID_ID} 电话13812345678 a@b.org"
    found = find_pii(text)
    assert [m.kind for m in found] == ["cn_id", "phone", "email"]
    assert all(text[m.start : m.end] == m.text for m in found)
    assert found[1] == Match("phone", 24, 35, "13812345678")


def test_kinds_subset_and_order_given() -> None:
    text = "13812345678@qq.com 4111111111111111"
    assert mask_text(text, kinds=["phone"])[0] == "[PHONE]@qq.com 4111111111111111"
    assert mask_text(text, kinds=["phone", "email"])[0] == "[EMAIL] 4111111111111111"
    with pytest.raises(ValueError, match="unknown PII kind 'ssn'"):
        mask_text(text, kinds=["ssn"])


def test_mask_column_counts_every_requested_kind() -> None:
    cells = ["a@b.org or c@d.net", "电话13812345678", "nothing", "a@b.org or c@d.net"]
    masked, counts = mask_column(cells, kinds=("email", "phone", "cn_id"))
    assert masked == ["[EMAIL] or [EMAIL]", "电话[PHONE]", "nothing", "[EMAIL] or [EMAIL]"]
    assert counts == {"email": 4, "cn_id": 0, "phone": 1}


def test_spec_kinds_match_the_detector() -> None:
    assert set(get_args(PiiKind)) == set(PII_KINDS)
