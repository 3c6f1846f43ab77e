"""The consent selectors segments and activation compose into their queries: newest decision
by capture time, the 'all' channel, unknown as NULL, restriction, purposes added later."""

from __future__ import annotations

from datetime import UTC, datetime

from consent.models import Channel, Purpose, Restriction
from consent.selectors import (
    consent_denied_profile_ids,
    consent_granted_profile_ids,
    consent_status_subquery,
    restricted_profile_ids,
)
from consent.services.consent import consent_record
from profiles.models import Profile


def at(month: int) -> datetime:
    return datetime(2024, month, 1, tzinfo=UTC)


def decide(profile, purpose, channel, status, month):
    return consent_record(
        profile=profile,
        purpose=purpose,
        channel=channel,
        status=status,
        source="form",
        captured_at=at(month),
    )


def statuses(purpose: str, channel: str | None = None) -> dict[int, str | None]:
    annotated = Profile.objects.annotate(s=consent_status_subquery(purpose, channel))
    return dict(annotated.values_list("pk", "s"))


def test_current_state_is_the_newest_decision_by_capture_time_and_unknown_is_null(db):
    late_entry, all_channel, sms_only, never = (Profile.objects.create() for _ in range(4))
    # Entered later but captured earlier: the earlier capture does not win.
    decide(late_entry, "email_marketing", "email", "granted", 6)
    decide(late_entry, "email_marketing", "email", "withdrawn", 2)
    # An opt-out on every channel beats an older e-mail opt-in.
    decide(all_channel, "email_marketing", "email", "granted", 1)
    decide(all_channel, "email_marketing", "all", "denied", 3)
    decide(sms_only, "email_marketing", "sms", "denied", 1)

    email = statuses("email_marketing", "email")
    assert email == {
        late_entry.pk: "granted",
        all_channel.pk: "denied",
        sms_only.pk: None,  # a decision on another channel says nothing about e-mail
        never.pk: None,
    }
    assert statuses("email_marketing")[sms_only.pk] == "denied"  # any channel
    granted = set(
        Profile.objects.filter(
            pk__in=consent_granted_profile_ids("email_marketing", "email")
        ).values_list("pk", flat=True)
    )
    assert granted == {late_entry.pk}
    denied = set(
        Profile.objects.filter(
            pk__in=consent_denied_profile_ids("email_marketing", "email")
        ).values_list("pk", flat=True)
    )
    assert denied == {all_channel.pk}


def test_gate_is_one_query_and_excludes_restricted_profiles(db, django_assert_num_queries):
    free, restricted = Profile.objects.create(), Profile.objects.create()
    for profile in (free, restricted):
        decide(profile, "analytics", "web", "granted", 1)
    Restriction.objects.create(profile=restricted)
    with django_assert_num_queries(1):
        ids = list(
            Profile.objects.filter(pk__in=consent_granted_profile_ids("analytics", "web"))
            .exclude(pk__in=restricted_profile_ids())
            .values_list("pk", flat=True)
        )
    assert ids == [free.pk]


def test_a_purpose_and_channel_added_later_work_like_the_seeded_ones(db):
    Purpose.objects.create(key="loyalty_programme", name="Loyalty programme")
    Channel.objects.create(key="whatsapp", name="WhatsApp")
    profile = Profile.objects.create()
    decide(profile, "loyalty_programme", "whatsapp", "granted", 1)
    assert statuses("loyalty_programme", "whatsapp") == {profile.pk: "granted"}
    assert statuses("loyalty_programme", "sms") == {profile.pk: None}
