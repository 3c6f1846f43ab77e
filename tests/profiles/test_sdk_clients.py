"""Both real SDKs, unmodified, against the live server: all six call types end to end.

segment-analytics-python is given ``host=``; rudder-sdk-python is configured the documented way
(``rudder_analytics.dataPlaneUrl``) and gzips its batches by default.
"""

from __future__ import annotations

import pytest
import rudderstack.analytics as rudder_analytics
from segment.analytics.client import Client as SegmentClient

from profiles.models import Event, Identity, Profile, RawRecord, SourceRecord

pytestmark = pytest.mark.django_db(transaction=True)

TRAITS = {
    "email": "Lena.Vogt@Example.DE",
    "firstName": "Lena",
    "address": {"city": "Berlin", "country": "DE", "geo": {"lat": 52.52, "lng": 13.405}},
    "preferences": {"channels": ["email", "sms"], "topics": {"shoes": True}},
}
ORDER = {"order_id": "o-1", "total": 42.5, "products": [{"sku": "A-1", "qty": 2}]}


class Segment:
    name = "segment"

    def __init__(self, live_server, write_key):
        self.client = SegmentClient(write_key=write_key, host=live_server.url, sync_mode=True)

    def send_all(self):
        c = self.client
        c.track(anonymous_id="anon-1", event="Product Viewed", properties={"sku": "A-1"})
        c.identify("u-1", TRAITS, anonymous_id="anon-1")
        c.track("u-1", "Order Completed", ORDER)
        c.page("u-1", "Shop", "Checkout", {"path": "/checkout"})
        c.screen("u-1", "App", "Cart", {"items": 2})
        c.group("u-1", "g-1", {"name": "Acme", "plan": {"tier": "gold"}})
        c.alias("anon-2", "u-1")
        c.flush()


class Rudder:
    name = "rudder"

    def __init__(self, live_server, write_key):
        rudder_analytics.default_client = None
        rudder_analytics.write_key = write_key
        rudder_analytics.dataPlaneUrl = live_server.url
        rudder_analytics.sync_mode = True
        rudder_analytics.on_error = self.fail
        self.errors = []

    def fail(self, error, items):
        self.errors.append(str(error))

    def send_all(self):
        r = rudder_analytics
        r.track(anonymous_id="anon-1", event="Product Viewed", properties={"sku": "A-1"})
        r.identify("u-1", TRAITS, anonymous_id="anon-1")
        r.track("u-1", "Order Completed", ORDER)
        r.page("u-1", "Shop", "Checkout", {"path": "/checkout"})
        r.screen("u-1", "App", "Cart", {"items": 2})
        r.group("u-1", "g-1", {"name": "Acme", "plan": {"tier": "gold"}})
        r.alias("anon-2", "u-1")
        r.flush()
        rudder_analytics.default_client = None


@pytest.fixture(params=[Segment, Rudder], ids=["segment-analytics-python", "rudder-sdk-python"])
def sdk(request, live_server, make_source):
    source = make_source(name="website", kind="api")
    client = request.param(live_server, source.write_key)
    client.source = source
    return client


def test_sdk_sends_all_six_call_types_end_to_end(sdk):
    sdk.send_all()

    assert getattr(sdk, "errors", []) == []
    events = Event.objects.filter(source=sdk.source).order_by("timestamp", "id")
    assert sorted((e.type, e.name) for e in events) == [
        ("alias", ""),
        ("group", "g-1"),
        ("identify", ""),
        ("page", "Checkout"),
        ("screen", "Cart"),
        ("track", "Order Completed"),
        ("track", "Product Viewed"),
    ]
    assert RawRecord.objects.filter(source=sdk.source, status="accepted").count() == 7
    # One person: the anonymous browsing, both anonymous ids and the user id are one profile.
    assert Profile.objects.count() == 1
    assert {e.profile_id for e in events} == {Profile.objects.get().pk}
    assert sorted(Identity.objects.values_list("type", "key")) == [
        ("anonymous_id", "anon-1"),
        ("anonymous_id", "anon-1"),
        ("anonymous_id", "anon-2"),
        ("email", "lena.vogt@example.de"),
        ("user_id", "u-1"),
    ]
    profile = Profile.objects.get()
    assert (profile.email, profile.first_name, profile.city) == (
        "lena.vogt@example.de",
        "Lena",
        "Berlin",
    )
    # Nested traits and properties are kept exactly.
    user = SourceRecord.objects.get(external_key="user:u-1")
    assert user.traits["address"] == TRAITS["address"]
    assert user.traits["preferences"] == TRAITS["preferences"]
    identify = events.get(type="identify")
    assert identify.properties == TRAITS
    assert events.get(name="Order Completed").properties == ORDER
    assert events.get(type="group").properties == {"name": "Acme", "plan": {"tier": "gold"}}
    assert events.get(type="page").properties["path"] == "/checkout"


def test_sdk_batches_arrive_in_the_expected_encoding(sdk, monkeypatch):
    seen = []
    from profiles import views

    original = views._read_body

    def spy(request):
        seen.append(request.headers.get("Content-Encoding", ""))
        return original(request)

    monkeypatch.setattr(views, "_read_body", spy)
    sdk.send_all()

    assert seen and set(seen) == ({"gzip"} if sdk.name == "rudder" else {""})
