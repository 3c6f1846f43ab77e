"""The import's fast paths give the same results as the general ones (issue 3: import speed)."""

from __future__ import annotations

import pytest

from cdp.bulk import rows_append, rows_insert_returning_ids
from cdp.normalize import clean_text, normalize_email
from profiles.models import Identity, Profile, RawRecord, SourceRecord
from profiles.services.mapping import FieldSpec, RowError, RowMapper, default_specs, map_row
from profiles.services.survivorship import (
    MOST_FREQUENT,
    MOST_RECENT,
    SOURCE_PRIORITY,
    single_record_values,
    survivor_values,
)
from tests.conftest import shopify_csv, shopify_row


@pytest.mark.parametrize(
    "value",
    [" Ann ", "\tLee\r\n", "\u00a0Zoë\u200b ", "Mu\u0308ller", "plain", "", "  "],
)
def test_clean_text_ascii_shortcut_matches_the_unicode_path(value):
    import unicodedata

    expected = unicodedata.normalize("NFC", value).strip(" \t\r\n\v\f\u00a0\u200b")
    assert clean_text(value) == expected.replace("\u200b", "")


def test_email_domains_are_checked_once_and_still_the_same():
    assert normalize_email("Ann@Bücher.example") == "ann@xn--bcher-kva.example"
    assert normalize_email("bob@BÜCHER.example") == "bob@xn--bcher-kva.example"
    for _ in range(2):  # an invalid domain is never remembered as valid
        with pytest.raises(ValueError, match="not a valid e-mail address"):
            normalize_email("ann@-bad-.example")


def test_row_mapper_maps_like_map_row_and_repeats_errors_for_repeated_values():
    specs = default_specs(
        [
            "Email",
            "Phone",
            "Default Address Country Code",
            "Total Spent",
            "Accepts Email Marketing",
        ],
        "shopify",
    )
    rows = [
        {"Email": "A@Example.com", "Phone": "(202) 555-0143",
         "Default Address Country Code": "US", "Total Spent": "1,234.50",
         "Accepts Email Marketing": "yes"},
        {"Email": "b@example.com", "Phone": "", "Default Address Country Code": "us",
         "Total Spent": "1,234.50", "Accepts Email Marketing": "no"},
        {"Email": "c@example.com", "Default Address Country Code": "Atlantis"},
        {"Email": "d@example.com", "Default Address Country Code": "Atlantis"},
    ]  # fmt: skip
    mapper = RowMapper(specs, region="DE")
    for row in rows[:2]:
        assert mapper.map(row) == map_row(row, specs, region="DE")
    first = mapper.map(rows[0])
    assert first.attributes["phone"] == "+12025550143"
    assert first.attributes["total_spent"] == 1234.5
    assert first.attributes["accepts_email_marketing"] is True
    for row in rows[2:]:
        with pytest.raises(RowError) as error:
            mapper.map(row)
        assert error.value.reason == "invalid_country"
        assert str(error.value).startswith("Default Address Country Code: 'Atlantis'")


def test_row_mapper_unknown_target_fails_only_for_rows_with_a_value():
    mapper = RowMapper([FieldSpec("Colour", "colour"), FieldSpec("email", "email")])
    assert mapper.map({"Colour": "", "email": "a@example.com"}).external_key == (
        "email:a@example.com"
    )
    with pytest.raises(RowError) as error:
        mapper.map({"Colour": "red", "email": "a@example.com"})
    assert error.value.reason == "unknown_attribute"


@pytest.mark.parametrize("strategy", [SOURCE_PRIORITY, MOST_RECENT, MOST_FREQUENT])
def test_single_record_values_are_what_survivorship_gives_for_one_record(strategy):
    attributes = {"last_name": "Lee", "first_name": "Ann", "city": "", "phone": None, "vip": False}
    record = {
        "id": 7,
        "priority": 3,
        "updated_at": "2026-12-01T00:00:00+00:00",
        "attributes": attributes,
        "observed_at": {},
    }
    assert single_record_values(7, attributes) == survivor_values([record], default=strategy)
    values, sources = single_record_values(7, attributes)
    assert list(values) == ["first_name", "last_name", "vip"]
    assert sources == {"first_name": 7, "last_name": 7, "vip": 7}


def test_a_new_person_gets_a_profile_made_from_their_record(make_source, import_csv):
    source = make_source(name="shop", preset="shopify", default_region="US")
    run = import_csv(
        source,
        shopify_csv(
            shopify_row(**{"First Name": "Ann", "Last Name": "Lee", "Email": "ann@example.com",
                           "Default Address City": "Boston", "Default Address Country Code": "US",
                           "Phone": "(202) 555-0143"}),
            shopify_row(**{"First Name": "Bob", "Email": "bob@example.com"}),
        ),
    )  # fmt: skip
    assert run.status == "succeeded", run.error
    record = RawRecord.objects.get(import_run=run, row_number=1).source_record
    profile = Profile.objects.get(pk=record.profile_id)
    assert profile.attributes == {
        k: v for k, v in sorted(record.attributes.items()) if v not in (None, "")
    }
    assert set(profile.attribute_sources.values()) == {record.pk}
    assert (profile.first_name, profile.last_name, profile.email, profile.phone) == (
        "Ann",
        "Lee",
        "ann@example.com",
        "+12025550143",
    )
    assert (profile.city, profile.country) == ("Boston", "US")
    assert set(
        Identity.objects.filter(source_record=record).values_list("profile_id", flat=True)
    ) == {profile.pk}
    assert Profile.objects.count() == 2
    assert RawRecord.objects.get(source_record=record).payload["First Name"] == "Ann"


def test_rows_insert_returning_ids_gives_each_row_its_own_id_in_order(make_source):
    from django.utils import timezone

    source, now = make_source(), timezone.now()
    rows = [(source.pk, f"k{i}", {"n": i}, {}, "", {}, now, now) for i in range(5)]
    fields = ["source", "external_key", "attributes", "traits", "content_hash", "observed_at"]
    fields += ["created_at", "updated_at"]
    ids = rows_insert_returning_ids(SourceRecord, fields, rows)
    assert ids == sorted(ids) and len(set(ids)) == 5
    stored = dict(SourceRecord.objects.filter(pk__in=ids).values_list("pk", "external_key"))
    assert [stored[pk] for pk in ids] == [f"k{i}" for i in range(5)]
    assert SourceRecord.objects.get(pk=ids[3]).attributes == {"n": 3}
    # Later inserts continue after the drawn ids.
    later = SourceRecord.objects.create(source=source, external_key="later")
    assert later.pk > ids[-1]


def test_rows_append_writes_json_datetimes_and_nulls(make_source):
    from django.utils import timezone

    source = make_source()
    now = timezone.now()
    fields = ["source", "external_key", "attributes", "traits", "content_hash", "observed_at"]
    fields += ["created_at", "updated_at"]
    [record_id] = rows_insert_returning_ids(
        SourceRecord, fields, [(source.pk, "x", {}, {}, "", {}, now, now)]
    )
    assert rows_append(
        Identity,
        ["type", "raw_value", "key", "flag", "source_record", "profile", "created_at"],
        [("email", "A@x.org", "a@x.org", "", record_id, None, now),
         ("phone", "call me", None, "not a phone number", record_id, None, now)],
    ) == 2  # fmt: skip
    rows = list(
        Identity.objects.filter(source_record_id=record_id)
        .order_by("type")
        .values_list("type", "key", "flag", "profile_id", "created_at")
    )
    assert rows == [
        ("email", "a@x.org", "", None, now),
        ("phone", None, "not a phone number", None, now),
    ]


def test_raw_rows_are_encoded_once_and_keep_their_hash(make_source, import_csv, monkeypatch):
    """PostgreSQL lands the sorted-key text that stable_hash hashes (jsonb keeps no key order):
    one JSON encoding per raw row, the same payload and content hash as before."""
    import json

    from django.db import connection

    from profiles.services.mapping import stable_hash

    encoded: list[dict] = []
    dumps = json.dumps

    def counting(value, *args, **kwargs):
        if isinstance(value, dict) and "Email" in value:
            encoded.append(value)
        return dumps(value, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", counting)
    import_csv(
        make_source(preset="shopify"),
        shopify_csv(shopify_row(**{"First Name": "Zoë", "Email": "zoe@example.com"})),
    )
    assert len(encoded) == (1 if connection.vendor == "postgresql" else 2)
    raw = RawRecord.objects.get()
    assert raw.payload["First Name"] == "Zoë"
    assert raw.content_hash == stable_hash(raw.payload)
