"""Shopify orders export -> RawRecords, Order Completed / Order Refunded events, insights."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from insights.models import InsightRun, ProfileInsight
from insights.services.compute import insights_compute_full
from profiles.models import DataSource, Event, Profile, RawRecord
from profiles.services.imports import text_file
from profiles.services.orders import SHOPIFY_ORDER_COLUMNS, orders_import
from profiles.services.tracking import tracking_messages_ingest


def orders_csv(*rows: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SHOPIFY_ORDER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in SHOPIFY_ORDER_COLUMNS})
    return out.getvalue()


def head(name, email, status, total, created, **more):
    return {
        "Name": name,
        "Email": email,
        "Financial Status": status,
        "Currency": "EUR",
        "Total": total,
        "Subtotal": total,
        "Created at": created,
        "Paid at": created,
        **more,
    }


def line(name, item, price, quantity="1", **more):
    return {
        "Name": name,
        "Lineitem name": item,
        "Lineitem price": price,
        "Lineitem quantity": quantity,
        **more,
    }


EXPORT = [
    {
        **head(
            "#1001",
            "Ann@Example.com",
            "paid",
            "59.90",
            "2026-05-01 10:00:00 +0200",
            Phone="+49 30 1234567",
        ),
        **line("#1001", "Mug", "19.95", "2", **{"Lineitem sku": "M-1"}),
    },
    line("#1001", "Tea", "20.00"),
    {
        **head(
            "#1002",
            "ann@example.com",
            "partially_refunded",
            "100.00",
            "2026-05-03 09:00:00 +0200",
            **{"Refunded Amount": "30.00"},
        ),
        **line("#1002", "Pot", "100"),
    },
    {
        **head(
            "#1003",
            "bob@example.com",
            "refunded",
            "20.00",
            "2026-05-04 09:00:00 +0200",
            **{"Refunded Amount": "20.00"},
        ),
        **line("#1003", "Cup", "20"),
    },
    {
        **head("#1004", "carl@example.com", "voided", "15.00", "2026-05-05 09:00:00 +0200"),
        **line("#1004", "Spoon", "15"),
    },
    {
        **head("#1005", "not-an-email", "paid", "15.00", "2026-05-05 09:00:00 +0200"),
        **line("#1005", "Spoon", "15"),
    },
    {**head("", "dora@example.com", "paid", "15.00", "2026-05-05 09:00:00 +0200")},
]


@pytest.fixture
def shop(db):
    return DataSource.objects.create(name="Shop orders", preset="shopify_orders")


def run_import(shop, rows):
    return orders_import(source=shop, file=text_file(orders_csv(*rows), "orders_export.csv"))


def test_orders_land_verbatim_and_become_spec_events(shop):
    web = DataSource.objects.create(name="web", kind=DataSource.Kind.API)
    tracking_messages_ingest(
        source=web,
        messages=[{"type": "identify", "userId": "u-ann", "traits": {"email": "ANN@example.com"}}],
    )
    ann = Profile.objects.get()
    run = run_import(shop, EXPORT)
    assert (run.status, run.rows_done, run.created_count, run.rejected_count) == (
        "succeeded",
        7,
        5,
        2,
    )
    assert RawRecord.objects.filter(import_run=run).count() == 7
    assert RawRecord.objects.get(import_run=run, row_number=2).payload["Lineitem name"] == "Tea"
    errors = dict(
        RawRecord.objects.filter(import_run=run, status="rejected").values_list(
            "row_number", "error"
        )
    )
    assert errors[6].startswith("Email:") and errors[7] == "Name (the order number) is empty"
    voided = RawRecord.objects.get(import_run=run, row_number=5)
    assert (voided.status, voided.error) == (
        "accepted",
        "not a completed order (financial status is not paid)",
    )

    first = Event.objects.get(message_id="shopify-order:#1001")
    assert first.name == "Order Completed" and first.profile_id == ann.pk
    assert first.timestamp == datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    assert first.properties["total"] == 59.9 and first.properties["currency"] == "EUR"
    assert first.properties["products"] == [
        {"name": "Mug", "sku": "M-1", "price": 19.95, "quantity": 2},
        {"name": "Tea", "sku": "", "price": 20.0, "quantity": 1},
    ]
    refund = Event.objects.get(message_id="shopify-refund:#1002")
    assert (refund.name, refund.properties["total"], refund.profile_id) == (
        "Order Refunded",
        30.0,
        ann.pk,
    )
    assert not Event.objects.filter(message_id="shopify-order:#1004").exists()
    assert Event.objects.filter(profile=ann, name="Order Completed").count() == 2


def test_reimport_is_harmless_and_picks_up_later_refunds(shop):
    run_import(shop, EXPORT)
    again = run_import(shop, EXPORT)
    assert (again.created_count, again.updated_count, again.unchanged_count) == (0, 0, 5)
    assert Event.objects.count() == 5
    later = [
        dict(EXPORT[0], **{"Financial Status": "refunded", "Refunded Amount": "59.90"}),
        *EXPORT[1:],
    ]
    third = run_import(shop, later)
    assert (third.created_count, third.updated_count, third.unchanged_count) == (1, 1, 4)
    assert Event.objects.get(message_id="shopify-refund:#1001").properties["total"] == 59.9


def test_imported_orders_feed_insights(shop):
    run_import(shop, EXPORT)
    insights_compute_full(
        run=InsightRun.objects.create(kind="full"), now=datetime(2026, 6, 1, tzinfo=UTC)
    )
    ann = ProfileInsight.objects.get(profile__identities__key="ann@example.com")
    # 59.90 + (100 - 30); bob's only order was refunded in full: no orders left.
    assert (ann.order_count, ann.revenue, ann.refunded) == (2, Decimal("129.90"), Decimal("30.00"))
    bob = ProfileInsight.objects.get(profile__identities__key="bob@example.com")
    assert (bob.order_count, bob.revenue, bob.refunded) == (0, Decimal("0.00"), Decimal("20.00"))


def test_a_file_that_is_not_an_orders_export_fails_with_a_reason(shop):
    run = orders_import(source=shop, file=text_file("First Name,Email\nA,a@b.c\n", "c.csv"))
    assert run.status == "failed"
    assert run.error == (
        "This is not a Shopify orders export: missing column(s) Name, Financial Status, "
        "Currency, Total, Created at"
    )


def test_an_order_split_across_batches_keeps_all_its_lines(shop, monkeypatch):
    monkeypatch.setattr("profiles.services.orders.BATCH_SIZE", 1)
    run = run_import(shop, EXPORT[:2])
    assert (run.rows_done, run.rejected_count) == (2, 0)
    products = Event.objects.get(message_id="shopify-order:#1001").properties["products"]
    assert [p["name"] for p in products] == ["Mug", "Tea"]


def test_orders_of_an_erased_person_are_dropped_and_keep_no_payload(shop):
    """An order file must not bring back someone who was erased (suppression list)."""
    from consent.services.suppression import suppression_add

    suppression_add(keys=[("email", "ann@example.com")])
    run = run_import(shop, EXPORT)
    assert run.status == "succeeded", run.error
    # Ann's three rows (#1001 twice, #1002) are suppressed; Bob's order is imported.
    assert run.suppressed_count == 3
    ann_rows = RawRecord.objects.filter(import_run=run, status=RawRecord.Status.SUPPRESSED)
    assert sorted(ann_rows.values_list("row_number", flat=True)) == [1, 2, 3]
    assert list(ann_rows.values_list("payload", flat=True)) == [{}, {}, {}]
    assert not Profile.objects.filter(email__iexact="ann@example.com").exists()
    assert not RawRecord.objects.filter(payload__Email__iexact="ann@example.com").exists()
    names = sorted(e.properties["order_id"] for e in Event.objects.all())
    assert "#1001" not in names and "#1002" not in names
    assert "#1003" in names


def test_a_windows_1252_export_with_a_stray_undefined_byte_imports(shop):
    """Byte 0x81 is undefined in Windows-1252: the file is read as file imports read it
    (Windows-1252, Latin-1 for the five undefined bytes), not left running with a traceback."""
    rows = [{**head("#2001", "zoe@example.com", "paid", "10.00", "2026-05-01 10:00:00 +0200"),
             **line("#2001", "Caf\x81 \u20ac", "10.00")}]  # fmt: skip
    data = orders_csv(*rows).encode("cp1252", errors="ignore").replace(b"Caf", b"Caf\x81")
    assert b"\x81" in data and b"\x80" in data  # the euro sign is 0x80 in Windows-1252
    run = orders_import(source=shop, file=text_file(data, "orders_export.csv"))
    assert (run.status, run.rows_done, run.created_count) == ("succeeded", 1, 1)
    products = Event.objects.get(message_id="shopify-order:#2001").properties["products"]
    assert products[0]["name"] == "Caf\x81 \u20ac"
