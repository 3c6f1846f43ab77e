"""The real Segment Python SDK (segment-analytics-python) against a live server."""

from __future__ import annotations

import pytest
from segment.analytics.client import Client
from segment.analytics.request import APIError

from profiles.models import Event, Profile, RawRecord, SourceRecord
from tests.conftest import shopify_csv, shopify_row

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = {"order_id": "o-1001", "total": 42.5, "currency": "EUR", "products": [{"sku": "A-1"}]}


@pytest.fixture
def imported_profile(make_source, import_csv) -> Profile:
    """The profile a Shopify import created for Lena, her e-mail in another spelling."""
    shop = make_source(name="shop", preset="shopify")
    import_csv(
        shop,
        shopify_csv(
            shopify_row(
                **{"First Name": "Lena", "Last Name": "Vogt", "Email": "  LENA.VOGT@example.de"}
            )
        ),
    )
    return Profile.objects.get()


@pytest.fixture
def sdk(live_server, make_source):
    """A Segment client in sync mode: each call is one HTTP request, errors raise."""
    source = make_source(name="website", kind="api")
    client = Client(write_key=source.write_key, host=live_server.url, sync_mode=True)
    client.source = source
    return client


def test_sdk_identify_and_track_land_once_on_the_imported_profile(sdk, imported_profile):
    identified, identify_msg = sdk.identify(
        "u-1", {"email": "Lena.Vogt@Example.DE\u00a0", "firstName": "Lena"}
    )
    tracked, track_msg = sdk.track("u-1", "Order Completed", ORDER)
    sdk.flush()

    assert (identified, tracked) == (True, True)
    events = Event.objects.filter(source=sdk.source).order_by("type")
    assert [(e.type, e.name, e.message_id) for e in events] == [
        ("identify", "", identify_msg["messageId"]),
        ("track", "Order Completed", track_msg["messageId"]),
    ]
    assert {e.profile_id for e in events} == {imported_profile.pk}
    assert Profile.objects.count() == 1
    assert events[1].properties == ORDER
    assert events[1].context["library"]["name"] == "analytics-python"
    user_record = SourceRecord.objects.get(source=sdk.source)
    assert (user_record.external_key, user_record.profile_id) == ("user:u-1", imported_profile.pk)


def test_sdk_resending_a_message_id_stores_nothing_new(sdk, imported_profile):
    _, first = sdk.track("u-1", "Order Completed", ORDER)
    sdk.track("u-1", "Order Completed", ORDER, message_id=first["messageId"])
    sdk.identify("u-1", {"email": "lena.vogt@example.de"}, message_id="fixed-id")
    sdk.identify("u-1", {"email": "lena.vogt@example.de"}, message_id="fixed-id")

    assert sorted(Event.objects.values_list("message_id", flat=True)) == sorted(
        [first["messageId"], "fixed-id"]
    )
    assert RawRecord.objects.filter(source=sdk.source).count() == 2


def test_sdk_stored_message_is_what_the_sdk_sent(sdk):
    _, sent = sdk.track("u-1", "Order Completed", ORDER)

    raw = RawRecord.objects.get(source=sdk.source)
    # The SDK sends sentAt once per batch; the rest is the message as the SDK built it.
    assert {k: v for k, v in raw.payload.items() if k != "sentAt"} == sent
    assert raw.message_id == sent["messageId"]


def test_sdk_in_background_mode_delivers_on_flush(live_server, make_source, imported_profile):
    source = make_source(name="app", kind="api")
    errors = []
    client = Client(
        write_key=source.write_key,
        host=live_server.url,
        gzip=True,
        upload_interval=0.05,
        on_error=lambda error, batch: errors.append(error),
    )
    client.identify("u-2", {"email": "lena.vogt@EXAMPLE.de"})
    client.track("u-2", "Order Completed", ORDER)
    client.flush()
    client.join()

    assert errors == []
    assert sorted(Event.objects.filter(source=source).values_list("type", flat=True)) == [
        "identify",
        "track",
    ]
    assert set(Event.objects.values_list("profile_id", flat=True)) == {imported_profile.pk}


def test_sdk_with_an_unknown_write_key_gets_the_401_error(live_server, db):
    client = Client(write_key="no-such-key", host=live_server.url, sync_mode=True)

    with pytest.raises(APIError) as excinfo:
        client.track("u-1", "Order Completed", ORDER)

    assert (excinfo.value.status, excinfo.value.code) == (401, "invalid_write_key")
    assert excinfo.value.message == "The write key is not known."
    assert RawRecord.objects.count() == 0
