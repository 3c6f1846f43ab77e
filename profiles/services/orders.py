"""Order imports: a Shopify orders export becomes `Order Completed` (and `Order Refunded`) events.

Every row is stored verbatim as a RawRecord first (committed before anything can fail). Shopify
writes one row per line item; the order-level columns are filled on the order's first row only,
so rows are grouped by ``Name`` (#1001). Each order yields:

- a source record per customer, keyed by the normalised e-mail, with the e-mail and phone as
  identities, so resolution attaches the order to the person's profile;
- an ``Order Completed`` event with messageId ``shopify-order:<Name>`` (Segment e-commerce spec:
  order_id, total, subtotal, shipping, tax, discount, currency, products);
- for refunded orders an ``Order Refunded`` event, messageId ``shopify-refund:<Name>``, with the
  refunded amount (without one, the whole order).

Message ids are deterministic, so importing the same or a later export again updates those
events in place instead of adding orders. Orders that were never paid (pending, authorized,
voided, expired) produce no event; their rows are accepted with a note saying so.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.core.files.base import File
from django.db import transaction
from django.utils import timezone

from cdp.normalize import IdentifierTypes, InvalidValue, clean_text, identifier_key
from consent.services.suppression import suppression_check
from profiles.models import DataSource, Event, ImportRun, RawRecord
from profiles.services.imports import CP1252_LATIN1
from profiles.services.loyalty import loyalty_events_ingested
from profiles.services.mapping import MappedIdentity, MappedRecord, stable_hash
from profiles.services.records import source_records_upsert
from profiles.services.resolution import profiles_resolve

logger = logging.getLogger(__name__)

PRESET = "shopify_orders"
# The columns of Shopify's orders export (Admin > Orders > Export), in its order.
SHOPIFY_ORDER_COLUMNS = [
    "Name",
    "Email",
    "Financial Status",
    "Paid at",
    "Fulfillment Status",
    "Fulfilled at",
    "Accepts Marketing",
    "Currency",
    "Subtotal",
    "Shipping",
    "Taxes",
    "Total",
    "Discount Code",
    "Discount Amount",
    "Shipping Method",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem compare at price",
    "Lineitem sku",
    "Lineitem requires shipping",
    "Lineitem taxable",
    "Lineitem fulfillment status",
    "Billing Name",
    "Billing Street",
    "Billing Address1",
    "Billing Address2",
    "Billing Company",
    "Billing City",
    "Billing Zip",
    "Billing Province",
    "Billing Country",
    "Billing Phone",
    "Shipping Name",
    "Shipping Street",
    "Shipping Address1",
    "Shipping Address2",
    "Shipping Company",
    "Shipping City",
    "Shipping Zip",
    "Shipping Province",
    "Shipping Country",
    "Shipping Phone",
    "Notes",
    "Note Attributes",
    "Cancelled at",
    "Payment Method",
    "Payment Reference",
    "Refunded Amount",
    "Vendor",
    "Outstanding Balance",
    "Employee",
    "Location",
    "Device ID",
    "Id",
    "Tags",
    "Risk Level",
    "Source",
    "Lineitem discount",
    "Tax 1 Name",
    "Tax 1 Value",
    "Tax 2 Name",
    "Tax 2 Value",
    "Tax 3 Name",
    "Tax 3 Value",
    "Tax 4 Name",
    "Tax 4 Value",
    "Tax 5 Name",
    "Tax 5 Value",
    "Phone",
    "Receipt Number",
    "Duties",
    "Billing Province Name",
    "Shipping Province Name",
    "Payment ID",
    "Payment Terms Name",
    "Next Payment Due At",
    "Payment References",
]
REQUIRED_COLUMNS = ("Name", "Email", "Financial Status", "Currency", "Total", "Created at")
PAID_STATUSES = {"paid", "partially_paid", "partially_refunded", "refunded"}
REFUNDED_STATUSES = {"partially_refunded", "refunded"}
BATCH_SIZE = 1000


class OrderFileError(ValueError):
    """The file as a whole cannot be used (unreadable, or required columns missing)."""


class OrderRowError(ValueError):
    """One order that cannot be used; the message is stored on its raw rows."""


def parse_shopify_time(value: str) -> datetime:
    """``2025-10-07 09:50:26 +0200`` (Shopify's export format) or ISO-8601 -> aware UTC."""
    text = clean_text(value)
    for fmt in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z"):
        try:
            return datetime.strptime(text, fmt).astimezone(UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OrderRowError(f"{value!r} is not a date and time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_amount(value: str, column: str) -> float | None:
    text = clean_text(value).replace(",", "")
    if not text:
        return None
    try:
        return round(float(text), 2)
    except ValueError:
        raise OrderRowError(f"{column}: {value!r} is not an amount") from None


@dataclass
class ParsedOrder:
    """One order reassembled from its rows."""

    name: str
    raws: list[RawRecord] = field(default_factory=list)
    head: dict = field(default_factory=dict)  # the row with the order-level columns
    lines: list[dict] = field(default_factory=list)


def order_events(order: ParsedOrder) -> tuple[MappedRecord, list[dict]]:
    """The customer's record and the event payloads of one order (pure; raises OrderRowError)."""
    head = order.head
    if not head:
        raise OrderRowError("no row of this order carries its e-mail, status and total")
    email_raw = clean_text(head.get("Email"))
    if not email_raw:
        raise OrderRowError("Email is empty: the order cannot be attached to a customer")
    try:
        email = identifier_key(IdentifierTypes.EMAIL, email_raw)
    except InvalidValue as exc:
        raise OrderRowError(f"Email: {exc}") from None
    identities = [MappedIdentity(IdentifierTypes.EMAIL, email_raw, email.key, email.flag)]
    phone_raw = clean_text(head.get("Phone")) or clean_text(head.get("Billing Phone"))
    if phone_raw:
        region = clean_text(head.get("Billing Country")).upper()[:2] or None
        phone = identifier_key(IdentifierTypes.PHONE, phone_raw, region=region)
        identities.append(MappedIdentity(IdentifierTypes.PHONE, phone_raw, phone.key, phone.flag))
    record = MappedRecord(
        external_key=f"email:{email.key or email_raw.lower()}",
        attributes={"email": email.key or email_raw},
        identities=identities,
    )
    status = clean_text(head.get("Financial Status")).lower()
    if status not in PAID_STATUSES:
        return record, []
    when = parse_shopify_time(head.get("Paid at") or head.get("Created at") or "")
    currency = clean_text(head.get("Currency")).upper()
    total = parse_amount(head.get("Total", ""), "Total")
    if total is None:
        raise OrderRowError("Total is empty")
    products = []
    for line in order.lines:
        if not clean_text(line.get("Lineitem name")):
            continue
        quantity = clean_text(line.get("Lineitem quantity")) or "1"
        products.append(
            {
                "name": clean_text(line.get("Lineitem name")),
                "sku": clean_text(line.get("Lineitem sku")),
                "price": parse_amount(line.get("Lineitem price", ""), "Lineitem price"),
                "quantity": int(quantity) if quantity.isdigit() else 1,
            }
        )
    properties = {
        "order_id": order.name,
        "total": total,
        "subtotal": parse_amount(head.get("Subtotal", ""), "Subtotal"),
        "shipping": parse_amount(head.get("Shipping", ""), "Shipping"),
        "tax": parse_amount(head.get("Taxes", ""), "Taxes"),
        "discount": parse_amount(head.get("Discount Amount", ""), "Discount Amount"),
        "coupon": clean_text(head.get("Discount Code")),
        "currency": currency,
        "products": products,
        "financial_status": status,
    }
    events = [
        {
            "message_id": f"shopify-order:{order.name}",
            "name": "Order Completed",
            "properties": properties,
            "timestamp": when,
        }
    ]
    if status in REFUNDED_STATUSES:
        refunded = parse_amount(head.get("Refunded Amount", ""), "Refunded Amount")
        refund = {"order_id": order.name, "currency": currency}
        if refunded is not None and not (status == "refunded" and refunded == 0):
            refund["total"] = refunded
        events.append(
            {
                "message_id": f"shopify-refund:{order.name}",
                "name": "Order Refunded",
                "properties": refund,
                # The export has no refund date: the refund is dated with the order.
                "timestamp": when,
            }
        )
    return record, events


def _read(path_or_file) -> tuple[list[str], list[dict]]:
    data = path_or_file.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # As file imports read it: Windows-1252, Latin-1 for the five bytes it leaves undefined
        # (plain cp1252 raised on a stray 0x81 and left the run 'running').
        text = data.decode(CP1252_LATIN1)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        headers = [h.strip() for h in next(reader)]
    except StopIteration:
        raise OrderFileError("The file is empty.") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in headers]
    if missing:
        raise OrderFileError(
            "This is not a Shopify orders export: missing column(s) " + ", ".join(missing)
        )
    rows = []
    for values in reader:
        if any(v.strip() for v in values):
            rows.append(dict(zip(headers, values, strict=False)))
    return headers, rows


def orders_import(*, source: DataSource, file: File, created_by=None) -> ImportRun:
    """Import a Shopify orders export into ``source`` inline; the run row records the outcome.

    Counts on the run: created = new order/refund events, updated = events whose content
    changed, unchanged = events already present as they are, rejected = rows not used,
    suppressed = rows of erased persons (dropped, their payload not kept).
    """
    name = os.path.basename(file.name or "") or "orders.csv"
    run = ImportRun(source=source, created_by=created_by, original_name=name)
    run.file.save(run.original_name, file, save=False)
    run.status = ImportRun.Status.RUNNING
    run.started_at = timezone.now()
    run.save()
    try:
        with run.file.open("rb") as handle:
            _headers, rows = _read(handle)
    except OrderFileError as exc:
        return _finish(run, ImportRun.Status.FAILED, str(exc))
    ImportRun.objects.filter(pk=run.pk).update(rows_total=len(rows))
    for start in range(0, len(rows), BATCH_SIZE):
        _import_batch(run, source, rows[start : start + BATCH_SIZE], first_row=start + 1)
    return _finish(run, ImportRun.Status.SUCCEEDED, "")


def _finish(run: ImportRun, status: str, error: str) -> ImportRun:
    ImportRun.objects.filter(pk=run.pk).update(
        status=status, error=error, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def _import_batch(run: ImportRun, source: DataSource, rows: list[dict], first_row: int) -> None:
    """Land the rows, then map whole orders. An order split across batches is completed by
    the lines of the earlier batch's raw rows of the same run."""
    now = timezone.now()
    with transaction.atomic():
        raws = RawRecord.objects.bulk_create(
            [
                RawRecord(
                    source=source,
                    import_run=run,
                    row_number=first_row + i,
                    payload=row,
                    content_hash=stable_hash(row),
                    received_at=now,
                )
                for i, row in enumerate(rows)
            ]
        )
    orders: OrderedDict[str, ParsedOrder] = OrderedDict()
    rejected: list[RawRecord] = []
    for raw in raws:
        name = clean_text(raw.payload.get("Name"))
        if not name:
            raw.status, raw.error = RawRecord.Status.REJECTED, "Name (the order number) is empty"
            rejected.append(raw)
            continue
        order = orders.setdefault(name, ParsedOrder(name))
        order.raws.append(raw)
        order.lines.append(raw.payload)
        if clean_text(raw.payload.get("Financial Status")) and not order.head:
            order.head = raw.payload
    _complete_split_orders(run, orders)

    mapped: list[tuple[ParsedOrder, MappedRecord, list[dict]]] = []
    for order in orders.values():
        try:
            record, events = order_events(order)
        except OrderRowError as exc:
            for raw in order.raws:
                raw.status, raw.error = RawRecord.Status.REJECTED, str(exc)
            rejected.extend(order.raws)
            continue
        mapped.append((order, record, events))
    # Erased persons (suppression list): their orders are dropped and their rows keep nothing.
    suppressed = suppression_check(
        identities_by_item={
            order.name: [(i.type, i.key) for i in record.identities if i.key]
            for order, record, _events in mapped
        }
    )
    suppressed_raw_ids = [
        raw.pk for order, _r, _e in mapped if order.name in suppressed for raw in order.raws
    ]
    mapped = [item for item in mapped if item[0].name not in suppressed]

    with transaction.atomic():
        RawRecord.objects.filter(pk__in=suppressed_raw_ids).update(
            status=RawRecord.Status.SUPPRESSED, payload={}, error=""
        )
        by_key: dict[str, MappedRecord] = {}
        for _order, record, _events in mapped:
            by_key.setdefault(record.external_key, record)
        result = source_records_upsert(source=source, records=list(by_key.values()))
        profiles_resolve(source_record_ids=list(result.record_ids.values()))
        counts = _events_upsert(source, mapped, result.record_ids)
        accepted = []
        for order, record, events in mapped:
            note = "" if events else "not a completed order (financial status is not paid)"
            for raw in order.raws:
                raw.status, raw.error = RawRecord.Status.ACCEPTED, note
                raw.source_record_id = result.record_ids[record.external_key]
                accepted.append(raw)
        RawRecord.objects.bulk_update(
            accepted + rejected, ["status", "error", "source_record"], batch_size=500
        )
        ImportRun.objects.filter(pk=run.pk).update(
            rows_done=run.rows_done + len(rows),
            created_count=run.created_count + counts["created"],
            updated_count=run.updated_count + counts["updated"],
            unchanged_count=run.unchanged_count + counts["unchanged"],
            rejected_count=run.rejected_count + len(rejected),
            suppressed_count=run.suppressed_count + len(suppressed_raw_ids),
        )
        run.refresh_from_db()


def _complete_split_orders(run: ImportRun, orders: dict[str, ParsedOrder]) -> None:
    """An order whose first rows were in an earlier batch of this run gets them back."""
    headless = [name for name, order in orders.items() if not order.head]
    if not headless:
        return
    earlier: dict[str, list[dict]] = {}
    for payload in (
        RawRecord.objects.filter(import_run=run, payload__Name__in=headless)
        .exclude(pk__in=[raw.pk for order in orders.values() for raw in order.raws])
        .order_by("row_number")
        .values_list("payload", flat=True)
    ):
        earlier.setdefault(payload["Name"], []).append(payload)
    for name, payloads in earlier.items():
        order = orders[name]
        order.lines[:0] = payloads
        order.head = next((p for p in payloads if clean_text(p.get("Financial Status"))), {})


def _events_upsert(source: DataSource, mapped: list, record_ids: dict[str, int]) -> dict[str, int]:
    """Create or update the order events by their deterministic messageIds (a few queries)."""
    from profiles.models import SourceRecord

    profile_of = dict(
        SourceRecord.objects.filter(pk__in=list(record_ids.values())).values_list(
            "pk", "profile_id"
        )
    )
    wanted: dict[str, Event] = {}
    for order, record, events in mapped:
        record_id = record_ids[record.external_key]
        for event in events:
            wanted[event["message_id"]] = Event(
                source=source,
                message_id=event["message_id"],
                type=Event.Type.TRACK,
                name=event["name"],
                properties=event["properties"],
                timestamp=event["timestamp"],
                source_record_id=record_id,
                profile_id=profile_of.get(record_id),
                raw_record=order.raws[0],
            )
    existing = {
        message_id: (properties, timestamp)
        for message_id, properties, timestamp in Event.objects.filter(
            source=source, message_id__in=list(wanted)
        ).values_list("message_id", "properties", "timestamp")
    }
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    changed = []
    for message_id, event in wanted.items():
        if message_id not in existing:
            counts["created"] += 1
            changed.append(event)
        elif existing[message_id] != (
            json_roundtrip(event.properties),
            event.timestamp,
        ):
            counts["updated"] += 1
            changed.append(event)
        else:
            counts["unchanged"] += 1
    Event.objects.bulk_create(
        changed,
        batch_size=BATCH_SIZE,
        update_conflicts=True,
        unique_fields=["source", "message_id"],
        update_fields=["properties", "timestamp", "source_record", "profile", "raw_record"],
    )
    if changed:
        # Loyalty earns on new orders and refunds after commit (an order already earned on
        # is not earned again when a later export changes it).
        loyalty_events_ingested(
            event_ids=Event.objects.filter(
                source=source, message_id__in=[e.message_id for e in changed]
            ).values_list("pk", flat=True)
        )
    return counts


def json_roundtrip(value):
    """The value as the JSON column gives it back (for comparing with what is stored)."""
    return json.loads(json.dumps(value))
