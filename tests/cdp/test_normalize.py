"""Normalisation of identifiers: pure functions, no database."""

from __future__ import annotations

import unicodedata

import pytest

from cdp.normalize import (
    IdentifierKey,
    IdentifierTypes,
    InvalidValue,
    clean_text,
    identifier_key,
    is_placeholder,
    normalize_email,
    normalize_id,
    normalize_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ann  ", "Ann"),
        ("\u00a0Ann\u00a0", "Ann"),
        ("\ufeffAnn", "Ann"),
        ("An\u200bn", "Ann"),
        ("A\u200dn\u2060n\u202f", "Ann"),
        (None, ""),
        (42, "42"),
    ],
)
def test_clean_text_strips_whitespace_and_invisible_characters(raw, expected):
    assert clean_text(raw) == expected


def test_clean_text_composes_to_nfc():
    decomposed = "Jo\u0308rg"  # o + combining diaeresis
    assert clean_text(decomposed) == "J\u00f6rg"
    assert unicodedata.is_normalized("NFC", clean_text(decomposed))


@pytest.mark.parametrize(
    "raw",
    [
        "Lena.Vogt@Example.DE",
        " lena.vogt@example.de\u00a0",
        "\u200blena.vogt@example.de",
        "LENA.VOGT@EXAMPLE.DE\t",
        "\ufefflena.vogt@example.de",
    ],
)
def test_normalize_email_spellings_of_one_address_share_a_key(raw):
    assert normalize_email(raw) == "lena.vogt@example.de"


def test_normalize_email_zero_width_inside_the_address_is_removed():
    assert normalize_email("le\u200bna.vo\u200cgt@exam\u200dple.de") == "lena.vogt@example.de"


def test_normalize_email_nfc_and_nfd_local_parts_match():
    composed = normalize_email("j\u00f6rg@example.de")
    decomposed = normalize_email("jo\u0308rg@example.de")
    assert composed == decomposed == "j\u00f6rg@example.de"


def test_normalize_email_unicode_and_idna_domain_spellings_match():
    assert normalize_email("info@B\u00fccher.example") == "info@xn--bcher-kva.example"
    assert normalize_email("INFO@xn--bcher-kva.example") == "info@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("lena.vogt@@example.de", "invalid characters: '@'"),
        ("lena.vogt(at)example.de", "must have an @-sign"),
        ("lena.vogt@example", "should have a period"),
        ("lena vogt@example.de", "before the @-sign"),
    ],
)
def test_normalize_email_rejects_malformed_addresses_with_a_reason(raw, reason):
    with pytest.raises(InvalidValue) as excinfo:
        normalize_email(raw)
    assert str(excinfo.value).startswith("not a valid e-mail address: ")
    assert reason in str(excinfo.value)


@pytest.mark.parametrize("raw", ["", "   ", "\u00a0\u200b", None])
def test_normalize_email_empty_is_an_error(raw):
    with pytest.raises(InvalidValue, match="e-mail is empty"):
        normalize_email(raw)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("(202) 555-0143", "US"),
        ("202.555.0143", "us"),
        ("+1 202-555-0143", None),
        ("+1 (202) 555 0143", "DE"),
        ("\u00a0+12025550143\u200b", None),
    ],
)
def test_normalize_phone_national_and_international_spellings_share_an_e164_key(raw, region):
    assert normalize_phone(raw, region) == IdentifierKey("+12025550143", "")


def test_normalize_phone_reads_a_national_number_by_its_region():
    assert normalize_phone("030 1234567", "DE").key == "+49301234567"
    assert normalize_phone("+49 30 1234567", "US").key == "+49301234567"


def test_normalize_phone_never_guesses_a_country():
    result = normalize_phone("(202) 555-0143", None)
    assert result.key is None
    assert result.flag == "no country to read a national number"


def test_normalize_phone_with_00_prefix_needs_no_region():
    assert normalize_phone("0049 30 1234567", None).key == "+49301234567"


@pytest.mark.parametrize(
    "raw", ["2.02555E+09", "2.02555e+09", "2E9", "1.2025550143E10", "4,91701E+12", "2,02555e+09"]
)
def test_normalize_phone_flags_excel_scientific_notation(raw):
    result = normalize_phone(raw, "US")
    assert result.key is None
    assert result.flag == "scientific notation (a spreadsheet mangled this number)"


@pytest.mark.parametrize(
    ("raw", "flag_start"),
    [
        ("call me", "not a phone number: "),
        ("12345", "not a valid number for its country"),
        ("+1 (000) 000-0000", "not a valid number for its country"),
    ],
)
def test_normalize_phone_unparseable_numbers_have_no_key_and_a_flag(raw, flag_start):
    result = normalize_phone(raw, "US")
    assert result.key is None
    assert result.flag.startswith(flag_start)


@pytest.mark.parametrize(
    "raw",
    ["+49 30 1234567 ext. 12", "+49 30 1234567 x34", "030 1234567-0;ext=7", "+49301234567#12"],
)
def test_normalize_phone_with_an_extension_is_a_shared_line_without_a_key(raw):
    # Two colleagues on one switchboard would otherwise share the key +49301234567.
    assert normalize_phone(raw, "DE") == IdentifierKey(
        None, "has an extension (a shared office line)"
    )


def test_normalize_phone_empty():
    assert normalize_phone(" \u00a0", "US") == IdentifierKey(None, "empty")


def test_normalize_id_trims_and_keeps_case():
    assert normalize_id("  User-ABC\u00a0") == "User-ABC"
    assert normalize_id("\u200bu1") == "u1"


@pytest.mark.parametrize(
    "key",
    ["test@test.com", "TEST@test.com", "n/a", "None", "unknown", "0000000000", "+11111111111"],
)
def test_is_placeholder_true_for_configured_values(key):
    assert is_placeholder(key) is True


@pytest.mark.parametrize("key", ["lena.vogt@example.de", "+12025550143", "u-17", "+4915100000001"])
def test_is_placeholder_false_for_real_values(key):
    assert is_placeholder(key) is False


def test_is_placeholder_catches_a_nanp_number_of_one_repeated_digit():
    assert is_placeholder("+17777777777") is True
    assert is_placeholder("+17777777778") is False


def test_is_placeholder_follows_settings(settings):
    settings.CDP_PLACEHOLDER_VALUES = ["nobody@example.org"]
    assert is_placeholder("nobody@example.org") is True
    assert is_placeholder("test@test.com") is False


def test_identifier_key_email_placeholder_has_no_key():
    assert identifier_key(IdentifierTypes.EMAIL, " Test@Test.com ") == IdentifierKey(
        None, "placeholder value"
    )


def test_identifier_key_email_valid():
    assert identifier_key(IdentifierTypes.EMAIL, "Lena.Vogt@Example.DE") == IdentifierKey(
        "lena.vogt@example.de"
    )


def test_identifier_key_email_invalid_raises():
    with pytest.raises(InvalidValue):
        identifier_key(IdentifierTypes.EMAIL, "not-an-address")


def test_identifier_key_phone_uses_region_and_flags_unreadable():
    assert identifier_key(IdentifierTypes.PHONE, "(202) 555-0143", region="US").key == (
        "+12025550143"
    )
    unreadable = identifier_key(IdentifierTypes.PHONE, "2.02555E+09", region="US")
    assert unreadable.key is None
    assert "scientific notation" in unreadable.flag


def test_identifier_key_ids_never_raise():
    assert identifier_key(IdentifierTypes.USER_ID, " u-1 ") == IdentifierKey("u-1")
    assert identifier_key(IdentifierTypes.CUSTOMER_ID, "") == IdentifierKey(None, "empty")
    assert identifier_key(IdentifierTypes.ANONYMOUS_ID, "anonymous") == IdentifierKey(
        None, "placeholder value"
    )
