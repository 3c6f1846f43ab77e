"""File imports: landing rows, idempotent re-imports, rejected rows, resolution through CSV."""

from __future__ import annotations

import pytest

from cdp.models import AuditEvent
from profiles.models import (
    FieldMapping,
    Identity,
    ImportRun,
    MergeLog,
    Profile,
    RawRecord,
    SourceRecord,
)
from profiles.services.imports import csv_preview, import_run_create, mapping_save, text_file
from profiles.services.mapping import FieldSpec
from tests.conftest import SHOPIFY_HEADER, shopify_csv, shopify_row

BAD_EMAIL = "lena.vogt@@example.de"
BAD_EMAIL_ERROR = (
    "Email: not a valid e-mail address: The part after the @-sign contains invalid characters: '@'."
)

GOOD_ROWS = [
    shopify_row(
        **{
            "First Name": "Lena",
            "Last Name": "Vogt",
            "Email": "Lena.Vogt@Example.DE",
            "Default Address Country Code": "DE",
            "Phone": "'+49 30 1234567",
            "Total Spent": "120.50",
            "Total Orders": "3",
        }
    ),
    shopify_row(
        **{
            "First Name": "Ann",
            "Last Name": "Lee",
            "Email": "ann.lee@example.com",
            "Default Address Country Code": "US",
            "Phone": "(202) 555-0143",
            "Accepts Email Marketing": "yes",
        }
    ),
    shopify_row(**{"First Name": "Jörg", "Last Name": "Maß", "Email": "joerg@example.org"}),
]


def data_counts() -> dict[str, int]:
    return {
        "profiles": Profile.objects.count(),
        "source_records": SourceRecord.objects.count(),
        "identities": Identity.objects.count(),
        "merges": MergeLog.objects.count(),
    }


def run_counts(run: ImportRun) -> dict[str, object]:
    return {
        "status": run.status,
        "error": run.error,
        "rows_total": run.rows_total,
        "rows_done": run.rows_done,
        "created": run.created_count,
        "updated": run.updated_count,
        "unchanged": run.unchanged_count,
        "rejected": run.rejected_count,
    }


# --- idempotency ---------------------------------------------------------------------------


def test_importing_the_same_shopify_file_twice_changes_nothing(make_source, import_csv):
    source = make_source(preset="shopify")
    content = shopify_csv(*GOOD_ROWS, shopify_row(**{"First Name": "Bad", "Email": BAD_EMAIL}))

    first = import_csv(source, content, "customers_export.csv")
    after_first = data_counts()
    profile_values = list(Profile.objects.order_by("pk").values("pk", "email", "attributes"))
    second = import_csv(source, content, "customers_export.csv")

    assert run_counts(first) == {
        "status": "succeeded",
        "error": "",
        "rows_total": 4,
        "rows_done": 4,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
    }
    assert run_counts(second) == {
        "status": "succeeded",
        "error": "",
        "rows_total": 4,
        "rows_done": 4,
        "created": 0,
        "updated": 0,
        "unchanged": 3,
        "rejected": 1,
    }
    assert after_first == {"profiles": 3, "source_records": 3, "identities": 5, "merges": 0}
    assert data_counts() == after_first
    assert list(Profile.objects.order_by("pk").values("pk", "email", "attributes")) == (
        profile_values
    )
    # Every run lands its own rows verbatim, so the raw rows are per run.
    assert RawRecord.objects.filter(import_run=first).count() == 4
    assert RawRecord.objects.filter(import_run=second).count() == 4
    second_accepted = RawRecord.objects.filter(import_run=second, status="accepted")
    assert set(second_accepted.values_list("source_record_id", flat=True)) == set(
        SourceRecord.objects.values_list("pk", flat=True)
    )


def test_a_row_repeated_in_the_file_counts_unchanged_and_a_reimport_changes_nothing(
    make_source, import_csv
):
    source = make_source(preset="shopify")
    content = shopify_csv(GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[0], GOOD_ROWS[2])

    first = import_csv(source, content)
    second = import_csv(source, content)

    counts = [(r.created_count, r.updated_count, r.unchanged_count) for r in (first, second)]
    assert counts == [(3, 0, 1), (0, 0, 4)]
    assert data_counts() == {"profiles": 3, "source_records": 3, "identities": 5, "merges": 0}


def test_two_versions_of_one_record_in_a_file_the_later_wins_the_earlier_counts_updated(
    make_source, import_csv
):
    source = make_source(preset="shopify")
    renamed = GOOD_ROWS[1].replace("Ann,Lee", "Anne,Lee")
    content = shopify_csv(GOOD_ROWS[1], GOOD_ROWS[2], renamed)

    first = import_csv(source, content)
    second = import_csv(source, content)

    # The file says two things about ann.lee@example.com: the earlier row differs from what
    # is stored (the later row's values), on every import.
    counts = [(r.created_count, r.updated_count, r.unchanged_count) for r in (first, second)]
    assert counts == [(2, 1, 0), (0, 1, 2)]
    assert Profile.objects.get(email="ann.lee@example.com").first_name == "Anne"
    assert SourceRecord.objects.count() == 2


def test_reimport_with_one_changed_row_updates_only_that_record(make_source, import_csv):
    source = make_source(preset="shopify")
    import_csv(source, shopify_csv(*GOOD_ROWS))
    changed = GOOD_ROWS[1].replace("Ann,Lee", "Anne,Lee")

    run = import_csv(source, shopify_csv(GOOD_ROWS[0], changed, GOOD_ROWS[2]))

    assert (run.created_count, run.updated_count, run.unchanged_count) == (0, 1, 2)
    assert Profile.objects.get(email="ann.lee@example.com").first_name == "Anne"
    assert data_counts() == {"profiles": 3, "source_records": 3, "identities": 5, "merges": 0}


def test_import_maps_shopify_columns_onto_the_profile(make_source, import_csv):
    source = make_source(preset="shopify")
    import_csv(source, shopify_csv(*GOOD_ROWS))

    profile = Profile.objects.get(email="ann.lee@example.com")
    assert (profile.first_name, profile.last_name, profile.phone, profile.country) == (
        "Ann",
        "Lee",
        "+12025550143",
        "US",
    )
    assert profile.attributes["accepts_email_marketing"] is True
    record = SourceRecord.objects.get(profile=profile)
    assert record.external_key == "ann.lee@example.com"
    assert set(profile.attribute_sources.values()) == {record.pk}
    assert sorted(profile.identities.values_list("type", "raw_value", "key")) == [
        ("email", "ann.lee@example.com", "ann.lee@example.com"),
        ("phone", "(202) 555-0143", "+12025550143"),
    ]
    lena = Profile.objects.get(email="lena.vogt@example.de")
    assert lena.attributes["total_spent"] == 120.5
    assert lena.attributes["total_orders"] == 3
    assert lena.phone == "+49301234567"


# --- rejected rows -------------------------------------------------------------------------


def test_malformed_email_rejects_only_its_row_and_keeps_it_verbatim(make_source, import_csv):
    source = make_source(preset="shopify")
    bad_line = shopify_row(
        **{"First Name": " Bad ", "Last Name": "Row", "Email": BAD_EMAIL, "Note": 'said "hi", left'}
    )
    content = shopify_csv(GOOD_ROWS[0], bad_line, GOOD_ROWS[1], GOOD_ROWS[2])

    run = import_csv(source, content)

    assert (run.status, run.created_count, run.rejected_count, run.rows_done) == (
        "succeeded",
        3,
        1,
        4,
    )
    assert sorted(Profile.objects.values_list("email", flat=True)) == [
        "ann.lee@example.com",
        "joerg@example.org",
        "lena.vogt@example.de",
    ]
    rejected = RawRecord.objects.get(import_run=run, status=RawRecord.Status.REJECTED)
    assert rejected.row_number == 2
    assert rejected.error == BAD_EMAIL_ERROR
    assert rejected.source_record_id is None
    expected_payload = dict.fromkeys(SHOPIFY_HEADER.split(","), "")
    expected_payload.update(
        {"First Name": " Bad ", "Last Name": "Row", "Email": BAD_EMAIL, "Note": 'said "hi", left'}
    )
    assert rejected.payload == expected_payload
    accepted = RawRecord.objects.filter(import_run=run, status=RawRecord.Status.ACCEPTED)
    assert sorted(accepted.values_list("row_number", flat=True)) == [1, 3, 4]
    assert accepted.filter(source_record__isnull=True).count() == 0


def test_row_with_more_values_than_headers_is_rejected(make_source, import_csv):
    source = make_source()
    run = import_csv(source, "email,first_name\na@example.com,Ann\nb@example.com,Bob,extra\n")

    rejected = RawRecord.objects.get(import_run=run, status="rejected")
    assert rejected.row_number == 2
    assert rejected.error == "the row has 1 more value(s) than the header has columns"
    assert rejected.payload == {
        "email": "b@example.com",
        "first_name": "Bob",
        "__extra_values__": ["extra"],
    }
    assert list(Profile.objects.values_list("email", flat=True)) == ["a@example.com"]


PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (PNG_HEADER + bytes(range(256)) * 4, "it looks like a PNG image."),
        (
            b"PK\x03\x04\x14\x00\x06\x00" + b"xl/workbook.xml" * 20,
            "it looks like an Excel workbook (.xlsx) or a ZIP archive: save it as CSV first.",
        ),
        (
            bytes((i * 37 + 11) % 256 for i in range(4096)),
            "it looks like binary data (NUL bytes), not text.",
        ),
        ("email,name\n" + "\x01\x02\x03\x04" * 200, "it is full of control characters."),
    ],
    ids=["png", "xlsx", "random-bytes", "control-characters"],
)
def test_a_file_that_is_not_text_fails_the_run_and_creates_nothing(
    make_source, import_csv, content, message
):
    run = import_csv(make_source(), content)

    assert run.status == "failed"
    assert run.error.startswith("The file cannot be read: This is not a CSV or text file")
    assert message in run.error
    assert (SourceRecord.objects.count(), RawRecord.objects.count()) == (0, 0)


def test_a_nul_byte_after_the_first_64_kb_fails_the_run_before_any_row_is_imported(
    make_source, import_csv
):
    # PostgreSQL cannot store U+0000: the batch holding it failed, and landing its rows
    # unapplied failed again, so 5,000 rows were lost. The scan reads every row first.
    rows = "".join(f"a{i}@example.com,Name {i}\n" for i in range(4000))
    content = "email,first_name\n" + rows + "z@example.com,Z\x00ed\n"
    assert content.index("\x00") > 64 * 1024

    run = import_csv(make_source(), content)

    assert run.status == "failed"
    assert run.error == (
        "The file cannot be read: This is not a CSV or text file: it looks like binary data "
        "(a NUL byte in data row 4001), not text."
    )
    assert (SourceRecord.objects.count(), RawRecord.objects.count()) == (0, 0)


def test_utf16_with_a_bom_is_still_text(make_source, import_csv):
    content = "email,first_name\nana@example.com,Ana\n".encode("utf-16")

    run = import_csv(make_source(), content)

    assert (run.status, run.created_count) == ("succeeded", 1)


def test_empty_file_fails_the_run_with_a_message(make_source, import_csv):
    run = import_csv(make_source(), "")

    assert run.status == "failed"
    assert run.error == "The file cannot be read: The file is empty."
    assert run.finished_at is not None and run.finished_at >= run.started_at


def test_blank_lines_are_skipped_and_row_numbers_follow_the_file(make_source, import_csv):
    run = import_csv(make_source(), "email\na@example.com\n\nnot-an-email\n")

    assert list(
        RawRecord.objects.filter(import_run=run)
        .order_by("row_number")
        .values_list("row_number", "status")
    ) == [(1, "accepted"), (3, "rejected")]


# --- canonical headers, custom traits, file formats ----------------------------------------


def test_canonical_headers_import_without_mapping_and_other_columns_become_traits(
    make_source, import_csv
):
    source = make_source()
    content = (
        "first_name,last_name,email,phone,country,Loyalty Tier,Favourite Store\n"
        "Ann,Lee,ann@example.com,(202) 555-0143,US,Gold,Berlin Mitte\n"
    )

    run = import_csv(source, content)

    assert (run.status, run.created_count, run.rejected_count) == ("succeeded", 1, 0)
    assert FieldMapping.objects.filter(source=source).count() == 0
    record = SourceRecord.objects.get(source=source)
    assert record.attributes == {
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.com",
        "phone": "+12025550143",
        "country": "US",
    }
    assert record.traits == {"loyalty_tier": "Gold", "favourite_store": "Berlin Mitte"}
    assert record.external_key == "email:ann@example.com"
    assert record.profile.phone == "+12025550143"


def test_two_spellings_of_one_email_resolve_to_one_profile(make_source, import_csv):
    source = make_source()
    content = (
        "customer_id,first_name,email\n"
        "C-1,Lena,Lena.Vogt@Example.DE\n"
        "C-2,Lena, lena.vogt@example.de\u00a0\n"
    )

    import_csv(source, content)

    assert SourceRecord.objects.count() == 2
    assert Profile.objects.count() == 1
    profile = Profile.objects.get()
    assert profile.email == "lena.vogt@example.de"
    assert sorted(profile.identities.filter(type="email").values_list("raw_value", "key")) == [
        ("Lena.Vogt@Example.DE", "lena.vogt@example.de"),
        ("lena.vogt@example.de", "lena.vogt@example.de"),
    ]


def test_two_spellings_of_one_email_in_two_sources_resolve_to_one_profile(make_source, import_csv):
    shop = make_source(preset="shopify")
    crm = make_source()
    import_csv(shop, shopify_csv(shopify_row(**{"Email": "Lena.Vogt@Example.DE"})))
    import_csv(crm, "email,first_name\n lena.vogt@example.de\u00a0,Lena\n")

    assert SourceRecord.objects.count() == 2
    assert list(Profile.objects.values_list("email", "first_name")) == [
        ("lena.vogt@example.de", "Lena")
    ]
    assert set(SourceRecord.objects.values_list("profile_id", flat=True)) == {
        Profile.objects.get().pk
    }


def test_national_and_e164_phone_resolve_to_one_profile(make_source, import_csv):
    source = make_source()
    content = (
        "first_name,email,phone,country\n"
        "Ann,ann@example.com,(202) 555-0143,US\n"
        "Ann,ann.lee@work.example,+1 202-555-0143,\n"
    )

    import_csv(source, content)

    assert SourceRecord.objects.count() == 2
    assert Profile.objects.count() == 1
    assert sorted(Identity.objects.filter(type="phone").values_list("raw_value", "key")) == [
        ("(202) 555-0143", "+12025550143"),
        ("+1 202-555-0143", "+12025550143"),
    ]


def test_people_sharing_a_placeholder_email_stay_two_profiles(make_source, import_csv):
    source = make_source(preset="shopify")
    content = shopify_csv(
        shopify_row(**{"First Name": "Ann", "Last Name": "Lee", "Email": "test@test.com"}),
        shopify_row(**{"First Name": "Bob", "Last Name": "Ray", "Email": "TEST@test.com "}),
    )

    run = import_csv(source, content)

    assert (run.created_count, run.rejected_count) == (2, 0)
    assert sorted(Profile.objects.values_list("first_name", flat=True)) == ["Ann", "Bob"]
    assert list(Identity.objects.values_list("key", "flag").distinct()) == [
        (None, "placeholder value")
    ]


def test_unreadable_phone_is_kept_raw_and_flagged(make_source, import_csv):
    source = make_source()
    import_csv(
        source,
        "email,phone,country\na@example.com,2.02555E+09,US\nb@example.com,2.02555E+09,US\n",
    )

    assert Profile.objects.count() == 2
    phones = Identity.objects.filter(type="phone")
    assert list(phones.values_list("raw_value", "key", "flag").distinct()) == [
        ("2.02555E+09", None, "scientific notation (a spreadsheet mangled this number)")
    ]
    # Issue 3: a phone in scientific notation is rejected as a phone, not stored as one.
    assert set(Profile.objects.values_list("phone", flat=True)) == {""}


def test_windows_1252_semicolon_file_is_read(make_source, import_csv):
    source = make_source()
    content = "first_name;last_name;email\r\nJörg;Maß;joerg@example.org\r\n".encode("cp1252")

    run = import_csv(source, content)

    assert (run.status, run.created_count) == ("succeeded", 1)
    assert list(Profile.objects.values_list("first_name", "last_name")) == [("Jörg", "Maß")]


def test_utf8_bom_does_not_end_up_in_the_first_header(make_source, import_csv):
    source = make_source()
    import_csv(source, "\ufeffemail,first_name\nann@example.com,Ann\n".encode())

    assert list(Profile.objects.values_list("email", "first_name")) == [("ann@example.com", "Ann")]


def test_saved_mapping_wins_over_the_default(make_source, import_csv):
    source = make_source()
    mapping_save(
        source=source,
        specs=[
            FieldSpec("Mail", "email", is_key=True),
            FieldSpec("Vorname", "first_name", "title"),
            FieldSpec("Kundennr", "customer_id"),
        ],
    )

    import_csv(source, "Mail,Vorname,Kundennr\nANN@example.com,anna maria,K-7\n")

    record = SourceRecord.objects.get()
    assert record.external_key == "ann@example.com"
    assert record.attributes == {
        "email": "ann@example.com",
        "first_name": "Anna Maria",
        "customer_id": "K-7",
    }
    assert sorted(record.identities.values_list("type", "key")) == [
        ("customer_id", "K-7"),
        ("email", "ann@example.com"),
    ]


def _german_mapping(source):
    mapping_save(
        source=source,
        specs=[
            FieldSpec("Mail", "email", is_key=True),
            FieldSpec("Vorname", "first_name"),
            FieldSpec("Kundennr", "customer_id"),
        ],
    )


def test_a_file_none_of_whose_columns_the_saved_mapping_names_fails_and_creates_nothing(
    make_source, import_csv
):
    source = make_source(name="CRM")
    _german_mapping(source)

    run = import_csv(source, "email,first_name\nann@example.com,Ann\n")

    assert run.status == "failed"
    assert run.error == (
        "None of this file's columns is in the saved mapping of source 'CRM' (it maps 'Mail', "
        "'Vorname', 'Kundennr'; the file has 'email', 'first_name'). Map this file in the "
        "admin (Import runs → Add), or import it into a source of its own."
    )
    assert (SourceRecord.objects.count(), Profile.objects.count(), run.created_count) == (0, 0, 0)


def test_a_file_without_the_saved_mappings_key_column_fails(make_source, import_csv):
    source = make_source(name="CRM")
    _german_mapping(source)

    run = import_csv(source, "Vorname,Kundennr\nAnn,K-7\n")

    assert run.status == "failed"
    assert run.error.startswith("The file has no column 'Mail', the key of the saved mapping")
    assert SourceRecord.objects.count() == 0


def test_a_file_missing_only_some_mapped_columns_imports(make_source, import_csv):
    source = make_source(name="CRM")
    _german_mapping(source)

    run = import_csv(source, "Mail,Vorname\nann@example.com,Ann\n")

    assert (run.status, run.created_count) == ("succeeded", 1)
    record = SourceRecord.objects.get()
    assert (record.external_key, record.attributes["first_name"]) == ("ann@example.com", "Ann")


def test_csv_preview_returns_headers_and_first_rows(tmp_path):
    path = tmp_path / "preview.csv"
    path.write_text("email,first_name\n" + "".join(f"u{i}@example.com,U{i}\n" for i in range(9)))

    headers, rows = csv_preview(str(path), limit=2)

    assert headers == ["email", "first_name"]
    assert rows == [
        {"email": "u0@example.com", "first_name": "U0"},
        {"email": "u1@example.com", "first_name": "U1"},
    ]


# --- queueing ------------------------------------------------------------------------------


def test_import_run_create_queues_the_task_after_commit(
    make_source, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(
        "cdp.jobs.async_task", lambda path, *args, group: queued.append((path, args, group))
    )
    source = make_source()

    with django_capture_on_commit_callbacks(execute=True):
        run = import_run_create(source=source, file=text_file("email\na@example.com\n", "a.csv"))

    assert queued == [
        ("profiles.tasks.import_run_execute", (run.pk,), "profiles.tasks.import_run_execute")
    ]
    assert run.status == "queued"
    assert Profile.objects.count() == 0
    assert list(AuditEvent.objects.values_list("action", "target")) == [
        ("import.create", f"profiles.importrun:{run.pk}")
    ]


def test_import_keeps_the_original_file_name(make_source, import_csv):
    run = import_csv(make_source(), "email\na@example.com\n", "export 2024.csv")

    assert run.original_name == "export 2024.csv"
    assert str(run) == f"Import #{run.pk} export 2024.csv"


def test_a_full_batch_of_new_people_against_existing_profiles_resolves(make_source, import_csv):
    """A batch of 1,000 rows looks up ~2,000 keys at once (regression: SQLite's expression
    depth limit broke an OR of (type, key) pairs)."""
    source = make_source()
    people = range(1100)
    first = import_csv(
        source, "customer_id,email\n" + "".join(f"C{n:05d},p{n}@example.com\n" for n in people)
    )
    second = import_csv(
        make_source(),
        "customer_id,email\n" + "".join(f"K{n:05d},P{n}@Example.com\n" for n in people),
    )

    assert (first.status, first.created_count, first.rejected_count) == ("succeeded", 1100, 0)
    assert (second.status, second.created_count, second.error) == ("succeeded", 1100, "")
    assert Profile.objects.count() == 1100
    assert Profile.objects.filter(source_records__external_key="K00042").get().email == (
        "p42@example.com"
    )


def test_mapping_save_refuses_two_columns_on_one_attribute(make_source):
    source = make_source(name="crm")

    with pytest.raises(ValueError, match="E-Mail and Telefon are both mapped to E-mail"):
        mapping_save(
            source=source,
            specs=[FieldSpec("E-Mail", "email"), FieldSpec("Telefon", "email")],
        )

    assert not source.mappings.exists()


# --- suppression list ----------------------------------------------------------------------


def test_rows_of_erased_people_are_counted_as_suppressed_so_the_figures_add_up(
    make_source, import_csv
):
    from consent.services.suppression import suppression_add
    from profiles.selectors import import_run_report

    suppression_add(keys=[("email", "erased@example.com")])
    content = (
        "email,first_name\n"
        "ann@example.com,Ann\n"
        "ERASED@example.com,Eve\n"
        "bad@@example.com,Bad\n"
        "bob@example.com,Bob\n"
    )

    run = import_csv(make_source(), content)

    report = import_run_report(run=run)
    assert {k: report[k] for k in ("read", "created", "unchanged", "rejected", "suppressed")} == {
        "read": 4,
        "created": 2,
        "unchanged": 0,
        "rejected": 1,
        "suppressed": 1,
    }
    assert report["read"] == sum(
        report[k] for k in ("created", "updated", "unchanged", "rejected", "suppressed")
    )
    assert run.suppressed_count == 1
    assert RawRecord.objects.filter(import_run=run, status="suppressed").count() == 1
    assert not Profile.objects.filter(first_name="Eve").exists()


def test_mapped_traits_are_known_once_a_row_applied_them_also_beyond_the_recent_sample(
    make_source, import_csv, django_assert_num_queries
):
    from segments.selectors import trait_names_known

    source = make_source()
    mapping_save(
        source=source,
        specs=[
            FieldSpec("email", "email", is_key=True),
            FieldSpec("Tier", "trait:tier"),
            FieldSpec("Unused", "trait:unused"),
        ],
    )
    import_csv(source, "email,Tier,Unused\nann@example.com,gold,\n")
    import_csv(make_source(), "email,colour\nbob@example.com,blue\n")

    with django_assert_num_queries(3):
        # the sample holds only Bob's newer record; tier is found through its mapping
        assert trait_names_known(sample=1) == ["colour", "tier"]
