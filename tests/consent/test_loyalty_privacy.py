"""Data-subject requests reach loyalty (issue 9 x issue 6): access exports a member's
memberships and ledger; erasure deletes them, and the whole-database scan finds nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from cdp.models import AuditEvent
from consent.hashing import identifier_hash
from consent.models import Suppression
from consent.registry import handlers_in_order
from consent.services.requests import request_complete, request_run
from profiles.models import (
    Identity,
    LoyaltyActivity,
    LoyaltyLedgerEntry,
    LoyaltyMember,
    LoyaltyTierChange,
    SourceRecord,
)
from profiles.services.loyalty import (
    LOYALTY_SOURCE_NAME,
    loyalty_events_earn,
    loyalty_member_enrol,
    loyalty_points_redeem,
    loyalty_points_transfer,
)
from tests.profiles.loyalty_helpers import make_program

from .conftest import LENA_NEEDLES
from .test_rights import archive_of, scan_for

LENA_NUMBER = "CL47110815"  # enrolled as "cl 4711-0815"


@pytest.fixture
def members(people):
    """Lena and Bob's app profile are members of the Club; each order earned points; Lena
    redeemed 50 and Bob gave her 5."""
    program = make_program()
    month_ago = timezone.now() - timedelta(days=30)
    lena = loyalty_member_enrol(
        program=program, profile=people["lena"], member_number="cl 4711-0815", at=month_ago
    )
    bob = loyalty_member_enrol(
        program=program, profile=people["bob_app"], member_number="CL 9999-0001", at=month_ago
    )
    loyalty_events_earn(program=program)  # o-lena-1 (total 99), o-bob-1 (total 5)
    loyalty_points_redeem(member=lena, points=50, reason="voucher")
    loyalty_points_transfer(sender=bob, recipient=lena, points=5, reason="gift")
    lena.refresh_from_db()
    bob.refresh_from_db()
    assert (lena.points_balance, bob.points_balance) == (99 + 100 - 50 + 5, 5 + 100 - 5)
    return {"lena": lena, "bob": bob, "program": program}


def test_loyalty_is_erased_before_the_profiles_it_protects(db):
    names = [h.name for h in handlers_in_order()]
    assert names.index("loyalty") < names.index("profiles")


def test_access_export_contains_the_members_loyalty_ledger(members, make_request, officer):
    lena = members["lena"]
    request = make_request(type="access", requester_email="lena.private@example.org")

    run = request_run(request=request, actor=officer, sync=True)

    assert run.status == "succeeded"
    document, csvs = archive_of(run)
    tables = document["tables"]
    (membership,) = tables["loyalty_memberships"]
    assert (
        membership["program__name"],
        membership["member_number"],
        membership["tier__name"],
        membership["points_balance"],
        membership["qualifying_points"],
    ) == ("Club", LENA_NUMBER, "Base", 154, 99)
    assert [
        (e["kind"], e["currency"], e["points"], e["rule__name"] or e["reason"])
        for e in tables["loyalty_ledger"]
    ] == [
        ("earn", "points", 99, "1 point per unit"),
        ("earn", "qualifying", 99, "1 qualifying point per unit"),
        ("earn", "points", 100, "First order"),
        ("redeem", "points", -50, "voucher"),
        ("transfer_in", "points", 5, "gift"),
    ]
    assert {e["member_id"] for e in tables["loyalty_ledger"]} == {lena.pk}
    assert [(a["kind"], a["order_id"], a["amount"]) for a in tables["loyalty_activities"]] == [
        ("order", "o-lena-1", "99.00")
    ]
    assert [(c["from_tier__name"], c["to_tier__name"]) for c in tables["loyalty_tier_changes"]] == [
        (None, "Base")
    ]
    assert {a["action"] for a in tables["loyalty_audit_log"]} == {
        "loyalty.member.enrol",
        "loyalty.points.redeem",
    }
    # The member number is an identity of hers; nothing of Bob's membership is exported.
    assert LENA_NUMBER in {i["key"] for i in tables["identities"]}
    assert "tables/loyalty_ledger.csv" in csvs and "voucher" in csvs["tables/loyalty_ledger.csv"]
    everything = json.dumps(document) + "".join(csvs.values())
    assert "CL99990001" not in everything and "o-bob-1" not in everything
    assert run.counts["loyalty_ledger"] == 5


def test_erasure_of_a_member_leaves_no_loyalty_row_and_passes_the_scan(
    members, make_request, officer
):
    lena, bob = members["lena"], members["bob"]
    needles = (*LENA_NEEDLES, LENA_NUMBER, "4711-0815")
    assert any(hit.startswith("profiles.LoyaltyMember:") for hit in scan_for(needles))
    request = make_request(type="erasure", requester_email="lena.vogt@example.de")

    run = request_run(request=request, actor=officer, sync=True)
    request_complete(request=request, actor=officer)

    assert run.status == "succeeded"
    assert scan_for(needles) == []
    assert not LoyaltyMember.objects.filter(pk=lena.pk).exists()
    for model in (LoyaltyLedgerEntry, LoyaltyActivity, LoyaltyTierChange):
        assert not model.objects.filter(member_id=lena.pk).exists(), model.__name__
    assert not LoyaltyLedgerEntry.objects.filter(counterpart_id=lena.pk).exists()
    assert not SourceRecord.objects.filter(
        source__name=LOYALTY_SOURCE_NAME, external_key=f"club:{LENA_NUMBER}"
    ).exists()
    assert not Identity.objects.filter(key=LENA_NUMBER).exists()
    assert (
        run.counts["loyalty_members"],
        run.counts["loyalty_ledger_entries"],
        run.counts["loyalty_activities"],
        run.counts["loyalty_tier_changes"],
        run.counts["loyalty_source_records"],
        run.counts["loyalty_audit_scrubbed"],
    ) == (1, 5, 1, 1, 1, 2)
    # Her member number is suppressed like her other identifiers.
    assert Suppression.objects.filter(
        id_type="member_number", key_hash=identifier_hash("member_number", LENA_NUMBER)
    ).exists()
    # Bob keeps his membership, balance and the transfer he made (without its counterpart).
    bob.refresh_from_db()
    assert (bob.member_number, bob.points_balance) == ("CL99990001", 100)
    transfer = LoyaltyLedgerEntry.objects.get(member=bob, kind="transfer_out")
    assert (transfer.points, transfer.counterpart_id) == (-5, None)
    assert LoyaltyLedgerEntry.objects.filter(member=bob).count() == 4
    assert AuditEvent.objects.filter(action="loyalty.profile.erase").count() == 1
