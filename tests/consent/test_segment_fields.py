"""Consent as a condition of the segment registry, through the real compiler and refresh."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from consent.models import Purpose
from consent.services.consent import consent_record
from profiles.models import Profile
from segments.compiler import RuleError
from segments.registry import get_registry
from segments.selectors import rules_profiles
from segments.services import segment_create, segment_refresh_request


def F(field, operator, value=None):
    node = {"type": "field", "field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def rules(*children):
    return {"include": {"type": "group", "op": "and", "negate": False, "children": list(children)}}


def days_ago(n: int):
    return timezone.now() - timedelta(days=n)


def decide(profile, status, *, days: int, purpose="email_marketing", channel="email"):
    consent_record(
        profile=profile,
        purpose=purpose,
        channel=channel,
        status=status,
        source="form",
        captured_at=days_ago(days),
    )


@pytest.fixture
def people(db):
    """ann granted; bob granted, then withdrew on every channel; cid never decided;
    dee denied; eve decided only about SMS; fay withdrew, then an import brought in an older
    grant (recorded later, captured earlier); gus granted by e-mail, then denied by post."""
    names = ("ann", "bob", "cid", "dee", "eve", "fay", "gus")
    p = {n: Profile.objects.create(first_name=n, email=f"{n}@example.com") for n in names}
    decide(p["ann"], "granted", days=3)
    decide(p["bob"], "granted", days=5)
    decide(p["bob"], "withdrawn", days=1, channel="all")
    decide(p["dee"], "denied", days=2)
    decide(p["eve"], "granted", days=2, purpose="sms_marketing", channel="sms")
    decide(p["fay"], "withdrawn", days=1)
    decide(p["fay"], "granted", days=10)  # recorded after, captured before: not current
    decide(p["gus"], "granted", days=4)
    decide(p["gus"], "denied", days=1, channel="post")
    return p


def names(queryset) -> list[str]:
    return sorted(queryset.values_list("first_name", flat=True))


def test_a_granted_segment_holds_exactly_the_granted_people(people):
    segment = segment_create(
        name="E-mail marketing granted",
        rules=rules(F("consent:email_marketing:email", "equals", "granted")),
    )
    refresh = segment_refresh_request(segment=segment, sync=True)

    assert refresh.status == "succeeded", refresh.error
    members = Profile.objects.filter(pk__in=segment.memberships.values("profile_id"))
    assert names(members) == ["ann", "gus"]  # not bob (withdrew later), cid, dee, eve, fay
    assert refresh.size == 2


def test_not_granted_includes_unknown_and_each_state_is_a_value(people):
    field = "consent:email_marketing:email"
    assert names(rules_profiles(rules(F(field, "not_equals", "granted")))) == [
        "bob",
        "cid",
        "dee",
        "eve",
        "fay",
    ]
    assert names(rules_profiles(rules(F(field, "equals", "unknown")))) == ["cid", "eve"]
    assert names(rules_profiles(rules(F(field, "in", ["denied", "Withdrawn"])))) == [
        "bob",
        "dee",
        "fay",
    ]
    # Under NOT, unknown is still a value: NOT(granted) is exactly its complement.
    negated = {
        "type": "group",
        "op": "and",
        "negate": True,
        "children": [F(field, "equals", "granted")],
    }
    assert names(rules_profiles(rules(negated))) == ["bob", "cid", "dee", "eve", "fay"]


def test_the_purpose_field_is_any_channel_and_a_channel_field_is_that_channel(people):
    any_channel = rules_profiles(rules(F("consent:email_marketing", "equals", "granted")))
    by_email = rules_profiles(rules(F("consent:email_marketing:email", "equals", "granted")))
    by_post = rules_profiles(
        rules(F("consent:email_marketing:post", "in", ["denied", "withdrawn"]))
    )
    assert names(any_channel) == ["ann"]  # gus's newest decision (by post) is a denial
    assert names(by_email) == ["ann", "gus"]
    assert names(by_post) == ["bob", "gus"]  # bob's withdrawal on 'all' counts for post


def test_unknown_purpose_channel_or_value_is_a_clear_problem(people):
    with pytest.raises(RuleError) as unknown_purpose:
        rules_profiles(rules(F("consent:newsletter", "equals", "granted")))
    assert 'Unknown field "consent:newsletter"' in str(unknown_purpose.value)
    with pytest.raises(RuleError) as unknown_channel:
        rules_profiles(rules(F("consent:email_marketing:pigeon", "equals", "granted")))
    assert "Unknown field" in str(unknown_channel.value)
    with pytest.raises(RuleError) as bad_value:
        rules_profiles(rules(F("consent:email_marketing", "equals", "yes")))
    assert '"yes" is not one of: Granted, Denied, Withdrawn, Unknown (no decision)' in str(
        bad_value.value
    )
    with pytest.raises(RuleError) as bad_operator:
        rules_profiles(rules(F("consent:email_marketing", "contains", "gran")))
    assert "use one of: equals, not_equals, in, not_in" in str(bad_operator.value)


def test_a_purpose_added_later_is_a_field_without_rebuilding_the_registry(people):
    registry = get_registry()
    before = [i["key"] for s in registry.palette() if s["group"] == "Consent" for i in s["items"]]
    Purpose.objects.create(key="loyalty_news", name="Loyalty newsletter")
    after = {
        i["key"]: i["label"]
        for s in get_registry().palette()
        if s["group"] == "Consent"
        for i in s["items"]
    }

    assert get_registry() is registry
    assert "consent:loyalty_news" not in before and "consent:email_marketing" in before
    assert after["consent:loyalty_news"] == "Consent: Loyalty newsletter"
    assert len(after) == Purpose.objects.count()
    unknown = rules_profiles(rules(F("consent:loyalty_news", "equals", "unknown")))
    assert unknown.count() == 7


def test_builder_lists_consent_fields_offers_the_states_and_a_select(admin_client, people):
    page = admin_client.get(reverse("admin:segments_builder")).content.decode()
    assert 'data-key="consent:email_marketing"' in page
    assert "Consent: E-mail marketing" in page

    values = admin_client.get(
        reverse("admin:segments_builder_values"), {"field": "consent:email_marketing", "q": "w"}
    )
    assert values.content.decode().split() == ["<option", 'value="withdrawn"></option>']
    unknown = admin_client.get(
        reverse("admin:segments_builder_values"), {"field": "consent:email_marketing", "q": "Unk"}
    )
    assert 'value="unknown"' in unknown.content.decode()

    tree = rules(F("consent:email_marketing:email", "equals", "granted"))
    html = admin_client.post(
        reverse("admin:segments_builder_tree"),
        {
            "rules": json.dumps({**tree, "exclude": rules()["include"]}),
            "action": "noop",
            "path": "include",
        },
    ).content.decode()
    assert '<option value="granted" selected>Granted</option>' in html
    assert '<option value="unknown">Unknown (no decision)</option>' in html
    counts = admin_client.post(
        reverse("admin:segments_builder_counts"), {"rules": json.dumps(tree)}
    ).content.decode()
    assert '<strong id="seg-total" hx-swap-oob="true">2</strong>' in counts
