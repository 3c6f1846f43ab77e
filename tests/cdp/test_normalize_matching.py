"""Matching normalisation: Gmail rules, ambiguous phones, names, addresses, dates (pure)."""

from __future__ import annotations

import pytest

from cdp.normalize import (
    IdentifierTypes,
    email_match_key,
    identifier_key,
    is_role_mailbox,
    normalize_address,
    normalize_date,
    normalize_name,
    normalize_phone,
)


def test_gmail_ignores_dots_and_plus_tags_and_googlemail_is_gmail():
    assert email_match_key("ann.lee+shop@gmail.com") == "annlee@gmail.com"
    assert email_match_key("a.n.n.lee@googlemail.com") == "annlee@gmail.com"
    key = identifier_key(IdentifierTypes.EMAIL, "Ann.Lee+Promo@GoogleMail.com").key
    assert key == "annlee@gmail.com"


def test_other_domains_keep_dots_and_plus_tags():
    assert email_match_key("ann.lee+shop@example.com") == "ann.lee+shop@example.com"
    assert identifier_key(IdentifierTypes.EMAIL, "ann.lee@gmx.de").key == "ann.lee@gmx.de"
    assert identifier_key(IdentifierTypes.EMAIL, "annlee@gmx.de").key != "ann.lee@gmx.de"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("info@acme.com", True),
        ("support+de@acme.com", True),
        ("no-reply@acme.com", True),
        ("hello@acme.com", True),
        ("ann.info@acme.com", False),
        ("sales.person@acme.com", False),
    ],
)
def test_role_mailboxes(address, expected):
    assert is_role_mailbox(address) is expected


def test_national_number_starting_with_its_country_code_is_flagged_not_guessed():
    result = normalize_phone("49 30 1234567", "DE")
    assert result.key is None
    assert result.flag == "ambiguous: a national number that starts with its country code"
    # With its + it is plain, and a NANP trunk 1 is no ambiguity.
    assert normalize_phone("+49 30 1234567", "DE").key == "+49301234567"
    assert normalize_phone("1 202 555 0143", "US").key == "+12025550143"
    assert normalize_phone("030 1234567", "DE").key == "+49301234567"


@pytest.mark.parametrize(
    ("left", "right"),
    [("Müller", "Mueller"), ("MÜLLER", "mueller"), ("Köln", "Koeln"), ("Strauß", "Strauss"),
     ("Zoë", "Zoe"), ("José", "jose"), ("O'Brien", "o brien")],
)  # fmt: skip
def test_names_share_a_form_across_case_diacritics_and_german_transliteration(left, right):
    assert normalize_name(left) == normalize_name(right)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Søren Østergaard", "soren ostergaard"), ("Łukasz Wałęsa", "lukasz walesa"),
     ("Ærø", "aero"), ("Þórður", "thordur"), ("Иван Петров", "иван петров"), ("王伟", "王伟")],
)  # fmt: skip
def test_names_keep_every_letter(raw, expected):
    assert normalize_name(raw) == expected


def test_transliteration_keeps_distinct_names_apart():
    assert normalize_name("Müller") == "mueller"
    assert normalize_name("Muller") == "muller"
    assert normalize_name("Köln") == "koeln"


@pytest.mark.parametrize(
    ("left", "right"),
    [("Hauptstr. 5", "Hauptstraße 5"), ("HAUPTSTRASSE 5", "Hauptstr 5"),
     ("12 Kent St", "12 kent street"), ("3 Elm Rd.", "3 elm road"),
     ("Kölner Str. 9", "Koelner Strasse 9")],
)  # fmt: skip
def test_addresses_spell_out_street_types(left, right):
    assert normalize_address(left) == normalize_address(right)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1990-03-04", "1990-03-04"), ("19900304", "1990-03-04"), ("04.03.1990", "1990-03-04"),
     ("25/12/1990", "1990-12-25"), ("12/25/1990", "1990-12-25"), ("03/04/1990", ""),
     ("1990-02-30", ""), ("", ""), ("soon", ""), ("1990-03-04T10:00:00Z", "1990-03-04")],
)  # fmt: skip
def test_dates_are_read_only_without_guessing(raw, expected):
    assert normalize_date(raw) == expected
