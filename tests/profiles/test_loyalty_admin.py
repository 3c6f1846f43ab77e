"""Loyalty admin: members with balance and tier, the ledger, enrolment, bulk adjustments."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from cdp.models import AuditEvent
from profiles.models import LoyaltyLedgerEntry, LoyaltyMember
from profiles.services.loyalty import (
    loyalty_member_enrol,
    loyalty_points_adjust,
    loyalty_profiles_merged,
)
from tests.profiles.loyalty_helpers import dt, make_profile, make_program

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
CHANGELIST = "admin:profiles_loyaltymember_changelist"


@pytest.fixture
def program():
    return make_program()


def enrol(program, **attributes):
    return loyalty_member_enrol(
        program=program, profile=make_profile(**attributes), at=dt("2026-01-01")
    )


def user_with_role(role: str) -> User:
    user = User.objects.create_user(f"{role.split()[0].lower()}-user", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def test_member_list_shows_tier_and_balance_within_a_query_budget(
    admin_client, program, django_assert_max_num_queries
):
    members = [enrol(program) for _ in range(30)]
    loyalty_points_adjust(member=members[0], points=321, reason="x", at=dt("2026-01-02"))

    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    rows = {m.pk: m for m in response.context["cl"].result_list}
    assert len(rows) == 30
    assert rows[members[0].pk].points_balance == 321
    assert rows[members[0].pk].tier.name == "Base"
    assert response.context["cl"].show_full_result_count is False


def test_bulk_adjustment_asks_for_a_reason_then_applies_once(admin_client, program, admin_user):
    a, b = enrol(program), enrol(program)
    url = reverse(CHANGELIST)
    selection = {"action": "adjust_points", "_selected_action": [a.pk, b.pk]}

    form_page = admin_client.post(url, selection)

    assert form_page.status_code == 200
    html = form_page.content.decode()
    assert "Adjust the points of 2 selected members" in html
    token = re.search(r'name="token" value="([0-9a-f]+)"', html).group(1)
    missing = admin_client.post(url, {**selection, "apply": "1", "points": "50", "token": token})
    assert "This field is required." in missing.content.decode()
    assert LoyaltyLedgerEntry.objects.count() == 0

    data = {
        **selection,
        "apply": "1",
        "points": "50",
        "currency": "points",
        "reason": "storm delay",
        "token": token,
    }
    done = admin_client.post(url, data, follow=True)
    again = admin_client.post(url, data, follow=True)

    assert "Adjusted 2 member(s) by 50 points." in done.content.decode()
    assert "already applied" in again.content.decode()
    assert sorted(
        LoyaltyLedgerEntry.objects.values_list("member_id", "points", "reason", "created_by")
    ) == [(a.pk, 50, "storm delay", admin_user.pk), (b.pk, 50, "storm delay", admin_user.pk)]
    audit = AuditEvent.objects.get(action="loyalty.points.adjust")
    assert (audit.actor, audit.details["points"]) == (admin_user, 50)


def test_bulk_removal_skips_members_with_too_few_points(admin_client, program):
    a, b = enrol(program), enrol(program)
    loyalty_points_adjust(member=a, points=100, reason="x", at=dt("2026-01-02"))
    data = {
        "action": "adjust_points",
        "_selected_action": [a.pk, b.pk],
        "apply": "1",
        "points": "-60",
        "currency": "points",
        "reason": "correction",
        "token": "t1",
    }

    response = admin_client.post(reverse(CHANGELIST), data, follow=True)

    html = response.content.decode()
    assert "Adjusted 1 member(s) by -60 points." in html
    assert f"Skipped: Member {b.member_number} has 0 points; 60 cannot be removed." in html
    assert LoyaltyMember.objects.get(pk=a.pk).points_balance == 40


def test_only_roles_with_the_adjust_permission_see_the_action(client, program):
    enrol(program)
    marketer, steward = user_with_role("Marketer"), user_with_role("Data Steward")

    client.force_login(marketer)
    as_marketer = client.get(reverse(CHANGELIST))
    client.force_login(steward)
    as_steward = client.get(reverse(CHANGELIST))

    assert "adjust_points" in as_marketer.content.decode()
    assert as_steward.status_code == 200
    assert "adjust_points" not in as_steward.content.decode()
    client.force_login(User.objects.create_user("nobody", password="x", is_staff=True))
    assert client.get(reverse(CHANGELIST)).status_code == 403


def test_enrol_in_the_admin_shows_a_taken_number_on_the_form(admin_client, program):
    taken = loyalty_member_enrol(program=program, profile=make_profile(), member_number="CL-77")
    profile = make_profile()
    url = reverse("admin:profiles_loyaltymember_add")

    refused = admin_client.post(
        url, {"program": program.pk, "profile": profile.pk, "member_number": "cl 77"}
    )
    created = admin_client.post(url, {"program": program.pk, "profile": profile.pk})

    assert refused.status_code == 200
    assert f"The member number {taken.member_number} is taken in Club." in (
        refused.content.decode()
    )
    assert created.status_code == 302
    member = LoyaltyMember.objects.get(profile=profile)
    assert member.member_number.startswith("CL")
    assert member.tier.name == "Base"


def test_member_page_escapes_the_profile_and_links_the_whole_ledger(admin_client, program):
    a = loyalty_member_enrol(
        program=program, profile=make_profile(), member_number="CL-A", at=dt("2026-01-01")
    )
    a.profile.first_name = SCRIPT
    a.profile.save()
    b, outsider = enrol(program), enrol(program)
    loyalty_points_adjust(member=outsider, points=99, reason="o", at=dt("2026-01-02"))
    loyalty_points_adjust(member=a, points=10, reason="a", at=dt("2026-01-02"))
    loyalty_points_adjust(member=b, points=20, reason="b", at=dt("2026-01-03"))
    loyalty_profiles_merged(survivor_id=a.profile_id, other_ids=[b.profile_id])

    page = admin_client.get(reverse("admin:profiles_loyaltymember_change", args=[a.pk]))
    ledger = admin_client.get(
        reverse("admin:profiles_loyaltyledgerentry_changelist") + f"?account={a.pk}"
    )

    html = page.content.decode()
    assert escape(SCRIPT) in html and SCRIPT not in html
    assert "2 entries" in html
    assert sorted(e.points for e in ledger.context["cl"].result_list) == [10, 20]


def test_ledger_is_read_only_in_the_admin(admin_client, program):
    member = enrol(program)
    entry = loyalty_points_adjust(member=member, points=10, reason="x", at=dt("2026-01-02"))
    url = reverse("admin:profiles_loyaltyledgerentry_change", args=[entry.pk])

    admin_client.post(url, {"points": "9999"})
    delete = admin_client.post(
        reverse("admin:profiles_loyaltyledgerentry_delete", args=[entry.pk]), {"post": "yes"}
    )

    assert delete.status_code == 403
    assert LoyaltyLedgerEntry.objects.get(pk=entry.pk).points == 10


def test_bulk_adjustment_refuses_a_selection_that_is_too_big(admin_client, program, monkeypatch):
    from profiles import loyalty_admin

    monkeypatch.setattr(loyalty_admin, "MAX_BULK_ADJUST", 1)
    a, b = enrol(program), enrol(program)
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "adjust_points", "_selected_action": [a.pk, b.pk]},
        follow=True,
    )
    assert "Select at most 1 members per adjustment" in response.content.decode()


def test_ledger_account_filter_rejects_a_bad_value(admin_client, program):
    response = admin_client.get(
        reverse("admin:profiles_loyaltyledgerentry_changelist") + "?account=x"
    )
    assert response.status_code == 302
    assert response.url.endswith("?e=1")


def test_profile_page_shows_membership_to_loyalty_roles_only(client, admin_client, program):
    member = enrol(program)
    now = timezone.now()
    # Valid 365 days: 20 points expire in 15 days (within the 30 shown), 100 in a year.
    loyalty_points_adjust(member=member, points=20, reason="old", at=now - timedelta(days=350))
    loyalty_points_adjust(member=member, points=100, reason="new", at=now)
    LoyaltyMember.objects.filter(pk=member.pk).update(
        tier=program.tiers.get(name="Silver"),
        tier_valid_until=dt("2027-02-01"),
        qualifying_points=600,
    )
    url = reverse("admin:profiles_profile_change", args=[member.profile_id])

    html = admin_client.get(url).content.decode()

    card = html.split("Loyalty:</label>")[1].split("</table>")[0]
    member_url = reverse("admin:profiles_loyaltymember_change", args=[member.pk])
    assert re.findall(r"<td>(.*?)</td>", card) == [
        f'<a href="{member_url}">{member.member_number}</a>',
        "Club",
        "Silver",
        "2027-02-01",
        "120",
        "20",
        "600",
        "0.00",
        "Gold: 400 qualifying points, 2000.00 spend more",
    ]

    client.force_login(user_with_role("Data Engineer"))
    engineer_html = client.get(url).content.decode()
    assert client.get(url).status_code == 200
    # The number is an identity (shown with the identities); tier and balance are not shown.
    assert "Loyalty:" not in engineer_html
    assert member_url not in engineer_html

    other = make_profile()
    other_url = reverse("admin:profiles_profile_change", args=[other.pk])
    assert "Not a member of any program." in admin_client.get(other_url).content.decode()
