"""Management commands: create_source and import_csv."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from profiles.models import DataSource, ImportRun, Profile
from tests.conftest import shopify_csv, shopify_row


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_source_api_prints_the_stored_write_key(db):
    output = run("create_source", "website", "--kind", "api", "--region", "de")

    source = DataSource.objects.get(name="website")
    assert (source.kind, source.default_region) == ("api", "DE")
    assert len(source.write_key) == 32
    printed = re.search(r"^Write key: (\S+)$", output, re.MULTILINE)
    assert printed is not None
    assert printed.group(1) == source.write_key
    assert output.startswith(f"Created source website (id {source.pk}, api).")


def test_create_source_file_has_no_write_key(db):
    output = run("create_source", "shop", "--preset", "shopify", "--priority", "5")

    source = DataSource.objects.get(name="shop")
    assert (source.kind, source.preset, source.priority, source.write_key) == (
        "file",
        "shopify",
        5,
        None,
    )
    assert "Write key" not in output


def test_create_source_twice_is_an_error(db):
    run("create_source", "shop")

    with pytest.raises(CommandError, match="A source named 'shop' exists already."):
        run("create_source", "shop")


def test_import_csv_sync_prints_the_counts(db, tmp_path):
    DataSource.objects.create(name="shop")
    path = tmp_path / "customers_export.csv"
    path.write_text(
        shopify_csv(
            shopify_row(**{"First Name": "Ann", "Email": "ann@example.com"}),
            shopify_row(**{"First Name": "Bob", "Email": "bob@example.com"}),
            shopify_row(**{"First Name": "Bad", "Email": "bad@@example.com"}),
        )
    )

    first = run("import_csv", "--source", "shop", "--preset", "shopify", "--sync", str(path))
    second = run("import_csv", "--source", "shop", "--preset", "shopify", "--sync", str(path))

    one, two = ImportRun.objects.order_by("pk")
    assert first.strip() == (
        f"Import #{one.pk} succeeded: read 3, created 2, updated 0, unchanged 0, rejected 1, "
        "suppressed 0."
    )
    assert second.strip() == (
        f"Import #{two.pk} succeeded: read 3, created 0, updated 0, unchanged 2, rejected 1, "
        "suppressed 0."
    )
    source = DataSource.objects.get(name="shop")
    assert (source.kind, source.preset) == ("file", "shopify")
    assert sorted(Profile.objects.values_list("first_name", flat=True)) == ["Ann", "Bob"]
    assert one.original_name == "customers_export.csv"


def test_import_csv_without_sync_only_queues(db, tmp_path, monkeypatch):
    queued = []
    monkeypatch.setattr("cdp.jobs.async_task", lambda path, *args, group: queued.append(args))
    DataSource.objects.create(name="crm")
    path = tmp_path / "a.csv"
    path.write_text("email\nann@example.com\n")

    output = run("import_csv", "--source", "crm", str(path))

    run_row = ImportRun.objects.get()
    assert output.strip() == f"Import #{run_row.pk} queued; a qcluster worker will run it."
    assert run_row.status == "queued"
    assert Profile.objects.count() == 0


def test_import_csv_into_an_api_source_is_an_error(db, tmp_path):
    DataSource.objects.create(name="website", kind="api")
    path = tmp_path / "a.csv"
    path.write_text("email\nann@example.com\n")

    with pytest.raises(CommandError, match="'website' is an API source"):
        run("import_csv", "--source", "website", "--sync", str(path))
    assert ImportRun.objects.count() == 0


def test_import_csv_into_an_unknown_source_is_an_error_naming_the_known_ones(db, tmp_path):
    DataSource.objects.create(name="Shopify", preset="shopify")
    DataSource.objects.create(name="CRM")
    DataSource.objects.create(name="Website", kind="api")
    path = tmp_path / "a.csv"
    path.write_text("email\nann@example.com\n")

    with pytest.raises(CommandError) as error:
        run("import_csv", "--source", "Nope", "--sync", str(path))

    assert str(error.value) == (
        "No source named 'Nope'. File sources: CRM, Shopify. Give --create-source to create it."
    )
    assert sorted(DataSource.objects.values_list("name", flat=True)) == [
        "CRM",
        "Shopify",
        "Website",
    ]
    assert ImportRun.objects.count() == 0


def test_import_csv_with_create_source_creates_a_missing_source(db, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("email\nann@example.com\n")

    output = run(
        "import_csv", "--source", "crm", "--create-source", "--region", "de", "--sync", str(path)
    )

    source = DataSource.objects.get(name="crm")
    assert (source.kind, source.default_region) == ("file", "DE")
    assert output.startswith(f"Created source crm (id {source.pk}).\nImport #")
    assert Profile.objects.count() == 1


def test_import_csv_missing_file_is_an_error(db, tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        run("import_csv", "--source", "shop", str(tmp_path / "missing.csv"))


def test_import_csv_of_an_unreadable_file_fails_with_its_error(db, tmp_path):
    DataSource.objects.create(name="shop")
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(CommandError, match="The file cannot be read: The file is empty."):
        run("import_csv", "--source", "shop", "--sync", str(path))
    assert ImportRun.objects.get().status == "failed"
