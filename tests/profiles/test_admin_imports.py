"""The admin import workflow: upload, mapping with preview, start, progress, report, CSV."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from profiles.models import FieldMapping, ImportRun, Profile
from profiles.services.imports import import_run_create, import_run_execute, text_file

CONTENT = (
    "Kundennummer;E-Mail-Adresse;Vorname;Umsatz;Geburtsdatum\n"
    "00042;ann@example.de;<b>Ann</b>;1.234,50;31/01/1980\n"
    "00043;bob@@example.de;Bob;12,00;01/02/1990\n"
)


@pytest.fixture
def queued(monkeypatch):
    calls = []
    monkeypatch.setattr("cdp.jobs.async_task", lambda path, *args, group: calls.append(args))
    return calls


def upload(client, source, content=CONTENT, **extra):
    return client.post(
        reverse("admin:profiles_importrun_add"),
        {"source": source.pk, "file": SimpleUploadedFile("kunden.csv", content.encode()), **extra},
    )


def mapping_post(run, targets: dict[str, dict], **extra) -> dict:
    data = {
        "map-TOTAL_FORMS": str(len(targets)),
        "map-INITIAL_FORMS": str(len(targets)),
        "map-MIN_NUM_FORMS": "0",
        "map-MAX_NUM_FORMS": "1000",
        **extra,
    }
    for index, (column, values) in enumerate(targets.items()):
        data[f"map-{index}-column"] = column
        for key, value in values.items():
            data[f"map-{index}-{key}"] = value
    return data


MAPPING = {
    "Kundennummer": {"target": "customer_id", "is_key": "on", "number_locale": "en"},
    "E-Mail-Adresse": {"target": "email", "number_locale": "en"},
    "Vorname": {"target": "first_name", "number_locale": "en"},
    "Umsatz": {"target": "total_spent", "number_locale": "de"},
    "Geburtsdatum": {"target": "birth_date", "number_locale": "en"},
}


def test_upload_creates_a_draft_and_shows_the_suggested_mapping_with_a_preview(
    admin_client, make_source, queued
):
    source = make_source(name="crm")

    response = upload(admin_client, source)

    run = ImportRun.objects.get()
    assert run.status == "draft"
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:profiles_importrun_mapping", args=[run.pk])
    page = admin_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    forms = {f["column"].value(): f for f in page.context["formset"]}
    assert forms["E-Mail-Adresse"]["target"].value() == "email"
    assert forms["Vorname"]["target"].value() == "first_name"
    assert forms["Kundennummer"]["target"].value() == "customer_id"
    assert forms["Geburtsdatum"]["target"].value() == "birth_date"
    assert '<strong id="fmt-delimiter">;</strong>' in html
    assert '<strong id="fmt-rows">2</strong>' in html
    assert escape("<b>Ann</b>") in html and "<b>Ann</b>" not in html
    # Umsatz is suggested as total_spent, read with the decimal comma the column shows.
    assert forms["Umsatz"]["number_locale"].value() == "de"
    assert "total_spent = <code>1234.5</code>" in html
    assert "Geburtsdatum</strong>: day first" in html
    assert queued == [] and Profile.objects.count() == 0


def test_adjusted_mapping_previews_through_htmx_and_start_saves_it_and_queues_once(
    admin_client, make_source, queued, django_capture_on_commit_callbacks
):
    source = make_source(name="crm")
    upload(admin_client, source)
    run = ImportRun.objects.get()
    url = reverse("admin:profiles_importrun_mapping", args=[run.pk])

    partial = admin_client.post(url, mapping_post(run, MAPPING), headers={"HX-Request": "true"})

    assert partial.templates[0].name == "admin/profiles/importrun/_preview.html"
    html = partial.content.decode()
    assert "total_spent = <code>1234.5</code>" in html
    assert "birth_date = <code>1980-01-31</code>" in html
    assert "Rejected (invalid_email)" in html
    assert not FieldMapping.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        started = admin_client.post(url, mapping_post(run, MAPPING, start="1"))
        again = admin_client.post(url, mapping_post(run, MAPPING, start="1"))

    assert started.status_code == again.status_code == 302
    assert queued == [(run.pk,)]
    run.refresh_from_db()
    assert run.status == "queued"
    saved = {m.source_field: (m.target, m.number_locale, m.is_key) for m in source.mappings.all()}
    assert saved["Umsatz"] == ("total_spent", "de", False)
    assert saved["Kundennummer"] == ("customer_id", "en", True)


def test_a_date_not_in_the_chosen_format_is_rejected_naming_that_format_in_preview_and_run(
    admin_client, make_source, queued, django_capture_on_commit_callbacks
):
    content = (
        "Kundennummer;E-Mail-Adresse;Geburtsdatum\n"
        "00042;ann@example.de;31/01/1980\n"
        "00043;bob@example.de;31/02/1990\n"
        "00044;cem@example.de;1990-02-31\n"
    )
    source = make_source(name="crm")
    upload(admin_client, source, content)
    run = ImportRun.objects.get()
    url = reverse("admin:profiles_importrun_mapping", args=[run.pk])
    mapping = {
        "Kundennummer": {"target": "customer_id", "is_key": "on"},
        "E-Mail-Adresse": {"target": "email"},
        "Geburtsdatum": {"target": "birth_date", "date_format": "%d/%m/%Y"},
    }

    partial = admin_client.post(url, mapping_post(run, mapping), headers={"HX-Request": "true"})

    html = partial.content.decode()
    assert "birth_date = <code>1980-01-31</code>" in html
    assert (
        "Rejected (invalid_date): Geburtsdatum: &#x27;31/02/1990&#x27; is not a date in the "
        "format DD/MM/YYYY" in html
    )
    assert (
        "Rejected (invalid_date): Geburtsdatum: &#x27;1990-02-31&#x27; is not a date in the "
        "format DD/MM/YYYY (or ISO, YYYY-MM-DD)" in html
    )

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, mapping_post(run, mapping, start="1"))
    run = import_run_execute(run=run)

    assert (run.created_count, run.rejected_count, run.rejected_reasons) == (
        1,
        2,
        {"invalid_date": 2},
    )
    assert source.mappings.get(source_field="Geburtsdatum").date_format == "%d/%m/%Y"
    assert sorted(run.raw_records.exclude(error="").values_list("row_number", "error")) == [
        (2, "Geburtsdatum: '31/02/1990' is not a date in the format DD/MM/YYYY"),
        (
            3,
            "Geburtsdatum: '1990-02-31' is not a date in the format DD/MM/YYYY "
            "(or ISO, YYYY-MM-DD)",
        ),
    ]


def test_progress_partial_polls_while_running_and_shows_the_final_report(
    admin_client, make_source, queued, django_capture_on_commit_callbacks
):
    source = make_source(name="crm")
    upload(admin_client, source)
    run = ImportRun.objects.get()
    url = reverse("admin:profiles_importrun_mapping", args=[run.pk])
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, mapping_post(run, MAPPING, start="1"))
    progress_url = reverse("admin:profiles_importrun_progress", args=[run.pk])

    before = admin_client.get(progress_url).content.decode()
    import_run_execute(run=run)
    after = admin_client.get(progress_url).content.decode()
    change = admin_client.get(reverse("admin:profiles_importrun_change", args=[run.pk]))

    assert 'hx-trigger="every 1s"' in before and "Queued" in before
    assert 'hx-trigger="every 1s"' not in after
    assert '<strong id="import-status">Succeeded</strong>' in after
    assert "<tr><th>Created</th><td>1</td></tr>" in after
    assert "<tr><th>Rejected</th><td>1</td></tr>" in after
    assert "&nbsp;&nbsp;invalid_email</td><td>1</td>" in after
    assert 'id="import-progress"' in change.content.decode()
    csv_response = admin_client.get(reverse("admin:profiles_importrun_rejected_csv", args=[run.pk]))
    body = b"".join(csv_response.streaming_content).decode()
    assert csv_response["Content-Disposition"] == 'attachment; filename="kunden-rejected.csv"'
    assert body.splitlines() == [
        # The file's own delimiter: German Excel opens it in columns, "12,00" stays one value.
        "\ufeffKundennummer;E-Mail-Adresse;Vorname;Umsatz;Geburtsdatum;row;error",
        "00043;bob@@example.de;Bob;12,00;01/02/1990;2;E-Mail-Adresse: not a valid e-mail "
        "address: The part after the @-sign contains invalid characters: '@'.",
    ]


def test_progress_partial_carries_every_field_that_changes_while_the_run_goes(
    admin_client, make_source, queued, django_capture_on_commit_callbacks
):
    source = make_source(name="crm")
    upload(admin_client, source)
    run = ImportRun.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:profiles_importrun_mapping", args=[run.pk]),
            mapping_post(run, MAPPING, start="1"),
        )
    progress_url = reverse("admin:profiles_importrun_progress", args=[run.pk])
    change_url = reverse("admin:profiles_importrun_change", args=[run.pk])

    queued_page = admin_client.get(change_url).content.decode()
    before = admin_client.get(progress_url).content.decode()
    import_run_execute(run=run)
    after = admin_client.get(progress_url).content.decode()
    run.refresh_from_db()

    # The page shows the run's state only inside the polled fragment, never frozen below it.
    for field in ("status", "rows_done", "rows_total", "started_at", "finished_at", "error"):
        assert f"field-{field}" not in queued_page
    assert '<td id="import-started-at">-</td>' in before
    assert '<td id="import-rows-done">0</td>' in before
    started = timezone.localtime(run.started_at).strftime("%Y-%m-%d %H:%M:%S")
    finished = timezone.localtime(run.finished_at).strftime("%Y-%m-%d %H:%M:%S")
    assert '<strong id="import-status">Succeeded</strong>' in after
    assert '<td id="import-rows-done">2</td>' in after
    assert f'<td id="import-started-at">{started}</td>' in after
    assert f'<td id="import-finished-at">{finished}</td>' in after
    # What the scan found arrives with the run too (it may run after the page was opened).
    for field in ("encoding", "delimiter", "headers"):
        assert f"field-{field}" not in queued_page
    assert '<td id="import-encoding">utf-8</td>' in after
    assert '<td id="import-delimiter">Semicolon ;</td>' in after
    assert (
        '<td id="import-headers">Kundennummer, E-Mail-Adresse, Vorname, Umsatz, Geburtsdatum</td>'
        in after
    )
    assert "All rejected rows of this import" in after  # the first-50 table arrives with the end
    assert "All rejected rows of this import" not in before


def test_a_marketer_cannot_see_imports_or_download_rejected_rows(client, make_source):
    source = make_source(name="crm")
    run = ImportRun.objects.create(source=source, original_name="x.csv", status="succeeded")
    user = User.objects.create_user("mia", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketer"))
    client.force_login(user)

    csv_response = client.get(reverse("admin:profiles_importrun_rejected_csv", args=[run.pk]))
    mapping = client.get(reverse("admin:profiles_importrun_mapping", args=[run.pk]))

    assert (csv_response.status_code, mapping.status_code) == (403, 403)


def test_a_data_engineer_can_upload(client, make_source, queued):
    source = make_source(name="crm")
    user = User.objects.create_user("dan", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Data Engineer"))
    client.force_login(user)

    response = upload(client, source)

    assert response.status_code == 302
    assert ImportRun.objects.get().created_by == user


def test_unreadable_file_goes_back_to_upload_with_a_message(admin_client, make_source):
    source = make_source(name="crm")
    upload(admin_client, source, content=" \n", encoding="")
    run = ImportRun.objects.get()

    response = admin_client.get(
        reverse("admin:profiles_importrun_mapping", args=[run.pk]), follow=True
    )

    assert "The file cannot be read: The file is empty." in response.content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_upload_map_start_and_watch_the_progress_bar(live_server, make_source, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    make_source(name="crm")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}{reverse('admin:profiles_importrun_add')}")
        page.select_option("#id_source", label="crm")
        page.set_input_files(
            "#id_file",
            files=[{"name": "kunden.csv", "mimeType": "text/csv", "buffer": CONTENT.encode()}],
        )
        page.click("input[type=submit]")
        # The decimal comma the column shows is suggested.
        expect(page.locator("#preview-table")).to_contain_text("total_spent = 1234.5")
        expect(page.locator("#number-locales")).to_contain_text("Umsatz: decimal comma")
        # htmx binds its triggers once the page has loaded (its script is deferred): a change
        # made before that would send nothing (seen on a loaded machine).
        page.wait_for_load_state("load")
        page.wait_for_function("() => window.htmx !== undefined")
        # Changing the number format swaps in a new preview through htmx, no page load.
        row = page.locator("tr[data-column='Umsatz']")
        row.locator("select[name$='-number_locale']").select_option("en")
        expect(page.locator("#preview-table")).to_contain_text("is not a number", timeout=10_000)
        row.locator("select[name$='-number_locale']").select_option("de")
        expect(page.locator("#preview-table")).to_contain_text(
            "total_spent = 1234.5", timeout=10_000
        )
        page.click("input[name=start]")
        expect(page.locator("#import-status")).to_have_text("Queued")
        run = ImportRun.objects.get()
        import_run_execute(run=run)
        # The polling picks up the finished run without a reload.
        expect(page.locator("#import-status")).to_have_text("Succeeded", timeout=10_000)
        expect(page.locator("#import-report")).to_contain_text("invalid_email")
        assert page.locator("#rejected-csv").is_visible()
        browser.close()
    assert Profile.objects.get().attributes["total_spent"] == 1234.5


def test_progress_bar_advances_batch_by_batch_while_the_run_runs(
    admin_client, make_source, queued, django_capture_on_commit_callbacks, monkeypatch
):
    from profiles.services import imports

    source = make_source(name="crm")
    content = "email\n" + "".join(f"u{i}@example.de\n" for i in range(5))
    upload(admin_client, source, content)
    run = ImportRun.objects.get()
    url = reverse("admin:profiles_importrun_mapping", args=[run.pk])
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, mapping_post(run, {"email": {"target": "email"}}, start="1"))
    progress_url = reverse("admin:profiles_importrun_progress", args=[run.pk])
    seen = []
    original = imports._import_batch

    def batch_then_poll(state, batch):
        original(state, batch)
        # What the htmx poll shows between two batches of the running import.
        seen.append(admin_client.get(progress_url).content.decode())

    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    monkeypatch.setattr(imports, "_import_batch", batch_then_poll)
    import_run_execute(run=run)

    assert len(seen) == 3
    assert all('hx-trigger="every 1s"' in html and "Running" in html for html in seen)
    assert ['aria-valuenow="40"' in seen[0], 'aria-valuenow="80"' in seen[1]] == [True, True]
    assert "2 of 5 rows (40%)" in seen[0] and "4 of 5 rows (80%)" in seen[1]
    assert "5 of 5 rows (100%)" in seen[2]
    final = admin_client.get(progress_url).content.decode()
    assert 'hx-trigger="every 1s"' not in final and "Succeeded" in final


def test_data_engineer_maps_a_custom_trait_transform_and_identity_type(
    admin_client, make_source, queued, django_capture_on_commit_callbacks
):
    source = make_source(name="crm")
    upload(admin_client, source)
    run = ImportRun.objects.get()
    url = reverse("admin:profiles_importrun_mapping", args=[run.pk])
    mapping = {
        **MAPPING,
        "Kundennummer": {"target": "__trait__", "trait": "Kunden Nr", "is_key": "on",
                         "identifier_type": "customer_id", "number_locale": "en"},
        "Vorname": {"target": "last_name", "transform": "upper", "number_locale": "en"},
        "Geburtsdatum": {"target": "__skip__", "number_locale": "en"},
    }  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, mapping_post(run, mapping, start="1"))
    import_run_execute(run=run)

    saved = {
        m.source_field: (m.target, m.transform, m.identifier_type, m.is_key)
        for m in source.mappings.all()
    }
    assert saved == {
        "Kundennummer": ("trait:kunden_nr", "", "customer_id", True),
        "E-Mail-Adresse": ("email", "", "", False),
        "Vorname": ("last_name", "upper", "", False),
        "Umsatz": ("total_spent", "", "", False),
    }
    profile = Profile.objects.get()
    assert profile.last_name == "<B>ANN</B>"
    assert "birth_date" not in profile.attributes
    record = profile.source_records.get()
    assert (record.external_key, record.traits) == ("00042", {"kunden_nr": "00042"})
    assert list(profile.identities.filter(type="customer_id").values_list("key", flat=True)) == [
        "00042"
    ]


# --- one column per attribute ------------------------------------------------------------------

CONTACTS = (
    "Kundennummer;E-Mail;Telefon;Zweit-E-Mail\n"
    "00042;ann@example.de;030 123456;ann.private@example.com\n"
)


def test_two_columns_mapped_to_one_attribute_are_refused_naming_both_and_nothing_is_saved(
    admin_client, make_source, queued, django_capture_on_commit_callbacks
):
    source = make_source(name="crm")
    upload(admin_client, source, content=CONTACTS)
    run = ImportRun.objects.get()
    url = reverse("admin:profiles_importrun_mapping", args=[run.pk])
    mapping = {
        "Kundennummer": {"target": "customer_id", "is_key": "on", "number_locale": "en"},
        "E-Mail": {"target": "email", "number_locale": "en"},
        "Telefon": {"target": "email", "number_locale": "en"},
        "Zweit-E-Mail": {"target": "__trait__", "trait": "email_2", "number_locale": "en"},
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, mapping_post(run, mapping, start="1"))

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("E-Mail and Telefon are both mapped to E-mail (email)") == 1
    partial = admin_client.post(url, mapping_post(run, mapping), headers={"HX-Request": "true"})
    assert 'id="mapping-errors"' in partial.content.decode()
    assert "E-Mail and Telefon are both mapped to E-mail (email)" in partial.content.decode()
    assert not FieldMapping.objects.exists()
    run.refresh_from_db()
    assert (run.status, queued) == ("draft", [])


def test_several_email_columns_are_identities_one_canonical_the_others_traits(
    admin_client, make_source, queued, django_capture_on_commit_callbacks
):
    source = make_source(name="crm")
    upload(admin_client, source, content=CONTACTS)
    run = ImportRun.objects.get()
    url = reverse("admin:profiles_importrun_mapping", args=[run.pk])
    mapping = {
        "Kundennummer": {"target": "customer_id", "is_key": "on", "number_locale": "en"},
        "E-Mail": {"target": "email", "number_locale": "en"},
        "Telefon": {"target": "phone", "number_locale": "en"},
        "Zweit-E-Mail": {"target": "__trait__", "trait": "email_2", "identifier_type": "email",
                         "number_locale": "en"},
    }  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, mapping_post(run, mapping, start="1"))
    import_run_execute(run=run)

    profile = Profile.objects.get()
    emails = sorted(profile.identities.filter(type="email").values_list("key", flat=True))
    assert emails == ["ann.private@example.com", "ann@example.de"]
    assert profile.email == "ann@example.de"


def test_two_columns_mapped_to_one_custom_trait_are_refused(admin_client, make_source, queued):
    source = make_source(name="crm")
    upload(admin_client, source, content=CONTACTS)
    run = ImportRun.objects.get()
    url = reverse("admin:profiles_importrun_mapping", args=[run.pk])
    mapping = {
        "Kundennummer": {"target": "customer_id", "is_key": "on", "number_locale": "en"},
        "E-Mail": {"target": "email", "number_locale": "en"},
        "Telefon": {"target": "__trait__", "trait": "contact", "number_locale": "en"},
        "Zweit-E-Mail": {"target": "__trait__", "trait": "Contact", "number_locale": "en"},
    }

    response = admin_client.post(url, mapping_post(run, mapping, start="1"))

    assert "Telefon and Zweit-E-Mail are both mapped to the custom trait contact" in (
        response.content.decode()
    )
    assert not FieldMapping.objects.exists()


# --- number format -------------------------------------------------------------------------

CRM_CP1252 = (
    "Vorname;E-Mail;Umsatz;Kundennummer\n"
    "Jürgen;juergen@example.de;1.234,56;K-1001\n"
    "Anna;anna@example.at;12,5;K-1002\n"
    "Eva;eva@example.de;nope;K-1003\n"
).encode("cp1252")


def test_decimal_comma_is_suggested_from_the_file_shown_in_the_preview_and_changeable(
    admin_client, make_source, queued
):
    source = make_source(name="crm")
    admin_client.post(
        reverse("admin:profiles_importrun_add"),
        {"source": source.pk, "file": SimpleUploadedFile("crm.csv", CRM_CP1252)},
    )
    run = ImportRun.objects.get()
    url = reverse("admin:profiles_importrun_mapping", args=[run.pk])

    page = admin_client.get(url)

    html = page.content.decode()
    forms = {f["column"].value(): f for f in page.context["formset"]}
    assert (run.status, forms["Umsatz"]["number_locale"].value()) == ("draft", "de")
    assert "<strong>Umsatz</strong>: decimal comma (1.234,50), suggested by the column" in html
    assert "total_spent = <code>1234.56</code>" in html
    assert "total_spent = <code>12.5</code>" in html
    assert "Rejected (invalid_number): Umsatz: &#x27;nope&#x27; is not a number" in html

    mapping = {
        "Vorname": {"target": "first_name"},
        "E-Mail": {"target": "email"},
        "Umsatz": {"target": "total_spent", "number_locale": "en"},
        "Kundennummer": {"target": "customer_id", "is_key": "on"},
    }
    partial = admin_client.post(url, mapping_post(run, mapping), headers={"HX-Request": "true"})

    html = partial.content.decode()
    assert "Rejected (invalid_number): Umsatz: &#x27;1.234,56&#x27; is not a number" in html
    assert "the mapping reads it with a decimal point" in html


# --- suppressed rows -----------------------------------------------------------------------


def test_the_run_page_and_list_show_the_suppressed_count(admin_client, make_source):
    from consent.services.suppression import suppression_add

    suppression_add(keys=[("email", "ann@example.de")])
    source = make_source(name="crm")
    run = import_run_create(
        source=source,
        file=text_file("email;first_name\nann@example.de;Ann\nbob@example.de;Bob\n", "k.csv"),
        sync=True,
    )

    page = admin_client.get(reverse("admin:profiles_importrun_change", args=[run.pk]))
    listing = admin_client.get(reverse("admin:profiles_importrun_changelist"))

    assert (run.created_count, run.suppressed_count) == (1, 1)
    assert page.context["report"]["suppressed"] == 1
    assert '<td id="import-suppressed">1</td>' in page.content.decode()
    assert '<td class="field-suppressed_count">1</td>' in listing.content.decode()


# --- custom traits become known from applied rows only -------------------------------------


def test_traits_of_a_fully_rejected_file_do_not_reach_the_segment_builder(
    admin_client, make_source, queued, django_capture_on_commit_callbacks
):
    source = make_source(name="crm")
    builder = reverse("admin:segments_builder")

    def import_via_admin(content: str, mapping: dict) -> ImportRun:
        upload(admin_client, source, content=content)
        run = ImportRun.objects.filter(status="draft").get()
        url = reverse("admin:profiles_importrun_mapping", args=[run.pk])
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(url, mapping_post(run, mapping, start="1"))
        return import_run_execute(run=run)

    junk = import_via_admin(
        "email;\x01\x02junk\nnot-an-email;\x03\nalso@@bad;\x04\n",
        {"email": {"target": "email"}, "\x01\x02junk": {"target": "__trait__", "trait": "xjunk"}},
    )
    assert (junk.created_count, junk.rejected_count) == (0, 2)
    assert 'data-key="trait:xjunk"' not in admin_client.get(builder).content.decode()

    kept = import_via_admin(
        "email;Tier\nann@example.de;gold\n",
        {"email": {"target": "email"}, "Tier": {"target": "__trait__", "trait": "tier"}},
    )
    assert kept.created_count == 1
    html = admin_client.get(builder).content.decode()
    assert 'data-key="trait:tier"' in html and 'data-key="trait:xjunk"' not in html


def test_rejected_rows_csv_never_hands_a_spreadsheet_a_formula(
    admin_client, make_source, import_csv
):
    source = make_source(name="crm")
    content = (
        "customer_id,first_name,email,phone\n"
        'C-1,"=HYPERLINK(""http://evil.example"",""click"")",not-an-email,+49 30 1234567\n'
    )
    mappings = [("customer_id", "customer_id"), ("first_name", "first_name")]
    mappings += [("email", "email"), ("phone", "phone")]
    for column, target in mappings:
        FieldMapping.objects.create(source=source, source_field=column, target=target)
    run = import_csv(source, content)

    response = admin_client.get(reverse("admin:profiles_importrun_rejected_csv", args=[run.pk]))
    lines = b"".join(response.streaming_content).decode().splitlines()

    assert run.rejected_count == 1
    assert lines[1].startswith(
        'C-1,"\'=HYPERLINK(""http://evil.example"",""click"")",not-an-email,'
    )
    assert ",+49 30 1234567,1,email: not a valid e-mail address" in lines[1]
