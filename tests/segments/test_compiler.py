"""The compiler over a table of rule trees and the exact member sets they must give.

Runs on whichever database the suite uses; CI runs it on SQLite and on PostgreSQL.
The clock is fixed at 2026-03-10 00:30 in Berlin (2026-03-09 23:30 UTC), just after midnight,
so calendar periods in the workspace time zone differ from the same periods in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from profiles.models import Event
from profiles.services.tracking import tracking_messages_ingest
from segments.compiler import CompileContext, rules_compile
from segments.models import Segment
from segments.registry import get_registry
from segments.selectors import segment_rules_get

NOW = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def F(field, operator, value=None):
    node = {"type": "field", "field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def AND(*children, negate=False):
    return {"type": "group", "op": "and", "negate": negate, "children": list(children)}


def OR(*children, negate=False):
    return {"type": "group", "op": "or", "negate": negate, "children": list(children)}


def EV(event, op="at_least", count=1, window=None, where=()):
    return {
        "type": "event",
        "event": event,
        "frequency": {"op": op, "count": count},
        "window": window,
        "where": list(where),
    }


@pytest.fixture
def people(make_profile, make_event):
    """Five people; see the table for what each case expects of them."""
    ann = make_profile(
        first_name="Ann",
        city="Berlin",
        country="DE",
        email="ann@example.de",
        attributes={
            "total_spent": 120.5,
            "accepts_email_marketing": True,
            "birth_date": "1990-05-01",
            "signed_up_at": "2026-03-09",
        },
        traits={"tier": "gold"},
        created_at=NOW - timedelta(days=2),
    )
    ben = make_profile(
        first_name="Ben",
        city="Hamburg",
        country="DE",
        attributes={
            "total_spent": 40,
            "accepts_email_marketing": False,
            "signed_up_at": "2026-03-08",
        },
        traits={"tier": "silver"},
        created_at=NOW - timedelta(days=30),
    )
    # Cem: no city ("" = missing), total_spent is JSON null, no source record at all.
    cem = make_profile(
        first_name="Cem", country="DE", attributes={"total_spent": None}, created_at=NOW
    )
    # Dora: no attributes at all; her tier is written in capitals.
    dora = make_profile(
        first_name="Dora",
        city="München",
        country="AT",
        traits={"tier": "GOLD"},
        created_at=NOW - timedelta(days=400),
    )
    # Eva: a source record without the tier trait; total_spent 0 (set, not missing).
    eva = make_profile(
        first_name="Eva",
        city="Berlin",
        attributes={"total_spent": 0, "accepts_email_marketing": False},
        traits={"newsletter": "weekly"},
        created_at=NOW - timedelta(days=10),
    )
    # 23:50 in Berlin on 9 March: "yesterday" in Berlin, but "today" in UTC.
    make_event(ann, "Order Completed", utc(2026, 3, 9, 22, 50), total=60)
    make_event(ann, "Order Completed", utc(2026, 3, 1, 10, 0), total=30)
    # 23:30 in Berlin on 8 March: "yesterday" in UTC, two days ago in Berlin; 25 hours ago.
    make_event(ben, "Order Completed", utc(2026, 3, 8, 22, 30), total=80)
    make_event(ben, "Product Viewed", utc(2026, 3, 9, 12, 0), sku="A-1")
    # 00:10 on 10 March in Berlin: "today" in Berlin (and in UTC).
    make_event(cem, "Order Completed", utc(2026, 3, 9, 23, 10), total=20, coupon="SPRING")
    return {"Ann": ann, "Ben": ben, "Cem": cem, "Dora": dora, "Eva": eva}


ALL = {"Ann", "Ben", "Cem", "Dora", "Eva"}

CASES = [
    # text: equals / not equals (null and missing included) / presence
    ("city equals", AND(F("city", "equals", "Berlin")), {"Ann", "Eva"}),
    (
        "city not equals keeps missing",
        AND(F("city", "not_equals", "Berlin")),
        {"Ben", "Cem", "Dora"},
    ),
    ("city is set", AND(F("city", "is_set")), {"Ann", "Ben", "Dora", "Eva"}),
    ("city is not set", AND(F("city", "is_not_set")), {"Cem"}),
    ("city contains, any case", AND(F("city", "contains", "BURG")), {"Ben"}),
    ("first name starts with", AND(F("first_name", "starts_with", "e")), {"Eva"}),
    ("e-mail is normalised", AND(F("email", "equals", "ANN@Example.DE")), {"Ann"}),
    (
        "country in list, normalised",
        AND(F("country", "in", ["de", "AT"])),
        {"Ann", "Ben", "Cem", "Dora"},
    ),
    ("country not in list", AND(F("country", "not_in", "DE")), {"Dora", "Eva"}),
    # numbers in JSON: JSON null and a missing key are both "not set"
    ("number greater", AND(F("total_spent", "greater", 50)), {"Ann"}),
    ("number between", AND(F("total_spent", "between", [0, 40])), {"Ben", "Eva"}),
    (
        "number not equals keeps null and missing",
        AND(F("total_spent", "not_equals", "40")),
        {"Ann", "Cem", "Dora", "Eva"},
    ),
    ("number is set: 0 yes, JSON null no", AND(F("total_spent", "is_set")), {"Ann", "Ben", "Eva"}),
    ("number is not set", AND(F("total_spent", "is_not_set")), {"Cem", "Dora"}),
    ("less than excludes missing", AND(F("total_spent", "less", 50)), {"Ben", "Eva"}),
    # yes/no
    ("boolean equals true", AND(F("accepts_email_marketing", "equals", True)), {"Ann"}),
    ("boolean equals false", AND(F("accepts_email_marketing", "equals", "false")), {"Ben", "Eva"}),
    (
        "boolean not equals true keeps missing",
        AND(F("accepts_email_marketing", "not_equals", True)),
        {"Ben", "Cem", "Dora", "Eva"},
    ),
    # custom traits through source records
    ("trait equals", AND(F("trait:tier", "equals", "gold")), {"Ann"}),
    (
        "trait not equals keeps missing",
        AND(F("trait:tier", "not_equals", "gold")),
        {"Ben", "Cem", "Dora", "Eva"},
    ),
    ("trait contains, any case", AND(F("trait:tier", "contains", "gold")), {"Ann", "Dora"}),
    ("trait is not set", AND(F("trait:tier", "is_not_set")), {"Cem", "Eva"}),
    ("unknown trait name is never set", AND(F("trait:shoe_size", "is_set")), set()),
    # dates (ISO text) and date-times
    ("date before", AND(F("birth_date", "before", "1995-01-01")), {"Ann"}),
    (
        "date in calendar period yesterday (Berlin)",
        AND(F("signed_up_at", "in_period", "yesterday")),
        {"Ann"},
    ),
    (
        "created within the last 7 days (rolling)",
        AND(F("created_at", "within_last", 7)),
        {"Ann", "Cem"},
    ),
    ("created more than 30 days ago", AND(F("created_at", "not_within_last", 30)), {"Dora"}),
    ("created on a day in Berlin", AND(F("created_at", "on", "2026-03-10")), {"Cem"}),
    ("created in period today (Berlin)", AND(F("created_at", "in_period", "today")), {"Cem"}),
    # groups: nesting, OR, NOT, exclusion, empty
    (
        "nested OR inside AND",
        AND(
            F("country", "equals", "DE"),
            OR(F("city", "equals", "Berlin"), F("total_spent", "greater", 30)),
        ),
        {"Ann", "Ben"},
    ),
    (
        "negated group is the complement, missing included",
        AND(F("city", "equals", "Berlin"), negate=True),
        {"Ben", "Cem", "Dora"},
    ),
    ("empty group matches everyone", AND(), ALL),
    (
        "empty negated group is ignored too",
        AND(AND(negate=True), F("country", "equals", "AT")),
        {"Dora"},
    ),
    (
        "exclude part",
        {
            "include": AND(F("country", "equals", "DE")),
            "exclude": OR(F("city", "equals", "Hamburg")),
        },
        {"Ann", "Cem"},
    ),
    (
        "NOT over a JSON number keeps null and missing",
        AND(F("total_spent", "greater", 50), negate=True),
        {"Ben", "Cem", "Dora", "Eva"},
    ),
    (
        "NOT over OR of JSON conditions",
        AND(
            OR(
                F("total_spent", "less", 50),
                F("accepts_email_marketing", "equals", True),
                negate=True,
            )
        ),
        {"Cem", "Dora"},
    ),
    (
        "exclude over a JSON number keeps null and missing",
        {"include": AND(), "exclude": OR(F("total_spent", "less", 50))},
        {"Ann", "Cem", "Dora"},
    ),
    (
        "double negation is the original",
        AND(AND(F("total_spent", "greater", 50), negate=True), negate=True),
        {"Ann"},
    ),
    # behaviour: counts, windows (calendar vs rolling), property filters
    ("event at least once, ever", AND(EV("Order Completed")), {"Ann", "Ben", "Cem"}),
    ("event at least twice", AND(EV("Order Completed", count=2)), {"Ann"}),
    ("event exactly once", AND(EV("Order Completed", "exactly", 1)), {"Ben", "Cem"}),
    ("event at most 0 times (never)", AND(EV("Order Completed", "at_most", 0)), {"Dora", "Eva"}),
    ("event exactly 0 times", AND(EV("Order Completed", "exactly", 0)), {"Dora", "Eva"}),
    (
        "event yesterday in Berlin",
        AND(EV("Order Completed", window={"type": "period", "period": "yesterday"})),
        {"Ann"},
    ),
    (
        "event today in Berlin",
        AND(EV("Order Completed", window={"type": "period", "period": "today"})),
        {"Cem"},
    ),
    (
        "event in the last 1 day is rolling 24 hours",
        AND(EV("Order Completed", window={"type": "last_days", "days": 1})),
        {"Ann", "Cem"},
    ),
    (
        "event between calendar dates (Berlin)",
        AND(
            EV(
                "Order Completed",
                window={"type": "between", "from": "2026-03-08", "to": "2026-03-09"},
            )
        ),
        {"Ann", "Ben"},
    ),
    (
        "event with property > 50",
        AND(
            EV("Order Completed", where=[{"property": "total", "operator": "greater", "value": 50}])
        ),
        {"Ann", "Ben"},
    ),
    (
        "event with property equals text",
        AND(
            EV(
                "Order Completed",
                where=[{"property": "coupon", "operator": "equals", "value": "SPRING"}],
            )
        ),
        {"Cem"},
    ),
    (
        "event property not equals keeps missing",
        AND(
            EV(
                "Order Completed",
                where=[{"property": "coupon", "operator": "not_equals", "value": "SPRING"}],
            )
        ),
        {"Ann", "Ben"},
    ),
    (
        "never purchased but viewed",
        AND(EV("Product Viewed"), EV("Order Completed", "at_most", 0)),
        set(),
    ),
]


def members(rules, *, now=NOW, tz=BERLIN) -> set[str]:
    from profiles.models import Profile

    ctx = CompileContext(registry=get_registry(), now=now, tz=tz, segment_rules=segment_rules_get)
    q = rules_compile(rules, ctx).q
    return set(Profile.objects.filter(q).values_list("first_name", flat=True))


@pytest.mark.parametrize(("rules", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_tree_selects_exactly_these_people(people, rules, expected):
    assert members(rules) == expected


def test_calendar_periods_follow_the_workspace_time_zone(people):
    yesterday = AND(EV("Order Completed", window={"type": "period", "period": "yesterday"}))
    signed_up = AND(F("signed_up_at", "in_period", "yesterday"))

    assert members(yesterday, tz=BERLIN) == {"Ann"}
    assert members(yesterday, tz=ZoneInfo("UTC")) == {"Ben"}
    assert members(signed_up, tz=ZoneInfo("UTC")) == {"Ben"}


def test_rolling_windows_do_not_depend_on_the_time_zone(people):
    rules = AND(EV("Order Completed", window={"type": "last_days", "days": 1}))

    assert members(rules, tz=ZoneInfo("America/Los_Angeles")) == {"Ann", "Cem"}
    assert members(rules, tz=ZoneInfo("Asia/Tokyo")) == {"Ann", "Cem"}


def test_the_workspace_time_zone_setting_is_used(people, settings):
    from segments.selectors import rules_count

    rules = AND(EV("Order Completed", window={"type": "period", "period": "yesterday"}))
    settings.CDP_TIME_ZONE = "UTC"
    assert rules_count(rules, now=NOW) == 1  # Ben
    settings.CDP_TIME_ZONE = "Europe/Berlin"
    assert rules_count(rules, now=NOW) == 1 and members(rules) == {"Ann"}


def test_membership_of_another_segment(people):
    berliners = Segment.objects.create(
        name="Berliners", rules={"include": AND(F("city", "equals", "Berlin"))}
    )

    assert members(AND({"type": "segment", "segment": berliners.pk, "in": True})) == {"Ann", "Eva"}
    assert members(AND({"type": "segment", "segment": berliners.pk, "in": False})) == {
        "Ben",
        "Cem",
        "Dora",
    }
    spenders = Segment.objects.create(
        name="Spenders", rules={"include": AND(F("total_spent", "greater", 50))}
    )
    assert members(AND({"type": "segment", "segment": spenders.pk, "in": False})) == {
        "Ben",
        "Cem",
        "Dora",
        "Eva",
    }


def test_a_retried_event_counts_once(db, make_source):
    web = make_source(name="site", kind="api")
    identify = {
        "type": "identify",
        "messageId": "m-1",
        "userId": "u-7",
        "traits": {"email": "zoe@example.com", "firstName": "Zoe"},
    }
    order = {
        "type": "track",
        "messageId": "m-2",
        "userId": "u-7",
        "event": "Order Completed",
        "timestamp": "2026-03-09T10:00:00Z",
        "properties": {"total": 99},
    }
    tracking_messages_ingest(source=web, messages=[identify, order])
    result = tracking_messages_ingest(source=web, messages=[order])  # the SDK retries

    assert result["duplicates"] == 1
    assert Event.objects.filter(name="Order Completed").count() == 1
    from profiles.models import Profile

    zoe = Profile.objects.get(events__name="Order Completed")
    twice = AND(EV("Order Completed", count=2))
    once = AND(EV("Order Completed", "exactly", 1, window={"type": "last_days", "days": 7}))
    ctx = CompileContext(registry=get_registry(), now=NOW, tz=BERLIN)
    assert list(Profile.objects.filter(rules_compile(twice, ctx).q)) == []
    assert list(
        Profile.objects.filter(rules_compile(once, ctx).q).values_list("pk", flat=True)
    ) == [zoe.pk]
