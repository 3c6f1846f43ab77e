"""The tables every import row and tracking message writes carry no redundant index.

A single-column index on a column that a composite index already leads with costs every
insert and update, and on a table whose statistics lag behind its growth (a new install's
first minute) PostgreSQL picked such an index for the messageId lookup instead of the unique
(source, message_id) index: 7 ms instead of 0.5 ms per batch (docs/ingestion.md).
"""

import pytest
from django.db import connection

INGEST_TABLES = [
    "profiles_rawrecord",
    "profiles_sourcerecord",
    "profiles_identity",
    "profiles_event",
]


def _indexes(table: str) -> dict[str, tuple[list[str], bool]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {
        name: (info["columns"], bool(info["unique"]))
        for name, info in constraints.items()
        if (info["index"] or info["unique"]) and not info["primary_key"]
    }


def _redundant(indexes: dict[str, tuple[list[str], bool]]) -> list[tuple[str, str]]:
    found = []
    for name, (columns, unique) in indexes.items():
        if unique:
            continue
        for other, (other_columns, _unique) in indexes.items():
            if other != name and other_columns[: len(columns)] == columns:
                found.append((name, other))
                break
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("table", INGEST_TABLES)
def test_no_index_is_a_prefix_of_another_on_ingest_tables(table):
    indexes = _indexes(table)
    assert _redundant(indexes) == []
    # The lookups the redundant indexes served are still indexed, as leading columns.
    leading = {columns[0] for columns, _unique in indexes.values() if columns}
    expected = {
        "profiles_rawrecord": {"source_id", "import_run_id", "source_record_id"},
        "profiles_sourcerecord": {"source_id", "profile_id"},
        "profiles_identity": {"source_record_id", "profile_id", "key"},
        "profiles_event": {"source_id", "profile_id", "raw_record_id", "source_record_id"},
    }[table]
    assert leading == expected


def test_the_prefix_rule_finds_a_single_column_index_a_composite_leads_with():
    indexes = {
        "a_source": (["source_id"], False),
        "a_source_status": (["source_id", "status"], False),
        "a_uniq": (["source_id", "message_id"], True),
        "a_status": (["status"], False),
    }
    assert _redundant(indexes) == [("a_source", "a_source_status")]
