"""``__among``: the same rows as ``__in``, one array parameter on PostgreSQL."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from profiles.models import DataSource, Identity, SourceRecord


@pytest.fixture
def records(db):
    source = DataSource.objects.create(name="shop")
    made = [SourceRecord.objects.create(source=source, external_key=key) for key in ("a", "b", "c")]
    for record, key in zip(made, ("x@example.com", "y@example.com", None), strict=True):
        Identity.objects.create(type="email", raw_value=key or "?", key=key, source_record=record)
    return made


def test_among_selects_what_in_selects(records):
    a, b, c = records
    assert list(SourceRecord.objects.filter(pk__among=[c.pk, a.pk, a.pk, None]).order_by("pk")) == [
        a,
        c,
    ]
    assert list(SourceRecord.objects.filter(external_key__among=["b", "zz"])) == [b]
    # Relations: by id, and through the relation's own name.
    by_fk = Identity.objects.filter(source_record_id__among=[b.pk, c.pk]).order_by("pk")
    assert [i.source_record_id for i in by_fk] == [b.pk, c.pk]
    assert Identity.objects.filter(source_record__among=[a.pk]).get().key == "x@example.com"
    assert [i.key for i in Identity.objects.filter(key__among=["y@example.com", None])] == [
        "y@example.com"
    ]


def test_among_empty_list_matches_nothing_without_a_query(records):
    with CaptureQueriesContext(connection) as queries:
        assert list(SourceRecord.objects.filter(pk__among=[])) == []
        assert list(SourceRecord.objects.filter(pk__among=[None])) == []
    assert len(queries) == 0


def test_among_sends_one_parameter_on_postgresql(records):
    ids = [r.pk for r in records]
    with CaptureQueriesContext(connection) as queries:
        assert SourceRecord.objects.filter(pk__among=ids).count() == 3
    sql = queries[0]["sql"]
    if connection.vendor == "postgresql":
        assert "= ANY(" in sql and "::bigint[]" in sql
    else:
        assert " IN (" in sql


def test_among_compares_long_values_whole(records):
    """A value longer than the column is never cut to the column's length to match."""
    Identity.objects.filter(key="x@example.com").update(key="k" * 320)
    assert not Identity.objects.filter(key__among=["k" * 321]).exists()
    assert not Identity.objects.filter(key__in=["k" * 321]).exists()
    assert Identity.objects.filter(key__among=["k" * 320]).count() == 1
