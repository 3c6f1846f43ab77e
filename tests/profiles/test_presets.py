"""Presets for real export formats: Mailchimp (three files), HubSpot, Salesforce; suggestions."""

from __future__ import annotations

import csv
import io

import pytest

from profiles.models import Identity, Profile, SourceRecord
from profiles.services.mapping import FieldSpec, default_specs, suggest_specs

MAILCHIMP_COMMON = [
    "Email Address", "First Name", "Last Name", "MEMBER_RATING", "OPTIN_TIME", "OPTIN_IP",
    "CONFIRM_TIME", "CONFIRM_IP", "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE", "CC",
    "REGION", "LAST_CHANGED", "LEID", "EUID", "NOTES",
]  # fmt: skip
UNSUB = ["UNSUB_TIME", "UNSUB_CAMPAIGN_TITLE", "UNSUB_CAMPAIGN_ID", "UNSUB_REASON",
         "UNSUB_REASON_OTHER"]  # fmt: skip
CLEAN = ["CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID"]


def mailchimp_file(extra_columns: list[str], rows: list[dict]) -> str:
    header = MAILCHIMP_COMMON + extra_columns + ["TAGS"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return out.getvalue()


def member(email: str, **values: str) -> dict:
    base = {
        "Email Address": email,
        "First Name": "Lena",
        "Last Name": "Vogt",
        "MEMBER_RATING": "2",
        "OPTIN_TIME": "2023-03-14 09:26:53",
        "OPTIN_IP": "203.0.113.7",
        "CONFIRM_TIME": "2023-03-14 09:27:10",
        "CONFIRM_IP": "203.0.113.7",
        "LATITUDE": "52.5200000",
        "LONGITUDE": "13.4050000",
        "GMTOFF": "1",
        "DSTOFF": "2",
        "TIMEZONE": "Europe/Berlin",
        "CC": "DE",
        "REGION": "BE",
        "LAST_CHANGED": "2024-01-02 10:00:00",
        "LEID": "123456789",
        "EUID": "a1b2c3d4e5",
        "NOTES": "",
        "TAGS": '"VIP","Newsletter"',
    }
    base.update(values)
    return base


@pytest.fixture
def mailchimp(make_source):
    return make_source(name="mailchimp", preset="mailchimp")


def test_mailchimp_subscribed_export(mailchimp, import_csv):
    run = import_csv(
        mailchimp, mailchimp_file([], [member("Lena.Vogt@Example.DE")]), "subscribed.csv"
    )

    assert (run.status, run.created_count, run.rejected_count) == ("succeeded", 1, 0)
    record = SourceRecord.objects.get()
    assert record.external_key == "lena.vogt@example.de"
    assert record.attributes == {
        "email": "lena.vogt@example.de",
        "first_name": "Lena",
        "last_name": "Vogt",
        "email_opt_in_at": "2023-03-14 09:26:53",
        "country": "DE",
        "state": "BE",
        "tags": '"VIP","Newsletter"',
        "email_subscription_status": "subscribed",
    }
    assert record.traits["optin_ip"] == "203.0.113.7"
    assert record.traits["confirm_time"] == "2023-03-14 09:27:10"
    assert record.traits["member_rating"] == "2"
    assert record.traits["mailchimp_leid"] == "123456789"


def test_mailchimp_unsubscribed_export_keeps_the_status_and_reason(mailchimp, import_csv):
    row = member(
        "ann@example.com",
        UNSUB_TIME="2024-02-01 08:00:00",
        UNSUB_CAMPAIGN_TITLE="Spring sale",
        UNSUB_CAMPAIGN_ID="c-77",
        UNSUB_REASON="NORMAL",
        UNSUB_REASON_OTHER="",
    )

    import_csv(mailchimp, mailchimp_file(UNSUB, [row]), "unsubscribed.csv")

    record = SourceRecord.objects.get()
    assert record.attributes["email_subscription_status"] == "unsubscribed"
    assert record.attributes["email_opt_out_at"] == "2024-02-01 08:00:00"
    assert record.traits["unsub_reason"] == "NORMAL"
    assert record.traits["unsub_campaign_title"] == "Spring sale"


def test_mailchimp_cleaned_export_and_a_later_status_change(mailchimp, import_csv):
    import_csv(mailchimp, mailchimp_file([], [member("bob@example.com")]), "subscribed.csv")
    row = member("bob@example.com", CLEAN_TIME="2024-05-05 05:05:05", CLEAN_CAMPAIGN_ID="c-9")

    run = import_csv(mailchimp, mailchimp_file(CLEAN, [row]), "cleaned.csv")

    assert (run.created_count, run.updated_count) == (0, 1)
    record = SourceRecord.objects.get()
    assert record.attributes["email_subscription_status"] == "cleaned"
    assert record.attributes["email_cleaned_at"] == "2024-05-05 05:05:05"
    assert Profile.objects.get().attributes["email_subscription_status"] == "cleaned"


def test_hubspot_contacts_export(make_source, import_csv):
    source = make_source(name="hubspot", preset="hubspot")
    content = (
        "Record ID,First Name,Last Name,Email,Phone Number,Mobile Phone Number,Street Address,"
        "City,State/Region,Postal Code,Country/Region,Company Name,Job Title,Lifecycle Stage,"
        "Create Date,Marketing contact status\n"
        "5101,Maria,Garcia,maria@example.com,+1 202-555-0143,(202) 555-0199,1 Main St,"
        "Boston,MA,02110,United States,Acme,CTO,customer,2023-05-01 10:00,Marketing contact\n"
    )

    run = import_csv(source, content)

    assert (run.status, run.rejected_count) == ("succeeded", 0)
    record = SourceRecord.objects.get()
    assert record.external_key == "5101"
    assert record.attributes["postcode"] == "02110"
    assert record.attributes["country"] == "US"
    assert record.attributes["phone"] == "+12025550143"
    assert record.attributes["signed_up_at"] == "2023-05-01"
    assert record.traits["lifecycle_stage"] == "customer"
    assert record.traits["marketing_contact_status"] == "Marketing contact"
    assert sorted(Identity.objects.filter(type="phone").values_list("key", flat=True)) == [
        "+12025550143",
        "+12025550199",
    ]


def test_salesforce_contacts_export_keeps_email_opt_out(make_source, import_csv):
    source = make_source(name="salesforce", preset="salesforce")
    content = (
        "Contact ID,First Name,Last Name,Email,Phone,Mobile Phone,Mailing Street,Mailing City,"
        "Mailing State/Province,Mailing Zip/Postal Code,Mailing Country,Birthdate,Email Opt Out,"
        "Account Name,Title\n"
        "0035g00000AbCdE,Tom,Jones,tom@example.co.uk,020 7946 0958,,1 High St,London,,"
        "SW1A 1AA,United Kingdom,31/01/1980,1,Globex,Buyer\n"
        "0035g00000XyZaB,Ann,Lee,ann@example.co.uk,,,,,,,GB,05/02/1990,0,Globex,\n"
    )

    run = import_csv(source, content)

    assert (run.status, run.rejected_count, run.date_orders) == (
        "succeeded",
        0,
        {"Birthdate": "dmy"},
    )
    tom = SourceRecord.objects.get(external_key="0035g00000AbCdE")
    assert tom.attributes["email_opt_out"] is True
    assert tom.attributes["birth_date"] == "1980-01-31"
    assert tom.attributes["phone"] == "+442079460958"
    assert tom.attributes["company"] == "Globex"
    ann = SourceRecord.objects.get(external_key="0035g00000XyZaB")
    assert ann.attributes["email_opt_out"] is False
    assert ann.attributes["birth_date"] == "1990-02-05"


def test_suggestions_match_headers_by_similarity():
    headers = ["E-Mail-Adresse", "Vorname", "Surname", "Zip Code", "Mobile", "Lieblingsfarbe"]

    suggestions = {s.spec.column: s for s in suggest_specs(headers)}

    assert suggestions["E-Mail-Adresse"].spec == FieldSpec("E-Mail-Adresse", "email")
    assert suggestions["Vorname"].spec.target == "first_name"
    assert suggestions["Surname"].spec.target == "last_name"
    assert suggestions["Zip Code"].spec.target == "postcode"
    assert suggestions["Mobile"].spec == FieldSpec("Mobile", "trait:mobile", identifier="phone")
    assert suggestions["Lieblingsfarbe"].spec.target == "trait:lieblingsfarbe"
    assert suggestions["Lieblingsfarbe"].score == 0


def test_suggestion_reason_tells_a_known_name_from_the_attributes_own_name():
    headers = ["Geburtsdatum", "First Name", "email", "Umsatz gesamt", "Anzahl Bestellungen"]

    suggestions = {
        s.spec.column: (s.spec.target, s.score, s.reason) for s in suggest_specs(headers)
    }

    assert suggestions == {
        "Geburtsdatum": ("birth_date", 100, "known name 'geburtsdatum'"),
        "First Name": ("first_name", 100, "same name"),
        "email": ("email", 100, "same name"),
        "Umsatz gesamt": ("total_spent", 100, "known name 'umsatz gesamt'"),
        "Anzahl Bestellungen": ("total_orders", 100, "known name 'anzahl bestellungen'"),
    }


def test_suggestion_tolerates_typos_and_gives_each_attribute_one_column():
    suggestions = suggest_specs(["Frist Name", "Emial", "email"])

    by_column = {s.spec.column: (s.spec.target, s.score) for s in suggestions}
    assert by_column["Frist Name"][0] == "first_name"
    assert 80 <= by_column["Frist Name"][1] < 100
    assert by_column["email"] == ("email", 100)
    assert by_column["Emial"][0] == "trait:emial"


def test_suggestion_uses_the_preset_and_its_file_status():
    suggestions = suggest_specs(["Email Address", "UNSUB_TIME", "Favourite"], "mailchimp")

    assert [(s.spec.column, s.spec.target, s.reason) for s in suggestions] == [
        ("Email Address", "email", "mailchimp preset"),
        ("UNSUB_TIME", "email_opt_out_at", "mailchimp preset"),
        ("Favourite", "trait:favourite", "no similar attribute: kept as a custom trait"),
        ("=unsubscribed", "email_subscription_status", "mailchimp preset: fixed for this file"),
    ]


def test_default_specs_for_mailchimp_add_the_status_of_the_file():
    specs = default_specs(["Email Address", "CLEAN_TIME"], "mailchimp")

    assert specs[-1] == FieldSpec("=cleaned", "email_subscription_status")


def test_attributes_taken_by_a_saved_mapping_are_not_suggested_again():
    suggestions = {
        s.spec.column: s.spec for s in suggest_specs(["Mail", "E-Mail"], taken=frozenset({"email"}))
    }

    assert suggestions["E-Mail"].target == "trait:e_mail"
    assert suggestions["E-Mail"].identifier == "email"
