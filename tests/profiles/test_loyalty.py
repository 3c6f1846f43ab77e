"""Loyalty services: enrolment, earning, redemption, expiry, refunds, retries, tiers, merges."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from cdp.models import AuditEvent
from cdp.normalize import identifier_key
from profiles.models import (
    Event,
    Identity,
    LoyaltyActivity,
    LoyaltyEarningRule,
    LoyaltyJobRun,
    LoyaltyLedgerEntry,
    LoyaltyMember,
    LoyaltyTierChange,
    Profile,
    ProfileRedirect,
)
from profiles.selectors import profile_lookup
from profiles.services.loyalty import (
    LoyaltyError,
    TierSpec,
    add_months,
    fifo_allocate,
    loyalty_events_earn,
    loyalty_job_enqueue,
    loyalty_member_enrol,
    loyalty_points_adjust,
    loyalty_points_adjust_bulk,
    loyalty_points_expire,
    loyalty_points_redeem,
    loyalty_points_transfer,
    loyalty_profile_erase,
    loyalty_profile_unmerged,
    loyalty_tiers_evaluate,
    tier_decide,
)
from profiles.services.merging import profile_unmerge, profiles_merge
from profiles.services.tracking import tracking_messages_ingest
from tests.profiles.loyalty_helpers import dt, make_profile, make_program, order, refund

pytestmark = pytest.mark.django_db


@pytest.fixture
def program():
    return make_program()


def enrol(program, profile=None, when="2026-01-01", number=""):
    return loyalty_member_enrol(
        program=program, profile=profile or make_profile(), member_number=number, at=dt(when)
    )


def fresh(member: LoyaltyMember) -> LoyaltyMember:
    return LoyaltyMember.objects.select_related("tier").get(pk=member.pk)


def earn(program, when: str):
    return loyalty_events_earn(program=program, at=dt(when))


# --- pure helpers ------------------------------------------------------------------------------


def test_add_months_clamps_to_month_end():
    assert add_months(dt("2026-01-31"), 1) == dt("2026-02-28")
    assert add_months(dt("2026-03-15T10:30"), -12) == dt("2025-03-15T10:30")
    assert add_months(dt("2024-02-29"), 12) == dt("2025-02-28")


def test_fifo_allocate_takes_oldest_first_and_refuses_too_much():
    assert fifo_allocate([(1, 100), (2, 50)], 120) == [(1, 100), (2, 20)]
    with pytest.raises(LoyaltyError, match="The balance is 150 points; 200 are needed."):
        fifo_allocate([(1, 100), (2, 50)], 200)


def test_tier_decide_upgrades_at_once_and_keeps_tier_until_period_end():
    tiers = [TierSpec(1, "Base", 0, None, None), TierSpec(2, "Silver", 1, 500, None)]
    up = tier_decide(
        tiers=tiers,
        current_id=1,
        valid_until=dt("2026-06-01"),
        points=500,
        spend=Decimal(0),
        at=dt("2026-02-01"),
        period_months=12,
    )
    assert (up.tier_id, up.valid_until) == (2, dt("2027-02-01"))
    assert up.reason.startswith("upgrade: 500 qualifying points")
    kept = tier_decide(
        tiers=tiers,
        current_id=2,
        valid_until=dt("2027-02-01"),
        points=0,
        spend=Decimal(0),
        at=dt("2027-01-31"),
        period_months=12,
    )
    assert (kept.tier_id, kept.reason) == (2, "")


# --- enrolment and the member number identity --------------------------------------------------


def test_enrol_gives_entry_tier_and_a_member_number_identity(program):
    profile = make_profile()
    member = enrol(program, profile, number="cl 1234-5678")

    assert member.member_number == "CL12345678"
    assert member.tier.name == "Base"
    assert member.tier_valid_until == dt("2027-01-01")
    identity = Identity.objects.get(profile=profile, type="member_number")
    assert (identity.raw_value, identity.key) == ("cl 1234-5678", "CL12345678")
    assert identifier_key("member_number", "CL-1234 5678").key == "CL12345678"
    assert profile_lookup(id_type="member_number", value="cl12345678").pk == profile.pk
    change = LoyaltyTierChange.objects.get(member=member)
    assert change.reason.startswith("enrolled in Base")


def test_enrol_refuses_a_second_membership_and_someone_elses_number(program):
    first = enrol(program, number="CL1")
    with pytest.raises(LoyaltyError, match="already a member of Club"):
        enrol(program, first.profile)
    with pytest.raises(LoyaltyError, match="The member number CL1 is taken in Club."):
        enrol(program, number="cl-1")
    assert LoyaltyMember.objects.count() == 1


def test_enrol_generates_a_number_with_the_program_prefix(program):
    member = enrol(program)
    assert member.member_number.startswith("CL")
    assert len(member.member_number) == 12


# --- earning -----------------------------------------------------------------------------------


def test_order_earns_points_per_unit_and_first_order_bonus(program):
    member = enrol(program)
    order(member.profile, "2026-02-01", 123.45, total=130.0)
    order(member.profile, "2026-02-05", "50.99")

    counts = earn(program, "2026-02-06")

    member = fresh(member)
    # 123 + 100 (first order) + 50; revenue is rounded down per order.
    assert member.points_balance == 273
    assert member.qualifying_points == 173
    assert member.spend_in_period == Decimal("174.44")
    assert counts["orders"] == 2
    assert counts["points_earned"] == 273
    kinds = sorted(LoyaltyLedgerEntry.objects.filter(member=member).values_list("reason", "points"))
    assert kinds == [
        ("1 point per unit", 50),
        ("1 point per unit", 123),
        ("1 qualifying point per unit", 50),
        ("1 qualifying point per unit", 123),
        ("First order", 100),
    ]


def test_orders_before_enrolment_and_of_non_members_earn_nothing(program):
    member = enrol(program, when="2026-03-01")
    order(member.profile, "2026-02-01", 500)
    order(make_profile(), "2026-03-05", 500)

    earn(program, "2026-03-10")

    assert fresh(member).points_balance == 0
    # The member's earlier order is marked handled (not looked at again); the non-member's
    # order is not touched at all.
    assert list(LoyaltyActivity.objects.values_list("note", flat=True)) == ["before enrolment"]


def test_birthday_month_bonus_once_a_year(program):
    member = enrol(program, make_profile(birth_date="1990-03-15"))
    order(member.profile, "2026-02-10", 10)
    order(member.profile, "2026-03-02", 10)
    order(member.profile, "2026-03-20", 10)

    earn(program, "2026-03-31")

    # 3 x 10 + first order 100 + one birthday bonus 200
    assert fresh(member).points_balance == 330
    birthday = LoyaltyLedgerEntry.objects.get(reason="Birthday")
    assert birthday.occurred_at == dt("2026-03-02")


def test_other_currency_and_unreadable_orders_are_kept_with_a_note(program):
    program.currency = "EUR"
    program.save()
    member = enrol(program)
    order(member.profile, "2026-02-01", 80, currency="USD")
    order(member.profile, "2026-02-02", "n/a")
    order(member.profile, "2026-02-03", 20, currency="eur")

    counts = earn(program, "2026-02-04")

    assert fresh(member).points_balance == 120
    notes = sorted(LoyaltyActivity.objects.exclude(note="").values_list("note", flat=True))
    assert notes == ["currency USD is not EUR", "no usable revenue or total"]
    assert (counts["other_currency_orders"], counts["unreadable_orders"]) == (1, 1)


# --- retried events ----------------------------------------------------------------------------


def test_a_retried_event_earns_once(program, make_source):
    source = make_source(name="shop-web", kind="api")
    profile_msg = {"type": "identify", "userId": "u1", "messageId": "id-1", "traits": {}}
    tracking_messages_ingest(source=source, messages=[profile_msg])
    member = enrol(program, Profile.objects.get(), when="2026-01-01")
    message = {
        "type": "track",
        "userId": "u1",
        "event": "Order Completed",
        "messageId": "order-msg-1",
        "timestamp": "2026-02-01T10:00:00Z",
        "properties": {"order_id": "A-1", "revenue": 40},
    }
    first = tracking_messages_ingest(source=source, messages=[message])
    earn(program, "2026-02-02")
    retry = tracking_messages_ingest(source=source, messages=[message])
    earn(program, "2026-02-03")
    # The same order sent again with a new messageId (a client that regenerates ids).
    tracking_messages_ingest(source=source, messages=[{**message, "messageId": "order-msg-2"}])
    counts = earn(program, "2026-02-04")

    assert (first["accepted"], retry["duplicates"]) == (1, 1)
    assert fresh(member).points_balance == 140
    assert counts["duplicate_orders"] == 1
    assert LoyaltyActivity.objects.get(kind="ignored").note == (
        "order already earned (duplicate order_id)"
    )
    entry = LoyaltyLedgerEntry.objects.filter(reason="1 point per unit").get()
    with pytest.raises(IntegrityError), transaction.atomic():
        LoyaltyLedgerEntry.objects.create(
            member=member,
            kind="earn",
            currency="points",
            points=40,
            rule=entry.rule,
            event=entry.event,
        )


def test_earning_only_the_events_an_ingest_stored(program):
    member = enrol(program)
    e1 = order(member.profile, "2026-02-01", 10)
    order(member.profile, "2026-02-02", 20)

    loyalty_events_earn(event_ids=[e1.pk], at=dt("2026-02-03"))

    assert fresh(member).points_balance == 110
    earn(program, "2026-02-04")
    assert fresh(member).points_balance == 130


# --- redemption --------------------------------------------------------------------------------


def test_redemption_reduces_balance_and_never_goes_negative(program):
    member = enrol(program)
    order(member.profile, "2026-02-01", 123)
    earn(program, "2026-02-02")

    entry = loyalty_points_redeem(member=member, points=200, reason="voucher", at=dt("2026-02-03"))

    assert entry.points == -200
    assert fresh(member).points_balance == 23
    with pytest.raises(LoyaltyError, match="The balance is 23 points; 50 are needed."):
        loyalty_points_redeem(member=member, points=50, reason="voucher", at=dt("2026-02-04"))
    assert fresh(member).points_balance == 23
    assert LoyaltyLedgerEntry.objects.filter(kind="redeem").count() == 1


def test_balance_check_constraint_refuses_negative_cache(program):
    member = enrol(program)
    with pytest.raises(IntegrityError), transaction.atomic():
        LoyaltyMember.objects.filter(pk=member.pk).update(points_balance=-1)


# --- expiry ------------------------------------------------------------------------------------


def test_points_expire_oldest_first(program):
    member = enrol(program)
    loyalty_points_adjust(member=member, points=100, reason="welcome", at=dt("2026-01-01"))
    loyalty_points_adjust(member=member, points=50, reason="survey", at=dt("2026-03-01"))
    loyalty_points_redeem(member=member, points=120, reason="voucher", at=dt("2026-04-01"))

    lots = list(
        LoyaltyLedgerEntry.objects.filter(kind="adjust")
        .order_by("occurred_at")
        .values_list("remaining", "expires_at")
    )
    assert lots == [(0, dt("2027-01-01")), (30, dt("2027-03-01"))]
    assert loyalty_points_expire(program=program, at=dt("2027-01-02"))["expired_points"] == 0
    assert fresh(member).points_balance == 30

    result = loyalty_points_expire(program=program, at=dt("2027-03-02"))

    assert (result["expired_lots"], result["expired_points"]) == (1, 30)
    expiry = LoyaltyLedgerEntry.objects.get(kind="expire")
    assert (expiry.points, expiry.occurred_at, expiry.lot.reason) == (
        -30,
        dt("2027-03-01"),
        "survey",
    )
    assert fresh(member).points_balance == 0
    assert loyalty_points_expire(program=program, at=dt("2027-04-01"))["expired_lots"] == 0


def test_redeeming_after_expiry_date_cannot_use_expired_points(program):
    member = enrol(program)
    loyalty_points_adjust(member=member, points=100, reason="welcome", at=dt("2026-01-01"))
    with pytest.raises(LoyaltyError, match="The balance is 0 points"):
        loyalty_points_redeem(member=member, points=10, reason="late", at=dt("2027-01-02"))
    # The failed redemption rolled back the expiry it triggered too: the job does it later.
    assert fresh(member).points_balance == 100
    loyalty_points_expire(at=dt("2027-01-02"))
    assert fresh(member).points_balance == 0


# --- refunds -----------------------------------------------------------------------------------


def test_full_refund_reverses_all_points_of_the_order(program):
    member = enrol(program)
    order(member.profile, "2026-02-01", 200, order_id="R-1", total=210)
    earn(program, "2026-02-02")
    assert fresh(member).points_balance == 300

    refund(member.profile, "2026-02-10", "R-1", total=210)
    counts = earn(program, "2026-02-11")

    member = fresh(member)
    assert (member.points_balance, member.qualifying_points) == (0, 0)
    assert member.spend_in_period == Decimal("0.00")
    assert counts["points_reversed"] == 300
    assert counts["qualifying_reversed"] == 200


def test_partial_refund_reverses_in_proportion_and_a_retried_refund_once(program):
    member = enrol(program)
    order(member.profile, "2026-02-01", 200, order_id="R-2", total=200)
    earn(program, "2026-02-02")
    event = refund(member.profile, "2026-02-10", "R-2", total=50)

    earn(program, "2026-02-11")
    earn(program, "2026-02-12")
    # A second delivery of the same refund event id through a different run path.
    loyalty_events_earn(event_ids=[event.pk], at=dt("2026-02-13"))

    member = fresh(member)
    # 25% of 200 points and of the 100 first-order bonus, and of 200 qualifying points.
    assert member.points_balance == 300 - 50 - 25
    assert member.qualifying_points == 150
    assert member.spend_in_period == Decimal("150.00")
    assert LoyaltyLedgerEntry.objects.filter(kind="reversal").count() == 3


def test_refund_after_points_were_spent_takes_back_only_what_is_left(program):
    member = enrol(program)
    order(member.profile, "2026-02-01", 200, order_id="R-3")
    earn(program, "2026-02-02")
    loyalty_points_redeem(member=member, points=250, reason="voucher", at=dt("2026-02-03"))

    refund(member.profile, "2026-02-10", "R-3")
    counts = earn(program, "2026-02-11")

    assert fresh(member).points_balance == 0
    assert counts["points_not_recovered"] == 250
    assert LoyaltyActivity.objects.get(kind="refund").note == (
        "250 points already spent could not be taken back"
    )


def test_refund_of_an_unknown_order_is_noted(program):
    member = enrol(program)
    refund(member.profile, "2026-02-10", "NOPE")
    counts = earn(program, "2026-02-11")
    assert counts["unmatched_refunds"] == 1
    assert LoyaltyActivity.objects.get().note == "no earning order with this order_id"


# --- tiers -------------------------------------------------------------------------------------


def test_upgrade_at_once_downgrade_only_at_end_of_qualifying_period(program):
    member = enrol(program)
    order(member.profile, "2026-01-10", 600, order_id="T-1")
    earn(program, "2026-01-10T12:00")

    member = fresh(member)
    assert (member.tier.name, member.tier_valid_until) == ("Silver", dt("2027-01-10T12:00"))

    refund(member.profile, "2026-02-01", "T-1")
    earn(program, "2026-02-01T12:00")
    member = fresh(member)
    assert (member.qualifying_points, member.tier.name) == (0, "Silver")

    loyalty_tiers_evaluate(program=program, at=dt("2027-01-10T11:00"))
    assert fresh(member).tier.name == "Silver"

    counts = loyalty_tiers_evaluate(program=program, at=dt("2027-01-10T12:00"))

    member = fresh(member)
    assert (member.tier.name, member.tier_valid_until) == ("Base", dt("2028-01-10T12:00"))
    assert counts["downgrades"] == 1
    change = LoyaltyTierChange.objects.filter(member=member).first()
    assert (change.from_tier.name, change.to_tier.name) == ("Silver", "Base")
    assert change.reason == (
        "downgrade at the end of the qualifying period: 0 qualifying points and 0.00 spend "
        "in the last 12 months; Silver needs 500 qualifying points"
    )
    reasons = list(
        LoyaltyTierChange.objects.filter(member=member)
        .order_by("changed_at")
        .values_list("to_tier__name", flat=True)
    )
    assert reasons == ["Base", "Silver", "Base"]


def test_second_upgrade_within_a_period_then_downgrade_to_what_the_window_holds(program):
    member = enrol(program)
    order(member.profile, "2026-01-10", 600)
    earn(program, "2026-01-10")
    order(member.profile, "2026-06-01", 450)
    earn(program, "2026-06-01")

    member = fresh(member)
    assert (member.tier.name, member.tier_valid_until) == ("Gold", dt("2027-06-01"))
    assert LoyaltyTierChange.objects.get(to_tier__name="Gold").reason == (
        "upgrade: 1050 qualifying points and 1050.00 spend in the last 12 months reach Gold "
        "(needs 1000 qualifying points or 2000.00 spend)"
    )
    order(member.profile, "2026-09-01", 500)
    earn(program, "2026-09-01")
    assert fresh(member).tier_valid_until == dt("2027-06-01")  # same tier: period unchanged

    # At the end of the period only September's 500 are in the window: Silver, not Base.
    loyalty_tiers_evaluate(program=program, at=dt("2027-06-01"))

    member = fresh(member)
    assert (member.tier.name, member.tier_valid_until) == ("Silver", dt("2028-06-01"))
    assert member.qualifying_points == 500


def test_spend_qualifies_for_gold_without_points(program):
    program.earning_rules.filter(currency="qualifying").update(is_active=False)
    member = enrol(program)
    order(member.profile, "2026-02-01", 2100)
    earn(program, "2026-02-01")
    member = fresh(member)
    assert (member.tier.name, member.qualifying_points) == ("Gold", 0)


def test_tier_job_runs_with_a_run_row(program, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    enrol(program)
    with django_capture_on_commit_callbacks(execute=True):
        queued = loyalty_job_enqueue(kind=LoyaltyJobRun.Kind.TIERS, program=program)
    assert OrmQ.objects.count() == 1
    assert queued.status == "queued"

    run = loyalty_job_enqueue(kind=LoyaltyJobRun.Kind.TIERS, program=program, sync=True)

    assert run.status == "succeeded"
    assert run.counts == {"evaluated": 1, "upgrades": 0, "downgrades": 0, "initial": 0}


# --- adjustments and transfers -----------------------------------------------------------------


def test_bulk_adjustment_skips_members_without_enough_points(program, admin_user):
    a, b, c = enrol(program), enrol(program), enrol(program)
    loyalty_points_adjust_bulk(
        member_ids=[a.pk, b.pk], points=80, reason="goodwill", actor=admin_user
    )

    entries, skipped = loyalty_points_adjust_bulk(
        member_ids=[a.pk, b.pk, c.pk],
        points=-50,
        reason="correction",
        actor=admin_user,
        idempotency_key="k1",
    )

    assert [e.member_id for e in entries] == [a.pk, b.pk]
    assert skipped == [(c.pk, f"Member {c.member_number} has 0 points; 50 cannot be removed.")]
    assert [fresh(m).points_balance for m in (a, b, c)] == [30, 30, 0]
    audit = AuditEvent.objects.get(target="loyalty_adjustment:k1")
    assert audit.details["member_ids"] == [a.pk, b.pk]
    assert audit.details["skipped_member_ids"] == [c.pk]
    assert audit.actor == admin_user
    with pytest.raises(LoyaltyError, match="already applied"):
        loyalty_points_adjust_bulk(
            member_ids=[a.pk], points=-5, reason="again", idempotency_key="k1"
        )


def test_transfer_moves_points_with_their_expiry(program):
    a, b = enrol(program), enrol(program)
    loyalty_points_adjust(member=a, points=100, reason="x", at=dt("2026-01-01"))
    loyalty_points_adjust(member=a, points=100, reason="y", at=dt("2026-02-01"))

    out, credits = loyalty_points_transfer(sender=a, recipient=b, points=150, at=dt("2026-03-01"))

    assert out.points == -150
    assert [(c.points, c.expires_at) for c in credits] == [
        (100, dt("2027-01-01")),
        (50, dt("2027-02-01")),
    ]
    assert (fresh(a).points_balance, fresh(b).points_balance) == (50, 150)
    with pytest.raises(LoyaltyError, match="The balance is 50 points; 60 are needed."):
        loyalty_points_transfer(sender=a, recipient=b, points=60, at=dt("2026-03-02"))


# --- merge, unmerge, erasure -------------------------------------------------------------------


def _merge(survivor: Profile, other: Profile) -> None:
    """The profile merge, which combines memberships before it deletes ``other``."""
    profiles_merge(survivor_id=survivor.pk, other_ids=[other.pk], reason="test")


def _unmerge(survivor: Profile, other_id: int) -> None:
    """Loyalty's side of an unmerge alone: restore the profile with its id, then call the hook."""
    Profile.objects.create(pk=other_id, first_name="restored")
    ProfileRedirect.objects.filter(old_id=other_id).delete()
    loyalty_profile_unmerged(survivor_id=survivor.pk, restored_ids=[other_id])


def test_merge_combines_memberships_and_unmerge_splits_them_back(program):
    a = enrol(program, number="CL-A")
    b = enrol(program, number="CL-B")
    loyalty_points_adjust(member=a, points=300, reason="a", at=dt("2026-01-01"))
    loyalty_points_adjust(member=b, points=100, reason="b", at=dt("2026-02-01"))
    b_profile_id = b.profile_id

    _merge(a.profile, b.profile)

    a, b = fresh(a), fresh(b)
    assert (a.points_balance, a.status) == (400, "active")
    assert (b.status, b.merged_into_id, b.profile_id) == ("merged", a.pk, a.profile_id)
    assert LoyaltyLedgerEntry.objects.get(reason="b").member_id == b.pk  # keeps its origin

    loyalty_points_redeem(member=a, points=350, reason="trip", at=dt("2026-03-01"))
    assert fresh(a).points_balance == 50

    _unmerge(a.profile, b_profile_id)

    a, b = fresh(a), fresh(b)
    # The redemption used a's 300 first (older), then 50 of b's 100.
    assert (a.points_balance, a.profile_id, a.status) == (0, a.profile_id, "active")
    assert (b.points_balance, b.profile_id, b.status, b.merged_into_id) == (
        50,
        b_profile_id,
        "active",
        None,
    )
    settlements = sorted(
        LoyaltyLedgerEntry.objects.filter(kind="settlement").values_list("member_id", "points")
    )
    assert settlements == sorted([(a.pk, 50), (b.pk, -50)])


def test_merge_gives_the_best_tier_and_unmerge_restores_each_tier(program):
    a, b = enrol(program), enrol(program)
    order(b.profile, "2026-01-05", 1200)
    earn(program, "2026-01-05")
    assert fresh(b).tier.name == "Gold"
    b_profile_id = b.profile_id

    _merge(a.profile, b.profile)
    a = fresh(a)
    assert a.tier.name == "Gold"
    assert LoyaltyTierChange.objects.filter(member=a).first().reason == (
        f"merge: member {b.member_number} held Gold"
    )

    _unmerge(a.profile, b_profile_id)
    assert (fresh(a).tier.name, fresh(b).tier.name) == ("Base", "Gold")
    assert fresh(b).points_balance == 1300


def test_merge_moves_a_membership_to_a_survivor_without_one_and_back(program):
    survivor = make_profile()
    b = enrol(program)
    b_profile_id = b.profile_id
    _merge(survivor, b.profile)
    assert fresh(b).profile_id == survivor.pk

    _unmerge(survivor, b_profile_id)
    assert (fresh(b).profile_id, fresh(b).status) == (b_profile_id, "active")


def test_deleting_a_profile_with_a_membership_is_refused(program):
    a = enrol(program)
    with pytest.raises(IntegrityError), transaction.atomic():
        Profile.objects.filter(pk=a.profile_id).delete()
    assert LoyaltyMember.objects.count() == 1


def test_profile_merge_combines_memberships_and_keeps_both_member_numbers(program):
    """The plain profile merge (resolution and stewards call it) carries the memberships."""
    a = enrol(program, number="CL-A")
    b = enrol(program, number="CL-B")
    loyalty_points_adjust(member=a, points=30, reason="a", at=dt("2026-01-02"))
    loyalty_points_adjust(member=b, points=12, reason="b", at=dt("2026-01-03"))

    profiles_merge(survivor_id=a.profile_id, other_ids=[b.profile_id], reason="shared e-mail")

    assert list(Profile.objects.values_list("pk", flat=True)) == [a.profile_id]
    a, b = fresh(a), fresh(b)
    assert (a.status, a.points_balance) == ("active", 42)
    assert (b.profile_id, b.status, b.merged_into_id) == (a.profile_id, "merged", a.pk)
    assert AuditEvent.objects.get(action="loyalty.members.merge").details["combined"] == 1
    assert profile_lookup(id_type="member_number", value="CL-B").pk == a.profile_id


def test_steward_merge_and_unmerge_of_the_merge_module_carry_memberships(program):
    """The steward merge and unmerge: loyalty takes part as a registered merge participant."""
    a, b = enrol(program, number="CL-A"), enrol(program, number="CL-B")
    loyalty_points_adjust(member=a, points=30, reason="a", at=dt("2026-01-02"))
    loyalty_points_adjust(member=b, points=12, reason="b", at=dt("2026-01-03"))
    b_profile_id = b.profile_id

    log = profiles_merge(survivor_id=a.profile_id, other_ids=[b_profile_id], reason="x")

    assert (fresh(a).points_balance, fresh(b).status, fresh(b).merged_into_id) == (
        42,
        "merged",
        a.pk,
    )

    profile_unmerge(merge_log=log)

    a, b = fresh(a), fresh(b)
    assert (a.points_balance, b.points_balance) == (30, 12)
    assert (b.status, b.profile_id) == ("active", b_profile_id)


def test_erasure_removes_memberships_ledger_and_member_number(program):
    a, b = enrol(program, number="CL-A"), enrol(program)
    order(a.profile, "2026-02-01", 50)
    earn(program, "2026-02-02")
    loyalty_points_transfer(sender=a, recipient=b, points=20, at=dt("2026-02-03"))
    loyalty_points_expire(at=dt("2027-02-02"))

    counts = loyalty_profile_erase(profile_id=a.profile_id)

    assert counts["members"] == 1
    assert counts["ledger_entries"] == 6  # 3 earn, 1 transfer out, 2 expiry
    assert not LoyaltyMember.objects.filter(pk=a.pk).exists()
    assert not Identity.objects.filter(type="member_number", key="CLA").exists()
    assert not LoyaltyActivity.objects.exists()
    assert LoyaltyLedgerEntry.objects.get(member=b, kind="transfer_in").counterpart is None
    assert AuditEvent.objects.get(action="loyalty.profile.erase").details["members"] == 1


def test_enrol_and_events_on_an_erased_then_new_profile(program):
    a = enrol(program, number="CL-9")
    loyalty_profile_erase(profile_id=a.profile_id)
    again = enrol(program, number="CL-9")
    assert again.member_number == "CL9"
    assert Event.objects.count() == 0


# --- concurrency (PostgreSQL) ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_redemptions_cannot_overdraw(program):
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the row lock is exercised on PostgreSQL")
    member = enrol(program)
    loyalty_points_adjust(member=member, points=100, reason="x", at=dt("2026-01-01"))
    barrier = threading.Barrier(2)
    results = []

    def redeem():
        try:
            barrier.wait()
            loyalty_points_redeem(member=member, points=80, reason="race", at=dt("2026-01-02"))
            results.append("ok")
        except LoyaltyError:
            results.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == ["ok", "refused"]
    assert fresh(member).points_balance == 20


def test_rules_can_be_turned_off(program):
    LoyaltyEarningRule.objects.filter(program=program).update(is_active=False)
    member = enrol(program)
    order(member.profile, "2026-02-01", 100)
    earn(program, "2026-02-02")
    assert fresh(member).points_balance == 0
    assert LoyaltyActivity.objects.get().amount == Decimal("100.00")


def test_bulk_enrolment_skips_members_and_numbers_of_others(program, django_assert_max_num_queries):
    from profiles.services.loyalty import loyalty_members_enrol_bulk

    existing = enrol(program, number="CL-1")
    profiles = [make_profile() for _ in range(4)]
    numbers = {profiles[0].pk: "cl 1", profiles[1].pk: "CL-2"}

    with django_assert_max_num_queries(20):
        counts = loyalty_members_enrol_bulk(
            program=program,
            profile_ids=[existing.profile_id, *(p.pk for p in profiles)],
            member_numbers=numbers,
            at=dt("2026-01-01"),
        )

    assert counts == {"enrolled": 3, "already_members": 1, "number_conflicts": 1}
    second = LoyaltyMember.objects.get(profile=profiles[1])
    assert (second.member_number, second.tier.name) == ("CL2", "Base")
    assert profile_lookup(id_type="member_number", value="cl-2").pk == profiles[1].pk
    assert not LoyaltyMember.objects.filter(profile=profiles[0]).exists()
    generated = LoyaltyMember.objects.get(profile=profiles[3]).member_number
    assert generated.startswith("CL") and len(generated) == 12
    assert LoyaltyTierChange.objects.filter(to_tier__name="Base").count() == 4


def test_order_and_its_refund_in_the_same_run(program):
    member = enrol(program)
    order(member.profile, "2026-02-01", 80, order_id="S-1")
    refund(member.profile, "2026-02-03", "S-1")
    order(member.profile, "2026-02-05", 30, order_id="S-2")

    counts = earn(program, "2026-02-06")

    # S-1 earned 80 + 100 (first order) and gave it all back; S-2 earns 30.
    assert (counts["refunds"], counts["points_reversed"]) == (1, 180)
    assert fresh(member).points_balance == 30
    assert fresh(member).spend_in_period == Decimal("30.00")


def test_ingest_hook_queues_earning_only_when_a_program_exists(
    django_capture_on_commit_callbacks,
):
    from django_q.models import OrmQ

    from profiles.services.loyalty import loyalty_events_ingested

    with django_capture_on_commit_callbacks(execute=True):
        loyalty_events_ingested(event_ids=[1, 2])
    assert OrmQ.objects.count() == 0

    make_program()
    with django_capture_on_commit_callbacks(execute=True):
        loyalty_events_ingested(event_ids=[1, 2])
    (queued,) = OrmQ.objects.all()
    assert queued.task["func"] == "profiles.loyalty_tasks.loyalty_events_earn"
    assert queued.task["args"] == ([1, 2],)


def test_chained_merges_keep_every_balance_and_unmerge_the_last_one(program):
    a, b, c = enrol(program), enrol(program), enrol(program)
    for member, points in ((a, 10), (b, 20), (c, 40)):
        loyalty_points_adjust(member=member, points=points, reason="x", at=dt("2026-01-02"))
    c_profile_id = c.profile_id

    _merge(b.profile, c.profile)  # c into b
    _merge(a.profile, Profile.objects.get(pk=b.profile_id))  # b (holding c) into a

    assert fresh(a).points_balance == 70
    assert {fresh(b).merged_into_id, fresh(c).merged_into_id} == {a.pk}
    assert LoyaltyMember.objects.filter(profile_id=a.profile_id).count() == 3

    # Undo the first merge only: c comes back with its own 40 points.
    Profile.objects.create(pk=c_profile_id)
    ProfileRedirect.objects.filter(old_id=c_profile_id).delete()
    loyalty_profile_unmerged(survivor_id=a.profile_id, restored_ids=[c_profile_id])

    assert (fresh(a).points_balance, fresh(c).points_balance) == (30, 40)
    assert (fresh(c).status, fresh(c).profile_id) == ("active", c_profile_id)
    assert fresh(b).merged_into_id == a.pk
