"""Shared fixtures. Fixtures that build objects return a function taking overrides."""

from __future__ import annotations

import pytest

from profiles.models import DataSource
from profiles.services.imports import import_run_create, text_file

SHOPIFY_HEADER = (
    "First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,"
    "Default Address Address1,Default Address Address2,Default Address City,"
    "Default Address Province Code,Default Address Country Code,Default Address Zip,"
    "Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,"
    "Tax Exempt,Tags"
)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def make_source(db):
    def make(**overrides) -> DataSource:
        values = {"name": f"source-{DataSource.objects.count() + 1}", "kind": "file"}
        values.update(overrides)
        return DataSource.objects.create(**values)

    return make


@pytest.fixture
def import_csv(db):
    """Import CSV text into a source inline and return the finished run."""

    def run(source: DataSource, content: str | bytes, name: str = "upload.csv"):
        return import_run_create(source=source, file=text_file(content, name), sync=True)

    return run


def shopify_row(**values: str) -> str:
    """One Shopify export line; columns not given are empty."""
    columns = SHOPIFY_HEADER.split(",")
    cells = []
    for column in columns:
        value = values.get(column, "")
        if any(ch in value for ch in ',"\n'):
            value = '"' + value.replace('"', '""') + '"'
        cells.append(value)
    return ",".join(cells)


def shopify_csv(*rows: str) -> str:
    """A Shopify customer export: the header line and the given lines (see ``shopify_row``)."""
    return "\n".join([SHOPIFY_HEADER, *rows]) + "\n"
