"""Mapping a source row to attributes, traits and identities: pure functions, no database."""

from __future__ import annotations

import pytest

from profiles.constants import Transform
from profiles.services.mapping import (
    FieldSpec,
    MappedIdentity,
    MappedRecord,
    RowError,
    apply_transform,
    convert_value,
    default_specs,
    map_row,
    mapping_conflicts,
    number_evidence,
    number_locale_from_evidence,
    parse_iso_date,
    parse_number,
    stable_hash,
    trait_name,
)
from tests.conftest import SHOPIFY_HEADER

SHOPIFY_COLUMNS = SHOPIFY_HEADER.split(",")
CANONICAL_COLUMNS = ["first_name", "last_name", "email", "phone", "country", "Loyalty Tier"]


def shopify(**values: str) -> dict[str, str]:
    row = dict.fromkeys(SHOPIFY_COLUMNS, "")
    row.update(values)
    return row


def canonical(**values: str) -> dict[str, str]:
    row = dict.fromkeys(CANONICAL_COLUMNS, "")
    row.update(values)
    return row


# --- default specs -------------------------------------------------------------------------


def test_default_specs_canonical_headers_map_by_name_and_others_become_traits():
    specs = default_specs(["first_name", "Last Name", "email", "Phone", "Loyalty Tier", "E-Mail"])
    assert [(s.column, s.target) for s in specs] == [
        ("first_name", "first_name"),
        ("Last Name", "last_name"),
        ("email", "email"),
        ("Phone", "phone"),
        ("Loyalty Tier", "trait:loyalty_tier"),
        ("E-Mail", "trait:e_mail"),
    ]
    assert [s.is_key for s in specs] == [False] * 6


def test_default_specs_customer_id_column_is_the_key():
    specs = default_specs(["customer_id", "email"])
    assert [(s.target, s.is_key) for s in specs] == [("customer_id", True), ("email", False)]


def test_default_specs_shopify_preset_uses_its_columns_and_keeps_unknown_ones_as_traits():
    specs = {s.column: s for s in default_specs([*SHOPIFY_COLUMNS, "Favourite Colour"], "shopify")}
    assert specs["Email"] == FieldSpec("Email", "email", Transform.NONE, "", True)
    assert specs["Phone"].target == "phone"
    assert specs["Phone"].transform == Transform.STRIP_APOSTROPHE
    assert specs["Default Address Phone"].identifier == "phone"
    assert specs["Default Address Country Code"].target == "country"
    assert specs["Favourite Colour"] == FieldSpec("Favourite Colour", "trait:favourite_colour")


def test_default_specs_unknown_preset_is_an_error():
    known = "hubspot, mailchimp, salesforce, shopify"
    with pytest.raises(ValueError, match=f"Unknown preset 'magento'; known: {known}."):
        default_specs(["Email"], "magento")


@pytest.mark.parametrize(
    ("header", "name"),
    [(" Loyalty  Tier ", "loyalty_tier"), ("E-Mail", "e_mail"), ("\ufeffVIP", "vip")],
)
def test_trait_name(header, name):
    assert trait_name(header) == name


# --- transforms and value conversion ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "transform", "expected"),
    [
        ("MiXed", Transform.LOWER, "mixed"),
        ("dc", Transform.UPPER, "DC"),
        ("anna maria", Transform.TITLE, "Anna Maria"),
        ("'02134", Transform.STRIP_APOSTROPHE, "02134"),
        ("02134", Transform.STRIP_APOSTROPHE, "02134"),
        ("yes", Transform.BOOLEAN, True),
        ("Nein", Transform.BOOLEAN, False),
        ("unsubscribed", Transform.BOOLEAN_INVERTED, True),
        ("as is", Transform.NONE, "as is"),
    ],
)
def test_apply_transform(value, transform, expected):
    assert apply_transform(value, transform) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", 12.5),
        ("-3", -3.0),
        (".5", 0.5),
        ("1\u00a0000", 1000.0),
        ("1,234.50", 1234.5),
        ("1,234", 1234.0),
        ("12,345,678.9", 12345678.9),
        ("1.234", 1.234),
    ],
)
def test_parse_number_reads_a_decimal_point_and_comma_thousands(text, expected):
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.234,56", 1234.56), ("12,5", 12.5), ("1.234", 1234.0), ("1.234.567", 1234567.0)],
)
def test_parse_number_reads_a_decimal_comma_and_dot_thousands_in_de(text, expected):
    assert parse_number(text, "de") == expected


@pytest.mark.parametrize("text", ["12,5", "1.234,50", "12.5.1", "1,23.4", "12,34", "abc"])
def test_parse_number_never_guesses_separators(text):
    with pytest.raises(ValueError, match="is not a number"):
        parse_number(text)


@pytest.mark.parametrize(
    ("values", "delimiter", "expected"),
    [
        (["1.234,56", "12,5", "3"], ";", "de"),  # decimal comma shown
        (["1,234"], ";", "de"),  # semicolon file: the comma is a decimal comma
        (["1.234"], ";", "de"),  # semicolon file: a dot thousands separator
        (["1.234.567", "3"], "\t", "de"),  # several dots: thousands separators
        (["12.5", "1.234"], ";", "en"),  # a decimal point shown
        (["1,234"], ",", "en"),  # comma file: a thousands separator
        (["1,234.50", "10.00"], ",", "en"),  # Shopify
        (["1.234,56", "10.00"], ",", ""),  # a quoted decimal comma in a comma file: no guess
        (["12", "300"], ";", ""),  # whole numbers say nothing
        (["1.234,56", "1,234.50"], ";", "conflict"),
    ],
)
def test_number_locale_is_inferred_from_the_whole_column(values, delimiter, expected):
    evidence = {number_evidence(v) for v in values}
    assert number_locale_from_evidence(evidence, delimiter=delimiter) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2024-02-29", "2024-02-29"), ("2024-02-29T23:10:00Z", "2024-02-29")],
)
def test_parse_iso_date(text, expected):
    assert parse_iso_date(text) == expected


def test_parse_iso_date_rejects_other_formats():
    with pytest.raises(ValueError, match="not a date in ISO format"):
        parse_iso_date("29.02.2024")


def test_convert_value_by_attribute_type():
    assert convert_value("integer", "3") == 3
    assert convert_value("country", "de") == "DE"
    assert convert_value("boolean", "ja") is True
    with pytest.raises(ValueError, match="not a whole number"):
        convert_value("integer", "3.5")
    assert convert_value("country", "Germany") == "DE"  # HubSpot/Salesforce export names
    with pytest.raises(ValueError, match="not a two-letter country code"):
        convert_value("country", "Narnia")


def test_stable_hash_ignores_key_order_and_sees_values():
    assert stable_hash({"a": 1, "b": "x"}) == stable_hash({"b": "x", "a": 1})
    assert stable_hash({"a": 1, "b": "x"}) != stable_hash({"a": 1, "b": "y"})


def test_content_hash_ignores_identity_order():
    one = MappedIdentity("email", "a@example.com", "a@example.com")
    two = MappedIdentity("phone", "+12025550143", "+12025550143")
    assert (
        MappedRecord("k", {"x": 1}, {}, [one, two]).content_hash()
        == MappedRecord("k", {"x": 1}, {}, [two, one]).content_hash()
    )
    assert (
        MappedRecord("k", {"x": 1}, {}, [one]).content_hash()
        != MappedRecord("k", {"x": 2}, {}, [one]).content_hash()
    )


# --- map_row -----------------------------------------------------------------------------


def test_map_row_shopify_row_to_attributes_traits_and_identities():
    specs = default_specs(SHOPIFY_COLUMNS, "shopify")
    row = shopify(
        **{
            "First Name": "Lena",
            "Last Name": "Vogt",
            "Email": " Lena.Vogt@Example.DE\u00a0",
            "Phone": "'+1 202-555-0143",
            "Default Address Phone": "2.02555E+09",
            "Default Address Country Code": "us",
            "Default Address Province Code": "dc",
            "Default Address Zip": "'02134",
            "Accepts Email Marketing": "yes",
            "Total Spent": "12.50",
            "Total Orders": "3",
            "Tax Exempt": "no",
        }
    )
    record = map_row(row, specs)
    assert record.external_key == "lena.vogt@example.de"
    assert record.attributes == {
        "first_name": "Lena",
        "last_name": "Vogt",
        "email": "lena.vogt@example.de",
        "phone": "+12025550143",
        "country": "US",
        "state": "DC",
        "postcode": "02134",
        "accepts_email_marketing": True,
        "total_spent": 12.5,
        "total_orders": 3,
    }
    assert record.traits == {"default_address_phone": "2.02555E+09", "tax_exempt": False}
    assert sorted((i.type, i.raw_value, i.key, i.flag) for i in record.identities) == [
        ("email", "Lena.Vogt@Example.DE", "lena.vogt@example.de", ""),
        ("phone", "+1 202-555-0143", "+12025550143", ""),
        (
            "phone",
            "2.02555E+09",
            None,
            "scientific notation (a spreadsheet mangled this number)",
        ),
    ]


def test_map_row_national_phone_read_with_the_rows_country():
    specs = default_specs(CANONICAL_COLUMNS)
    record = map_row(canonical(phone="(202) 555-0143", country="US"), specs)
    assert record.attributes["phone"] == "+12025550143"
    assert record.external_key == "phone:+12025550143"


def test_map_row_national_phone_falls_back_to_the_source_region():
    specs = default_specs(CANONICAL_COLUMNS)
    record = map_row(canonical(phone="(202) 555-0143"), specs, region="US")
    assert record.identities == [MappedIdentity("phone", "(202) 555-0143", "+12025550143", "")]


def test_map_row_unparseable_phone_is_kept_raw_flagged_and_without_key():
    specs = default_specs(CANONICAL_COLUMNS)
    record = map_row(canonical(phone="call after 6", first_name="Ann"), specs, region="US")
    assert record.attributes["phone"] == "call after 6"
    assert record.identities == [
        MappedIdentity(
            "phone",
            "call after 6",
            None,
            "not a phone number: (1) The string supplied did not seem to be a phone number.",
        )
    ]
    assert record.external_key.startswith("row:")


def test_map_row_placeholder_email_never_becomes_a_key():
    specs = default_specs(SHOPIFY_COLUMNS, "shopify")
    first = map_row(shopify(Email="test@test.com", **{"First Name": "Ann"}), specs)
    second = map_row(shopify(Email="test@test.com", **{"First Name": "Bob"}), specs)
    assert first.identities == [MappedIdentity("email", "test@test.com", None, "placeholder value")]
    assert first.external_key.startswith("row:")
    assert first.external_key != second.external_key


def test_map_row_external_key_falls_back_in_order():
    specs = default_specs(["user_id", "email", "phone"])
    both = map_row({"user_id": "u-1", "email": "a@example.com", "phone": ""}, specs)
    email_only = map_row({"user_id": "", "email": "A@Example.com", "phone": ""}, specs)
    assert both.external_key == "user_id:u-1"
    assert email_only.external_key == "email:a@example.com"


def test_map_row_bad_email_is_a_row_error_naming_the_column():
    specs = default_specs(SHOPIFY_COLUMNS, "shopify")
    with pytest.raises(RowError) as excinfo:
        map_row(shopify(Email="lena.vogt@@example.de"), specs)
    assert str(excinfo.value) == (
        "Email: not a valid e-mail address: "
        "The part after the @-sign contains invalid characters: '@'."
    )


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("Total Spent", "1.234,50", "Total Spent: '1.234,50' is not a number"),
        ("Total Orders", "2.5", "Total Orders: '2.5' is not a whole number"),
        ("Accepts Email Marketing", "maybe", "Accepts Email Marketing: 'maybe' is not yes/no"),
        ("Default Address Country Code", "XYZ", "Default Address Country Code: 'XYZ' is not a"),
    ],
)
def test_map_row_bad_values_are_row_errors_naming_the_column(column, value, message):
    specs = default_specs(SHOPIFY_COLUMNS, "shopify")
    with pytest.raises(RowError) as excinfo:
        map_row(shopify(Email="a@example.com", **{column: value}), specs)
    assert str(excinfo.value).startswith(message)


def test_map_row_unknown_target_is_a_row_error():
    specs = [FieldSpec("Colour", "favourite_colour")]
    with pytest.raises(RowError, match="Colour: unknown attribute 'favourite_colour'"):
        map_row({"Colour": "red"}, specs)


def test_map_row_custom_traits_keep_their_text():
    specs = default_specs(CANONICAL_COLUMNS)
    record = map_row(canonical(email="a@example.com", **{"Loyalty Tier": " Gold "}), specs)
    assert record.traits == {"loyalty_tier": "Gold"}
    assert record.attributes == {"email": "a@example.com"}


# --- one column per target -------------------------------------------------------------------


def test_mapping_conflicts_name_every_column_of_a_shared_target():
    specs = [
        FieldSpec("E-Mail", "email"),
        FieldSpec("Telefon", "email"),
        FieldSpec("Mail 2", "email"),
        FieldSpec("Notiz", "trait:note"),
        FieldSpec("Bemerkung", "trait:note"),
        FieldSpec("Kundennummer", "customer_id", is_key=True),
        FieldSpec("Zweit-E-Mail", "trait:email_2", identifier="email"),
        FieldSpec("=subscribed", "email_subscription_status"),
    ]

    assert mapping_conflicts(specs) == [
        "E-Mail, Telefon and Mail 2 are all mapped to E-mail (email): an attribute takes one "
        "column. To keep another column as an identity too, map it to a custom trait and choose "
        "its identity type.",
        "Notiz and Bemerkung are both mapped to the custom trait note: a trait takes one "
        "column. Give each its own trait name.",
    ]


def test_a_sound_mapping_has_no_conflicts_even_with_repeated_identity_types():
    specs = [
        FieldSpec("E-Mail", "email"),
        FieldSpec("Zweit-E-Mail", "trait:email_2", identifier="email"),
        FieldSpec("Dritt-E-Mail", "trait:email_3", identifier="email"),
        FieldSpec("Nr", "customer_id", is_key=True),
        FieldSpec("Filiale", "trait:branch", is_key=True),
    ]

    assert mapping_conflicts(specs) == []
