"""Admin for customer data: rejected rows, profile search, change pages and query budgets."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape

from profiles.models import (
    DataSource,
    Event,
    Identity,
    ImportRun,
    MergeLog,
    Profile,
    ProfileRedirect,
    RawRecord,
    SourceRecord,
)
from profiles.services.tracking import tracking_messages_ingest
from tests.conftest import shopify_csv, shopify_row

BAD_EMAIL = "lena@exa&mple.de"
BAD_EMAIL_ERROR = (
    "Email: not a valid e-mail address: The part after the @-sign contains invalid characters: '&'."
)
SCRIPT = "<script>alert(1)</script>"


def import_with_bad_row(make_source, import_csv) -> ImportRun:
    source = make_source(name="shop", preset="shopify")
    return import_csv(
        source,
        shopify_csv(
            shopify_row(**{"First Name": "Ann", "Email": "ann@example.com"}),
            shopify_row(**{"First Name": SCRIPT, "Last Name": "O'Neil", "Email": BAD_EMAIL}),
            shopify_row(**{"First Name": "Bob", "Email": "bob@example.com"}),
        ),
    )


def changelist_ids(response) -> list[int]:
    return [obj.pk for obj in response.context["cl"].result_list]


# --- rejected rows -------------------------------------------------------------------------


def test_import_run_page_lists_rejected_rows_escaped(admin_client, make_source, import_csv):
    run = import_with_bad_row(make_source, import_csv)

    response = admin_client.get(reverse("admin:profiles_importrun_change", args=[run.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert escape(BAD_EMAIL_ERROR) in html
    assert BAD_EMAIL_ERROR not in html
    assert escape(SCRIPT) in html
    assert SCRIPT not in html
    assert "<td>2</td>" in html  # the row number
    link = reverse("admin:profiles_rawrecord_changelist") + (
        f"?import_run__id__exact={run.pk}&status__exact=rejected"
    )
    assert f'href="{escape(link)}"' in html


def test_rawrecord_changelist_filtered_by_status_shows_the_rejected_row(
    admin_client, make_source, import_csv
):
    run = import_with_bad_row(make_source, import_csv)
    rejected = RawRecord.objects.get(status="rejected")

    by_status = admin_client.get(
        reverse("admin:profiles_rawrecord_changelist"), {"status__exact": "rejected"}
    )
    by_run = admin_client.get(
        reverse("admin:profiles_rawrecord_changelist"),
        {"import_run__id__exact": run.pk, "status__exact": "rejected"},
    )
    accepted = admin_client.get(
        reverse("admin:profiles_rawrecord_changelist"), {"status__exact": "accepted"}
    )

    assert by_status.status_code == 200
    assert changelist_ids(by_status) == [rejected.pk]
    assert changelist_ids(by_run) == [rejected.pk]
    assert sorted(changelist_ids(accepted)) == sorted(
        RawRecord.objects.filter(status="accepted").values_list("pk", flat=True)
    )
    html = by_status.content.decode()
    assert escape(BAD_EMAIL_ERROR) in html
    assert BAD_EMAIL_ERROR not in html


def test_rawrecord_page_shows_the_row_as_received(admin_client, make_source, import_csv):
    import_with_bad_row(make_source, import_csv)
    rejected = RawRecord.objects.get(status="rejected")

    response = admin_client.get(reverse("admin:profiles_rawrecord_change", args=[rejected.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert escape(SCRIPT) in html
    assert SCRIPT not in html
    assert escape("O'Neil") in html
    assert escape(BAD_EMAIL_ERROR) in html


# --- profile search ------------------------------------------------------------------------


def make_people(make_source, import_csv) -> dict[str, Profile]:
    source = make_source()
    import_csv(
        source,
        "first_name,last_name,email,phone,country\n"
        "Lena,Vogt,Lena.Vogt@Example.DE,030 1234567,DE\n"
        "Ann,Lee,ann@example.com,(202) 555-0143,US\n"
        "Jörg,Buchner,info@Bücher.example,,\n"
        "Lenny,Kravitz,lenny@example.com,,\n",
    )
    return {p.last_name: p for p in Profile.objects.all()}


def search(admin_client, term: str) -> list[int]:
    response = admin_client.get(reverse("admin:profiles_profile_changelist"), {"q": term})
    assert response.status_code == 200
    return sorted(changelist_ids(response))


def test_profile_search_by_email_in_another_spelling(admin_client, make_source, import_csv):
    people = make_people(make_source, import_csv)

    assert search(admin_client, "LENA.VOGT@example.de") == [people["Vogt"].pk]
    assert search(admin_client, "info@xn--bcher-kva.example") == [people["Buchner"].pk]
    assert search(admin_client, "INFO@Bücher.Example") == [people["Buchner"].pk]


def test_profile_search_by_phone_in_another_format(admin_client, make_source, import_csv):
    people = make_people(make_source, import_csv)

    assert search(admin_client, "+12025550143") == [people["Lee"].pk]
    assert search(admin_client, "+1 (202) 555-0143") == [people["Lee"].pk]
    assert search(admin_client, "+49 30 1234567") == [people["Vogt"].pk]
    assert search(admin_client, "0049301234567") == [people["Vogt"].pk]


def test_profile_search_by_a_national_phone_reads_it_in_every_sources_region(
    admin_client, make_source
):
    from profiles.services.tracking import tracking_messages_ingest

    ids = {}
    for region, number in (("US", "(401) 465-2236"), ("DE", "040 14652236")):
        source = make_source(kind="api", default_region=region)
        message = {"type": "identify", "userId": region, "traits": {"phone": number}}
        tracking_messages_ingest(source=source, messages=[{**message, "messageId": region}])
        ids[region] = source.records.get().profile_id

    # "401 4652236" is a Rhode Island number in the US and a Hamburg one in Germany: both shown.
    assert search(admin_client, "(401) 465-2236") == sorted(ids.values())
    assert search(admin_client, "+1 401 465 2236") == [ids["US"]]


def test_profile_search_by_a_national_phone_finds_a_number_read_by_its_records_country(
    admin_client, make_source, import_csv
):
    # No source has a default region: the row's own country read the number.
    import_csv(make_source(), "customer_id,phone,country\nC-1,030 1234567,DE\n")

    assert search(admin_client, "030 1234567") == [Profile.objects.get().pk]
    assert search(admin_client, "030 7654321") == []


def test_profile_search_by_name(admin_client, make_source, import_csv):
    people = make_people(make_source, import_csv)

    assert search(admin_client, "Vogt") == [people["Vogt"].pk]
    assert search(admin_client, "Len") == sorted([people["Vogt"].pk, people["Kravitz"].pk])
    assert search(admin_client, "Jörg") == [people["Buchner"].pk]
    assert search(admin_client, "nobody") == []


def test_profile_search_by_user_id(admin_client, make_source, import_csv):
    people = make_people(make_source, import_csv)
    web = make_source(kind="api")
    tracking_messages_ingest(
        source=web,
        messages=[
            {
                "type": "identify",
                "messageId": "m-1",
                "userId": "shop-user-9",
                "traits": {"email": "ann@example.com"},
            }
        ],
    )

    assert search(admin_client, "shop-user-9") == [people["Lee"].pk]


# --- change pages --------------------------------------------------------------------------


def test_profile_page_shows_attributes_with_their_source_and_recent_events(
    admin_client, make_source, import_csv
):
    shop = make_source(name="shop", preset="shopify")
    import_csv(shop, shopify_csv(shopify_row(**{"First Name": "Ann", "Email": "ann@example.com"})))
    web = make_source(name="web", kind="api")
    tracking_messages_ingest(
        source=web,
        messages=[
            {
                "type": "identify",
                "messageId": "m-1",
                "userId": "u-1",
                "traits": {"email": "ann@example.com"},
            },
            {
                "type": "track",
                "messageId": "m-2",
                "userId": "u-1",
                "event": "Order Completed",
                "properties": {"note": SCRIPT},
            },
        ],
    )
    profile = Profile.objects.get()
    shop_record = SourceRecord.objects.get(source=shop)

    response = admin_client.get(reverse("admin:profiles_profile_change", args=[profile.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert f"<td>first_name</td><td>Ann</td><td>shop #{shop_record.pk}</td>" in html
    assert "<td>Order Completed</td>" in html
    assert escape(SCRIPT) in html
    assert SCRIPT not in html


def test_import_run_add_form_offers_file_sources_and_creates_a_draft(
    admin_client, make_source, monkeypatch, django_capture_on_commit_callbacks
):
    # Issue 3: adding a run uploads the file and opens the mapping step; nothing is queued
    # until the mapping is confirmed (tests/profiles/test_admin_imports.py covers the rest).
    queued = []
    monkeypatch.setattr("cdp.jobs.async_task", lambda path, *args, group: queued.append(args))
    shop = make_source(name="shop")
    make_source(name="web", kind="api")

    form = admin_client.get(reverse("admin:profiles_importrun_add"))
    choices = [label for _value, label in form.context["form"].fields["source"].choices]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:profiles_importrun_add"),
            {
                "source": shop.pk,
                "file": SimpleUploadedFile("customers.csv", b"email\nann@example.com\n"),
            },
        )

    assert choices == ["---------", "shop"]
    assert response.status_code == 302
    run = ImportRun.objects.get()
    assert (run.source_id, run.original_name, run.status) == (shop.pk, "customers.csv", "draft")
    assert response["Location"] == reverse("admin:profiles_importrun_mapping", args=[run.pk])
    assert queued == []


def test_api_source_created_in_admin_gets_a_write_key(admin_client):
    response = admin_client.post(
        reverse("admin:profiles_datasource_add"),
        {
            "name": "website",
            "kind": "api",
            "preset": "",
            "priority": 100,
            "default_region": "",
            "mappings-TOTAL_FORMS": 0,
            "mappings-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 302
    source = DataSource.objects.get(name="website")
    assert len(source.write_key) == 32
    page = admin_client.get(reverse("admin:profiles_datasource_change", args=[source.pk]))
    assert source.write_key in page.content.decode()


@pytest.mark.parametrize("preset", ["HubSpot", "hubspt"])
def test_a_source_with_an_unknown_preset_is_refused_in_admin(admin_client, preset):
    # It used to be saved as typed: the admin then ignored the preset, the CLI import failed.
    response = admin_client.post(
        reverse("admin:profiles_datasource_add"),
        {
            "name": "HubSpot DE",
            "kind": "file",
            "preset": preset,
            "priority": 100,
            "default_region": "",
            "mappings-TOTAL_FORMS": 0,
            "mappings-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["preset"] == [
        f"Select a valid choice. {preset} is not one of the available choices."
    ]
    assert not DataSource.objects.filter(name="HubSpot DE").exists()


def test_a_source_preset_is_chosen_from_the_known_presets(admin_client):
    page = admin_client.get(reverse("admin:profiles_datasource_add"))
    choices = [value for value, _label in page.context["adminform"].form.fields["preset"].choices]
    assert choices == ["", "hubspot", "mailchimp", "salesforce", "shopify"]

    response = admin_client.post(
        reverse("admin:profiles_datasource_add"),
        {
            "name": "HubSpot DE",
            "kind": "file",
            "preset": "hubspot",
            "priority": 100,
            "default_region": "",
            "mappings-TOTAL_FORMS": 0,
            "mappings-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 302
    assert DataSource.objects.get(name="HubSpot DE").preset == "hubspot"


# --- query budgets -------------------------------------------------------------------------


def test_profile_changelist_query_budget(
    admin_client, make_source, import_csv, django_assert_max_num_queries
):
    rows = "".join(f"First{n},Last{n},person{n}@example.com\n" for n in range(30))
    import_csv(make_source(), "first_name,last_name,email\n" + rows)
    assert Profile.objects.count() == 30

    with django_assert_max_num_queries(6):
        response = admin_client.get(reverse("admin:profiles_profile_changelist"))
    with django_assert_max_num_queries(6):
        searched = admin_client.get(
            reverse("admin:profiles_profile_changelist"), {"q": "person7@example.com"}
        )

    assert len(changelist_ids(response)) == 30
    assert changelist_ids(searched) == [Profile.objects.get(email="person7@example.com").pk]


def test_import_run_changelist_query_budget(
    admin_client, make_source, django_assert_max_num_queries
):
    sources = [make_source(name=f"shop-{n}") for n in range(3)]
    ImportRun.objects.bulk_create(
        ImportRun(
            source=sources[n % 3],
            file=f"imports/2024/05/file{n}.csv",
            original_name=f"file{n}.csv",
            status="succeeded",
            rows_total=10,
            rows_done=10,
            created_count=n,
        )
        for n in range(30)
    )

    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("admin:profiles_importrun_changelist"))

    assert response.status_code == 200
    assert len(changelist_ids(response)) == 30
    assert 'title="100%"' in response.content.decode()


@pytest.fixture
def thirty_of_everything(make_source, import_csv):
    """30 file rows with e-mail and phone, 30 tracked users: 60 records, 90 identities."""
    rows = "".join(f"person{n}@example.com,+1 202-555-01{n:02d}\n" for n in range(30))
    import_csv(make_source(), "email,phone\n" + rows)
    web = make_source(kind="api")
    tracking_messages_ingest(
        source=web,
        messages=[
            {"type": "track", "messageId": f"m-{n}", "userId": f"u-{n}", "event": "Viewed"}
            for n in range(30)
        ],
    )
    assert (SourceRecord.objects.count(), Identity.objects.count(), Event.objects.count()) == (
        60,
        90,
        30,
    )


@pytest.mark.parametrize(
    ("model", "rows"),
    [
        ("rawrecord", 60),
        ("sourcerecord", 60),
        ("identity", 90),
        ("event", 30),
    ],
)
def test_record_changelists_query_budget(
    admin_client, thirty_of_everything, django_assert_max_num_queries, model, rows
):
    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse(f"admin:profiles_{model}_changelist"))

    assert response.status_code == 200
    assert len(changelist_ids(response)) == rows


def test_merge_history_changelist_query_budget(admin_client, db, django_assert_max_num_queries):
    profiles = Profile.objects.bulk_create(Profile(first_name=f"P{n}") for n in range(30))
    MergeLog.objects.bulk_create(
        MergeLog(survivor=p, merged_ids=[10_000 + p.pk], reason="shared identifier", snapshot=[])
        for p in profiles
    )

    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("admin:profiles_mergelog_changelist"))

    assert len(changelist_ids(response)) == 30


def test_profile_redirect_changelist_query_budget(admin_client, db, django_assert_max_num_queries):
    profiles = Profile.objects.bulk_create(Profile(first_name=f"P{n}") for n in range(30))
    ProfileRedirect.objects.bulk_create(
        ProfileRedirect(old_id=10_000 + p.pk, profile=p) for p in profiles
    )

    with django_assert_max_num_queries(6):
        response = admin_client.get(reverse("admin:profiles_profileredirect_changelist"))

    assert len(changelist_ids(response)) == 30


def test_profile_page_query_budget_does_not_grow_with_records(
    admin_client, make_source, import_csv, django_assert_max_num_queries
):
    rows = "".join(f"C-{n},same@example.com,Name{n}\n" for n in range(20))
    import_csv(make_source(), "customer_id,email,first_name\n" + rows)
    profile = Profile.objects.get()
    assert profile.source_records.count() == 20

    with django_assert_max_num_queries(20):
        response = admin_client.get(reverse("admin:profiles_profile_change", args=[profile.pk]))

    assert response.status_code == 200
