"""Loyalty wired into ingest: the tracking API and the Shopify orders import earn points.

The ingest queues ``profiles.loyalty_tasks.loyalty_events_earn`` after commit; the tests
assert what was queued, then run it as a django-q2 worker would (``run_queued``).
"""

from __future__ import annotations

import base64
import importlib
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from profiles.models import (
    DataSource,
    Event,
    LoyaltyActivity,
    LoyaltyLedgerEntry,
    LoyaltyMember,
    Profile,
)
from profiles.services.imports import text_file
from profiles.services.loyalty import loyalty_member_enrol
from profiles.services.orders import orders_import
from tests.profiles.loyalty_helpers import make_program
from tests.profiles.test_orders import head, line, orders_csv

pytestmark = pytest.mark.django_db

EARN_TASK = "profiles.loyalty_tasks.loyalty_events_earn"


def queued_tasks() -> list[tuple[str, tuple]]:
    return [(q.task["func"], q.task["args"]) for q in OrmQ.objects.order_by("id")]


def run_queued() -> list:
    """Run the queued tasks by their dotted path and arguments, then drop them from the queue."""
    results = []
    for queued in OrmQ.objects.order_by("id"):
        module, name = queued.task["func"].rsplit(".", 1)
        results.append(getattr(importlib.import_module(module), name)(*queued.task["args"]))
        queued.delete()
    return results


def post(client, source: DataSource, path: str, body: dict):
    auth = "Basic " + base64.b64encode(f"{source.write_key}:".encode()).decode()
    return client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": auth},
    )


def ledger(member: LoyaltyMember) -> list[tuple[str, str, int]]:
    return list(
        LoyaltyLedgerEntry.objects.filter(member=member)
        .order_by("id")
        .values_list("kind", "reason", "points")
    )


@pytest.fixture
def web(db):
    return DataSource.objects.create(name="web", kind=DataSource.Kind.API)


@pytest.fixture
def member(client, web):
    """Ann, known to the tracking API by her user id and e-mail, a member for a month."""
    program = make_program()
    post(
        client,
        web,
        "/v1/identify",
        {"userId": "u-ann", "traits": {"email": "ann@example.com"}, "messageId": "ann-1"},
    )
    profile = Profile.objects.get()
    return loyalty_member_enrol(
        program=program,
        profile=profile,
        at=timezone.now() - timedelta(days=30),
    )


def order_message(**overrides) -> dict:
    message = {
        "userId": "u-ann",
        "event": "Order Completed",
        "messageId": "order-A-1",
        "timestamp": (timezone.now() - timedelta(days=1)).isoformat(),
        "properties": {"order_id": "A-1", "revenue": 42.5, "currency": "EUR"},
    }
    message.update(overrides)
    return message


def test_an_order_posted_to_the_tracking_api_earns_points_once(
    client, web, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, web, "/v1/track", order_message())

    assert response.json() == {"success": True}
    event = Event.objects.get(message_id="order-A-1")
    assert queued_tasks() == [(EARN_TASK, ([event.pk],))]
    (counts,) = run_queued()
    assert (counts["orders"], counts["points_earned"], counts["qualifying_earned"]) == (1, 142, 42)
    member.refresh_from_db()
    # 42 points for 42.50 (rounded down) + 100 for the first order; 42 qualifying points.
    assert (member.points_balance, member.qualifying_points) == (142, 42)
    assert ledger(member) == [
        ("earn", "1 point per unit", 42),
        ("earn", "1 qualifying point per unit", 42),
        ("earn", "First order", 100),
    ]

    # The SDK retries the same message: a duplicate, nothing queued, nothing earned.
    with django_capture_on_commit_callbacks(execute=True):
        again = post(client, web, "/v1/track", order_message())
        batch = post(client, web, "/v1/batch", {"batch": [{**order_message(), "type": "track"}]})

    assert (again.status_code, batch.status_code) == (200, 200)
    assert Event.objects.filter(message_id="order-A-1").count() == 1
    assert queued_tasks() == []
    member.refresh_from_db()
    assert member.points_balance == 142
    assert LoyaltyActivity.objects.count() == 1
    # Even if the hook ran again for the same event, the event is handled once.
    assert run_queued() == [] and len(ledger(member)) == 3


def test_a_batch_queues_only_its_order_events_and_a_refund_reverses(
    client, web, member, django_capture_on_commit_callbacks
):
    refund = order_message(
        event="Order Refunded",
        messageId="refund-A-1",
        timestamp=(timezone.now() - timedelta(hours=12)).isoformat(),
        properties={"order_id": "A-1", "total": 10.625, "currency": "EUR"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        post(
            client,
            web,
            "/v1/batch",
            {
                "batch": [
                    {"type": "page", "userId": "u-ann", "name": "Home", "messageId": "p-1"},
                    {
                        **order_message(properties={"order_id": "A-1", "total": 42.5}),
                        "type": "track",
                    },
                    {"type": "track", **refund},
                ]
            },
        )

    ids = sorted(Event.objects.filter(name__startswith="Order ").values_list("pk", flat=True))
    ((func, (queued_ids,)),) = queued_tasks()
    assert (func, sorted(queued_ids)) == (EARN_TASK, ids)
    run_queued()
    member.refresh_from_db()
    # 42 + 100 earned; a quarter of the order refunded: a quarter of each earning reversed
    # (11 of 42, 25 of 100; 11 of 42 qualifying).
    assert (member.points_balance, member.qualifying_points) == (142 - 11 - 25, 42 - 11)


def test_a_batch_without_orders_queues_nothing_even_with_a_program(
    client, web, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, web, "/v1/page", {"userId": "u-ann", "name": "Home", "messageId": "p-1"})

    assert Event.objects.filter(message_id="p-1").exists()
    assert queued_tasks() == []


def test_tracking_orders_without_a_program_queue_nothing(
    client, web, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, web, "/v1/track", order_message())

    assert Event.objects.filter(message_id="order-A-1").count() == 1
    assert queued_tasks() == []


def test_a_shopify_orders_import_earns_and_a_reimport_earns_nothing_more(
    member, django_capture_on_commit_callbacks
):
    shop = DataSource.objects.create(name="Shop orders", preset="shopify_orders")
    when = (timezone.now() - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S +0000")
    export = orders_csv(
        {
            **head("#1001", "Ann@Example.com", "paid", "59.90", when),
            **line("#1001", "Mug", "59.90"),
        },
        {
            **head("#1002", "ann@example.com", "partially_refunded", "100.00", when,
                   **{"Refunded Amount": "30.00"}),
            **line("#1002", "Pot", "100"),
        },
    )  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        run = orders_import(source=shop, file=text_file(export, "orders_export.csv"))

    assert (run.status, run.created_count) == ("succeeded", 3)
    events = Event.objects.filter(source=shop)
    assert set(events.values_list("profile_id", flat=True)) == {member.profile_id}
    ((func, (queued_ids,)),) = queued_tasks()
    assert (func, sorted(queued_ids)) == (EARN_TASK, sorted(events.values_list("pk", flat=True)))
    run_queued()
    member.refresh_from_db()
    # #1001: 59 + 100 (first order); #1002: 100, then 30 of 100 refunded: 30 reversed.
    assert (member.points_balance, member.qualifying_points) == (59 + 100 + 100 - 30, 59 + 70)

    with django_capture_on_commit_callbacks(execute=True):
        again = orders_import(source=shop, file=text_file(export, "orders_export.csv"))

    assert (again.created_count, again.unchanged_count) == (0, 3)
    assert queued_tasks() == []
    member.refresh_from_db()
    assert member.points_balance == 229
