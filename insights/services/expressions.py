"""ORM expressions over event JSON shared by the insight computations (orders, custom insights).

Numbers in event properties may be JSON numbers or numeric strings ("12.50"); anything else is
treated as missing, never as an error, so one bad event cannot fail a run on PostgreSQL.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db.models import (
    Case,
    Exists,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, NullIf, Trim, Upper
from django.db.models.lookups import Regex

from profiles.models import Event

ORDER_COMPLETED = "Order Completed"
ORDER_REFUNDED = "Order Refunded"
NUMBER_PATTERN = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"
PROPERTY_PATTERN = re.compile(r"^[A-Za-z0-9_$ -]+(\.[A-Za-z0-9_$ -]+)*$")


class PropertyNameError(ValueError):
    """A property name that cannot be used (empty, or with characters the lookup forbids)."""


def property_path(name: str) -> str:
    """``total`` -> ``properties__total``; dots reach nested keys (``product.price``)."""
    name = name.strip()
    if not PROPERTY_PATTERN.match(name) or "__" in name:
        raise PropertyNameError(
            f"{name!r} is not a property name (letters, digits, _ $ - and space; dots for nesting)"
        )
    return "properties__" + "__".join(part.strip() for part in name.split("."))


def json_text(path: str):
    return Cast(KT(path), TextField())


def json_number(path: str):
    """The JSON value at ``path`` as a float, or NULL when it is not a number."""
    text = json_text(path)
    return Case(When(Regex(text, NUMBER_PATTERN), then=Cast(text, FloatField())), default=None)


def order_key():
    """An order's identity: ``properties.order_id`` as text, else the event's messageId."""
    return Coalesce(
        NullIf(Trim(json_text("properties__order_id")), Value("")),
        F("message_id"),
        output_field=TextField(),
    )


def order_amount():
    """Segment e-commerce spec: ``total`` (with tax and shipping), else ``revenue``."""
    return Coalesce(json_number("properties__total"), json_number("properties__revenue"))


def order_currency():
    return Upper(
        Coalesce(
            NullIf(Trim(json_text("properties__currency")), Value("")),
            Value(settings.CDP_CURRENCY),
            output_field=TextField(),
        )
    )


def currency_rate(currency_field: str = "currency"):
    """Rate into the workspace currency; NULL for a currency without a rate."""
    rates = {**settings.CDP_CURRENCY_RATES, settings.CDP_CURRENCY: 1.0}
    return Case(
        *[When(**{currency_field: code}, then=Value(rate)) for code, rate in rates.items()],
        default=None,
        output_field=FloatField(),
    )


def counted_orders(events: QuerySet[Event], scope: Q | None = None) -> QuerySet[Event]:
    """Order Completed events of ``events``, one per (profile, order), annotated for aggregation.

    Annotations: ``order_key``, ``amount`` (0 when missing), ``currency``, ``rate``,
    ``refund`` (sum of its refunds, NULL without any; a refund without an amount refunds the
    whole order), ``refunded`` (refund capped at the amount), ``net`` (amount - refund) and
    ``counted`` (False when refunds cover the whole amount: the order is removed).
    A repeated order (same order id on the same profile, any source or messageId) counts once:
    the earliest stored event wins. ``scope`` (the profiles being computed) also narrows the
    correlated lookups, so the planner never scans other profiles' orders.
    """
    same_order = (
        Event.objects.filter(scope or Q())
        .annotate(key=order_key())
        .filter(profile_id=OuterRef("profile_id"), key=OuterRef("order_key"))
    )
    earlier = same_order.filter(name=ORDER_COMPLETED, id__lt=OuterRef("id"))
    refunds = (
        same_order.filter(name=ORDER_REFUNDED)
        .order_by()
        .values("profile_id")
        .annotate(total=Sum(Coalesce(order_amount(), Value(1e15))))
        .values("total")[:1]
    )
    return (
        events.filter(name=ORDER_COMPLETED, profile__isnull=False)
        .annotate(order_key=order_key())
        .filter(~Exists(earlier))
        .annotate(
            amount=Coalesce(order_amount(), Value(0.0)),
            currency=order_currency(),
            refund=Subquery(refunds, output_field=FloatField()),
        )
        .annotate(
            rate=currency_rate(),
            refunded=Case(
                When(refund__isnull=True, then=Value(0.0)),
                When(refund__lt=F("amount"), then=F("refund")),
                default=F("amount"),
                output_field=FloatField(),
            ),
        )
        .annotate(
            net=F("amount") - F("refunded"),
            counted=Case(
                When(Q(refund__isnull=True) | Q(refund__lt=F("amount")), then=Value(True)),
                default=Value(False),
            ),
        )
    )
