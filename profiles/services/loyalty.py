"""Loyalty: enrolment, the points ledger, earning from events, expiry, tiers, merge and erasure.

Every change is one function in one transaction that writes its audit row (for staff actions)
in the same transaction. The ledger is append-only: credits are lots whose ``remaining`` debits
consume oldest-expiry-first (FIFO); ``LoyaltyMember.points_balance`` is refreshed from the
ledger sum after every write, so it is derived, and a check constraint keeps it >= 0.

Balances belong to *accounts*: an active member plus every member merged into it. Debits lock
the account row (``select_for_update``: PostgreSQL serialises concurrent redemptions on it;
SQLite serialises all writers anyway).
"""

from __future__ import annotations

import calendar
import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from cdp.audit import audit_record
from cdp.jobs import job_enqueue
from cdp.models import AuditEvent
from cdp.normalize import IdentifierTypes, InvalidValue, identifier_key
from profiles.loyalty_selectors import loyalty_member_audit_targets, loyalty_members_of_profiles
from profiles.models import (
    DataSource,
    Event,
    Identity,
    LoyaltyActivity,
    LoyaltyCurrency,
    LoyaltyEarningRule,
    LoyaltyJobRun,
    LoyaltyLedgerEntry,
    LoyaltyMember,
    LoyaltyProgram,
    LoyaltyTierChange,
    Profile,
    ProfileRedirect,
    SourceRecord,
)

ORDER_COMPLETED = "Order Completed"
ORDER_REFUNDED = "Order Refunded"
# The events loyalty earns on or reverses: ingest paths call the hook for these only.
LOYALTY_EVENT_NAMES = (ORDER_COMPLETED, ORDER_REFUNDED)
LOYALTY_SOURCE_NAME = "Loyalty programs"
CHUNK = 2000

Kind = LoyaltyLedgerEntry.Kind
POINTS = LoyaltyCurrency.POINTS
QUALIFYING = LoyaltyCurrency.QUALIFYING


class LoyaltyError(ValueError):
    """Something a user asked for that cannot be done; the message says why."""


# --- pure helpers ------------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (or earlier), clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def order_amount(properties: dict) -> Decimal | None:
    """The value of an order per the Segment e-commerce spec: ``revenue``, else ``total``."""
    for name in ("revenue", "total"):
        value = properties.get(name)
        if value is None or isinstance(value, bool) or value == "":
            continue
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            continue
        if amount.is_finite():
            return amount
    return None


def order_total(properties: dict) -> Decimal | None:
    """``total`` (what the customer paid, what a refund's ``total`` is compared with)."""
    value = properties.get("total")
    if value is None or isinstance(value, bool) or value == "":
        return order_amount(properties)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def points_for(amount: Decimal, per_unit: Decimal) -> int:
    """Whole points for an amount: rounded down, never negative."""
    if amount <= 0:
        return 0
    return int((amount * per_unit).to_integral_value(rounding=ROUND_FLOOR))


def fifo_allocate(lots: list[tuple[int, int]], points: int) -> list[tuple[int, int]]:
    """Take ``points`` from ``(lot id, remaining)`` in the given (FIFO) order.

    Returns ``(lot id, taken)``; raises LoyaltyError when the lots hold less.
    """
    taken, left = [], points
    for lot_id, remaining in lots:
        if left <= 0:
            break
        take = min(remaining, left)
        if take > 0:
            taken.append((lot_id, take))
            left -= take
    if left > 0:
        raise LoyaltyError(f"The balance is {points - left} points; {points} are needed.")
    return taken


@dataclass(frozen=True)
class TierSpec:
    """A tier as plain values, for the pure tier decision."""

    id: int
    name: str
    rank: int
    min_points: int | None
    min_spend: Decimal | None

    def reached(self, points: int, spend: Decimal) -> bool:
        if self.min_points is None and self.min_spend is None:
            return True
        return (self.min_points is not None and points >= self.min_points) or (
            self.min_spend is not None and spend >= self.min_spend
        )

    def needs(self) -> str:
        parts = []
        if self.min_points is not None:
            parts.append(f"{self.min_points} qualifying points")
        if self.min_spend is not None:
            parts.append(f"{self.min_spend:.2f} spend")
        return " or ".join(parts) or "enrolment"


@dataclass(frozen=True)
class TierDecision:
    tier_id: int | None
    valid_until: datetime | None
    reason: str  # empty: not a tier change


def tier_decide(
    *,
    tiers: list[TierSpec],
    current_id: int | None,
    valid_until: datetime | None,
    points: int,
    spend: Decimal,
    at: datetime,
    period_months: int,
) -> TierDecision:
    """Upgrades happen at once; a downgrade waits for the end of the qualifying period.

    Reaching a tier (or keeping one at the end of its period) starts a new period.
    """
    ordered = sorted(tiers, key=lambda t: t.rank)
    if not ordered:
        return TierDecision(None, None, "")
    by_id = {t.id: t for t in ordered}
    target = ordered[0]
    for tier in ordered:
        if tier.reached(points, spend):
            target = tier
    period_end = add_months(at, period_months)
    evidence = (
        f"{points} qualifying points and {spend:.2f} spend in the last {period_months} months"
    )
    current = by_id.get(current_id) if current_id else None
    if current is None:
        return TierDecision(target.id, period_end, f"enrolled in {target.name}: {evidence}")
    if target.rank > current.rank:
        return TierDecision(
            target.id,
            period_end,
            f"upgrade: {evidence} reach {target.name} (needs {target.needs()})",
        )
    if valid_until is not None and at < valid_until:
        return TierDecision(current.id, valid_until, "")
    if target.rank < current.rank:
        return TierDecision(
            target.id,
            period_end,
            f"downgrade at the end of the qualifying period: {evidence}; "
            f"{current.name} needs {current.needs()}",
        )
    return TierDecision(current.id, period_end, "")


# --- accounts and balances ---------------------------------------------------------------------


def _groups(account_ids: Iterable[int]) -> dict[int, int]:
    """Member id -> account id, for these accounts and every member merged into them.

    One indexed query; callers then filter on ``member_id IN (...)`` (the ledger's and the
    activities' leading index column) and fold rows into accounts in Python.
    """
    ids = list(dict.fromkeys(account_ids))
    group = {pk: pk for pk in ids}
    for start in range(0, len(ids), 5000):
        group.update(
            LoyaltyMember.objects.filter(merged_into_id__in=ids[start : start + 5000]).values_list(
                "id", "merged_into_id"
            )
        )
    return group


def _sums(queryset, group: dict[int, int], field: str) -> dict[int, int | Decimal]:
    """SUM(field) per account of the rows of ``queryset`` belonging to the group, in SQL."""
    totals: dict[int, int | Decimal] = defaultdict(int)
    rows = (
        queryset.filter(member_id__in=list(group))
        .values("member_id")
        .annotate(total=Sum(field))
        .values_list("member_id", "total")
    )
    for member_id, total in rows:
        totals[group[member_id]] += total or 0
    return totals


def _rows(queryset, group: dict[int, int], *fields: str) -> list[dict]:
    """Rows of ``queryset`` belonging to the group, each with its ``account``."""
    rows = list(queryset.filter(member_id__in=list(group)).values("member_id", *fields))
    for row in rows:
        row["account"] = group[row["member_id"]]
    return rows


def balances_refresh(*, account_ids: Iterable[int]) -> None:
    """Set each account's cached balance to the sum of its ledger (points currency)."""
    ids = list(dict.fromkeys(account_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        sums = _sums(LoyaltyLedgerEntry.objects.filter(currency=POINTS), _groups(chunk), "points")
        members = [LoyaltyMember(pk=pk, points_balance=sums.get(pk) or 0) for pk in chunk]
        LoyaltyMember.objects.bulk_update(members, ["points_balance"], batch_size=500)


def _account_lock(member: LoyaltyMember) -> LoyaltyMember:
    """The active member whose balance this member's points count toward, locked."""
    account_id = member.merged_into_id or member.pk
    account = (
        LoyaltyMember.objects.select_for_update(of=("self",))
        .select_related("program")
        .get(pk=account_id)
    )
    if account.status != LoyaltyMember.Status.ACTIVE:
        raise LoyaltyError(f"Member {account.member_number} is not active.")
    return account


def _lots_by_account(account_ids: list[int], at: datetime) -> dict[int, list[list[int]]]:
    """Open lots per account as mutable ``[lot id, remaining]`` in FIFO order (locked)."""
    group = _groups(account_ids)
    lots: dict[int, list[list[int]]] = defaultdict(list)
    # Locks the lots only (SQLite ignores FOR UPDATE: it serialises writers).
    rows = (
        LoyaltyLedgerEntry.objects.filter(
            member_id__in=list(group), currency=POINTS, remaining__gt=0
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))
        .order_by(F("expires_at").asc(nulls_last=True), "occurred_at", "id")
        .select_for_update()
        .values_list("member_id", "id", "remaining")
    )
    for member_id, lot_id, remaining in rows:
        lots[group[member_id]].append([lot_id, remaining])
    return lots


def _consume(lots: list[list[int]], points: int, taken_out: dict[int, int]) -> int:
    """Take up to ``points`` FIFO from the mutable lots; record per lot; return the amount taken."""
    left = points
    for lot in lots:
        if left <= 0:
            break
        take = min(lot[1], left)
        if take:
            lot[1] -= take
            left -= take
            taken_out[lot[0]] = taken_out.get(lot[0], 0) + take
    return points - left


def _lots_save(taken: dict[int, int]) -> None:
    if not taken:
        return
    current = dict(
        LoyaltyLedgerEntry.objects.filter(pk__in=list(taken)).values_list("id", "remaining")
    )
    LoyaltyLedgerEntry.objects.bulk_update(
        [LoyaltyLedgerEntry(pk=pk, remaining=current[pk] - n) for pk, n in taken.items()],
        ["remaining"],
        batch_size=500,
    )


def _expiry_for(program: LoyaltyProgram, occurred_at: datetime) -> datetime | None:
    if program.points_validity_days is None:
        return None
    return occurred_at + timedelta(days=program.points_validity_days)


def _credit(
    *,
    member: LoyaltyMember,
    program: LoyaltyProgram,
    kind: str,
    currency: str,
    points: int,
    at: datetime,
    expires_at: datetime | None | bool = True,
    **fields,
) -> LoyaltyLedgerEntry:
    if expires_at is True:
        expires_at = _expiry_for(program, at) if currency == POINTS else None
    return LoyaltyLedgerEntry(
        member=member,
        kind=kind,
        currency=currency,
        points=points,
        remaining=points if currency == POINTS else 0,
        occurred_at=at,
        expires_at=expires_at or None,
        **fields,
    )


def rows_insert(model, objs: list) -> None:
    """Insert unsaved model instances whose ids are not needed afterwards.

    PostgreSQL: one ``COPY ... FROM STDIN`` (no SQL to compile per row); elsewhere
    ``bulk_create``. Used by the bulk paths (earning, reversals, expiry, tier changes).
    """
    if not objs:
        return
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=1000)
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for obj in objs:
            copy.write_row([getattr(obj, f.attname) for f in fields])


def _now(at: datetime | None) -> datetime:
    return at or timezone.now()


# --- enrolment ---------------------------------------------------------------------------------


def _loyalty_source() -> DataSource:
    source, _ = DataSource.objects.get_or_create(
        name=LOYALTY_SOURCE_NAME, defaults={"kind": DataSource.Kind.FILE, "priority": 50}
    )
    return source


def _member_number_candidate(program: LoyaltyProgram) -> str:
    digits = f"{secrets.randbelow(10**9):09d}"
    checksum = sum(int(d) * (2 if i % 2 else 1) % 9 for i, d in enumerate(digits)) % 10
    return f"{program.member_number_prefix.upper()}{digits}{checksum}"


def _new_member_numbers(program: LoyaltyProgram, count: int) -> list[str]:
    """``count`` unused random member numbers (prefix, 9 digits, a check digit)."""
    numbers: set[str] = set()
    for _attempt in range(20):
        if len(numbers) >= count:
            return list(numbers)[:count]
        candidates = {_member_number_candidate(program) for _ in range(count - len(numbers))}
        candidates -= numbers
        taken = set(
            LoyaltyMember.objects.filter(
                program=program, member_number__in=list(candidates)
            ).values_list("member_number", flat=True)
        )
        numbers |= candidates - taken
    raise LoyaltyError("Could not generate free member numbers.")


def _new_member_number(program: LoyaltyProgram) -> str:
    return _new_member_numbers(program, 1)[0]


def loyalty_enrolment_validate(
    *, program: LoyaltyProgram, profile: Profile, member_number: str = ""
) -> str:
    """Check an enrolment can happen; return the member number's key (generated when blank).

    Raises LoyaltyError when the profile is already a member or the number belongs to someone
    else (a number is never silently moved between people).
    """
    if not program.is_active:
        raise LoyaltyError(f"The program {program.name} is not active.")
    if LoyaltyMember.objects.filter(
        program=program, profile=profile, status=LoyaltyMember.Status.ACTIVE
    ).exists():
        raise LoyaltyError(f"Profile #{profile.pk} is already a member of {program.name}.")
    if not member_number:
        return _new_member_number(program)
    try:
        key = identifier_key(IdentifierTypes.MEMBER_NUMBER, member_number).key
    except InvalidValue as exc:
        raise LoyaltyError(str(exc)) from None
    if not key:
        raise LoyaltyError("The member number is empty or a placeholder.")
    if LoyaltyMember.objects.filter(program=program, member_number=key).exists():
        raise LoyaltyError(f"The member number {key} is taken in {program.name}.")
    holder = (
        Identity.objects.filter(type=IdentifierTypes.MEMBER_NUMBER, key=key)
        .exclude(profile_id=profile.pk)
        .exclude(profile__isnull=True)
        .values_list("profile_id", flat=True)
        .first()
    )
    if holder:
        raise LoyaltyError(f"The member number {key} belongs to profile #{holder}.")
    return key


@transaction.atomic
def loyalty_member_enrol(
    *,
    program: LoyaltyProgram,
    profile: Profile,
    member_number: str = "",
    at: datetime | None = None,
    actor=None,
) -> LoyaltyMember:
    """Enrol a profile; the member number becomes a ``member_number`` identity of the profile.

    Raises LoyaltyError for what ``loyalty_enrolment_validate`` refuses.
    """
    at = _now(at)
    key = loyalty_enrolment_validate(program=program, profile=profile, member_number=member_number)
    member = LoyaltyMember.objects.create(
        program=program,
        profile=profile,
        origin_profile_id=profile.pk,
        member_number=key,
        enrolled_at=at,
    )
    record, _ = SourceRecord.objects.get_or_create(
        source=_loyalty_source(),
        external_key=f"{program.slug}:{key}",
        defaults={"profile": profile, "created_at": at, "updated_at": at},
    )
    Identity.objects.get_or_create(
        source_record=record,
        type=IdentifierTypes.MEMBER_NUMBER,
        raw_value=member_number or key,
        defaults={"key": key, "profile": profile},
    )
    loyalty_tiers_evaluate(program=program, member_ids=[member.pk], at=at)
    audit_record(
        actor=actor,
        action="loyalty.member.enrol",
        target=member,
        details={"program_id": program.pk, "profile_id": profile.pk},
    )
    member.refresh_from_db()
    return member


@transaction.atomic
def loyalty_members_enrol_bulk(
    *,
    program: LoyaltyProgram,
    profile_ids: list[int],
    member_numbers: dict[int, str] | None = None,
    at: datetime | None = None,
    actor=None,
) -> dict[str, int]:
    """Enrol many profiles at once (migrating a program, enrolling a segment), set-based.

    Profiles already members are skipped; a given number that is taken or belongs to another
    profile skips that profile (counted), never moves the number. Numbers not given are
    generated. One audit row with the counts.
    """
    at = _now(at)
    member_numbers = member_numbers or {}
    if not program.is_active:
        raise LoyaltyError(f"The program {program.name} is not active.")
    ids = list(dict.fromkeys(profile_ids))
    counts = {"enrolled": 0, "already_members": 0, "number_conflicts": 0}
    source = _loyalty_source()
    entry_tier = program.tiers.order_by("rank").first()
    period_end = add_months(at, program.qualifying_period_months)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        existing = set(
            LoyaltyMember.objects.filter(
                program=program, profile_id__in=chunk, status=LoyaltyMember.Status.ACTIVE
            ).values_list("profile_id", flat=True)
        )
        counts["already_members"] += len(existing)
        wanted: dict[int, tuple[str, str]] = {}  # profile -> (key, raw)
        for pid in chunk:
            if pid in existing:
                continue
            raw = member_numbers.get(pid, "")
            key = identifier_key(IdentifierTypes.MEMBER_NUMBER, raw).key if raw else None
            if raw and not key:
                counts["number_conflicts"] += 1
                continue
            wanted[pid] = (key or "", raw)
        given = [k for k, _raw in wanted.values() if k]
        taken = set(
            LoyaltyMember.objects.filter(program=program, member_number__in=given).values_list(
                "member_number", flat=True
            )
        )
        held = dict(
            Identity.objects.filter(
                type=IdentifierTypes.MEMBER_NUMBER, key__in=given, profile__isnull=False
            ).values_list("key", "profile_id")
        )
        seen: set[str] = set()
        members = []
        fresh_numbers = iter(
            _new_member_numbers(program, sum(1 for k, _raw in wanted.values() if not k))
        )
        for pid, (key, _raw) in wanted.items():
            if key and (key in taken or key in seen or held.get(key, pid) != pid):
                counts["number_conflicts"] += 1
                continue
            key = key or next(fresh_numbers)
            seen.add(key)
            members.append(
                LoyaltyMember(
                    program=program,
                    profile_id=pid,
                    origin_profile_id=pid,
                    member_number=key,
                    enrolled_at=at,
                    tier=entry_tier,
                    tier_valid_until=period_end if entry_tier else None,
                )
            )
        LoyaltyMember.objects.bulk_create(members, batch_size=1000)
        members = list(
            LoyaltyMember.objects.filter(
                program=program, member_number__in=[m.member_number for m in members]
            ).values_list("id", "profile_id", "member_number")
        )
        records = SourceRecord.objects.bulk_create(
            [
                SourceRecord(
                    source=source,
                    external_key=f"{program.slug}:{number}",
                    profile_id=pid,
                    created_at=at,
                    updated_at=at,
                )
                for _id, pid, number in members
            ],
            batch_size=1000,
        )
        if records and records[0].pk is None:
            keys = [r.external_key for r in records]
            records = list(SourceRecord.objects.filter(source=source, external_key__in=keys))
        by_key = {r.external_key: r for r in records}
        Identity.objects.bulk_create(
            [
                Identity(
                    type=IdentifierTypes.MEMBER_NUMBER,
                    raw_value=(wanted[pid][1] or number)[:500],
                    key=number,
                    source_record=by_key[f"{program.slug}:{number}"],
                    profile_id=pid,
                    created_at=at,
                )
                for _id, pid, number in members
            ],
            batch_size=1000,
        )
        if entry_tier:
            LoyaltyTierChange.objects.bulk_create(
                [
                    LoyaltyTierChange(
                        member_id=mid,
                        to_tier=entry_tier,
                        reason=f"enrolled in {entry_tier.name}",
                        changed_at=at,
                    )
                    for mid, _pid, _number in members
                ],
                batch_size=1000,
            )
        counts["enrolled"] += len(members)
    audit_record(actor=actor, action="loyalty.member.enrol_bulk", target=program, details=counts)
    return counts


# --- ledger operations -------------------------------------------------------------------------


def _expire_accounts(account_ids: list[int], at: datetime) -> int:
    return loyalty_points_expire(account_ids=account_ids, at=at)["expired_lots"]


@transaction.atomic
def loyalty_points_redeem(
    *, member: LoyaltyMember, points: int, reason: str, at: datetime | None = None, actor=None
) -> LoyaltyLedgerEntry:
    """Spend points, oldest expiry first. Raises LoyaltyError when the balance is too low."""
    at = _now(at)
    if points <= 0:
        raise LoyaltyError("Redeem a positive number of points.")
    account = _account_lock(member)
    _expire_accounts([account.pk], at)
    lots = _lots_by_account([account.pk], at)[account.pk]
    allocation = fifo_allocate([(lot_id, rem) for lot_id, rem in lots], points)
    _lots_save(dict(allocation))
    entry = LoyaltyLedgerEntry.objects.create(
        member=account,
        kind=Kind.REDEEM,
        currency=POINTS,
        points=-points,
        occurred_at=at,
        reason=reason[:300],
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    balances_refresh(account_ids=[account.pk])
    audit_record(
        actor=actor, action="loyalty.points.redeem", target=account, details={"points": points}
    )
    return entry


@transaction.atomic
def loyalty_points_adjust(
    *,
    member: LoyaltyMember,
    points: int,
    reason: str,
    currency: str = POINTS,
    at: datetime | None = None,
    actor=None,
) -> LoyaltyLedgerEntry:
    """Add (positive) or remove (negative) points with a reason; never below zero."""
    applied, skipped = loyalty_points_adjust_bulk(
        member_ids=[member.pk], points=points, reason=reason, currency=currency, at=at, actor=actor
    )
    if skipped:
        raise LoyaltyError(skipped[0][1])
    return applied[0]


@transaction.atomic
def loyalty_points_adjust_bulk(
    *,
    member_ids: list[int],
    points: int,
    reason: str,
    currency: str = POINTS,
    at: datetime | None = None,
    actor=None,
    idempotency_key: str = "",
) -> tuple[list[LoyaltyLedgerEntry], list[tuple[int, str]]]:
    """Adjust many members at once (the admin action). Returns (entries, [(member id, why)]).

    A removal larger than a member's balance skips that member (listed) and changes nothing
    for them; everyone else is adjusted in the same transaction, with one audit row.
    """
    at = _now(at)
    reason = reason.strip()
    if not reason:
        raise LoyaltyError("A reason is required.")
    if points == 0:
        raise LoyaltyError("Adjust by a non-zero number of points.")
    if currency not in LoyaltyCurrency.values:
        raise LoyaltyError(f"Unknown currency {currency!r}.")
    target = f"loyalty_adjustment:{idempotency_key or at.isoformat()}"
    if (
        idempotency_key
        and AuditEvent.objects.filter(action="loyalty.points.adjust", target=target).exists()
    ):
        raise LoyaltyError("This adjustment was already applied (submitted twice).")
    members = list(
        LoyaltyMember.objects.select_for_update(of=("self",))
        .select_related("program")
        .filter(pk__in=member_ids)
        .order_by("pk")
    )
    account_ids = sorted({m.merged_into_id or m.pk for m in members})
    accounts = {
        a.pk: a
        for a in LoyaltyMember.objects.select_for_update(of=("self",))
        .select_related("program")
        .filter(pk__in=account_ids)
        .order_by("pk")
    }
    skipped: list[tuple[int, str]] = []
    entries: list[LoyaltyLedgerEntry] = []
    user = actor if getattr(actor, "pk", None) else None
    if points < 0 and currency == POINTS:
        _expire_accounts(account_ids, at)
        lots = _lots_by_account(account_ids, at)
    elif points < 0:
        qualifying = _sums(
            LoyaltyLedgerEntry.objects.filter(currency=QUALIFYING), _groups(account_ids), "points"
        )
    taken: dict[int, int] = {}
    for account_id in account_ids:
        account = accounts[account_id]
        if account.status != LoyaltyMember.Status.ACTIVE:
            skipped.append((account_id, f"Member {account.member_number} is not active."))
            continue
        if points < 0 and currency == POINTS:
            available = sum(rem for _id, rem in lots.get(account_id, []))
            if available < -points:
                skipped.append(
                    (
                        account_id,
                        f"Member {account.member_number} has {available} points; "
                        f"{-points} cannot be removed.",
                    )
                )
                continue
            _consume(lots[account_id], -points, taken)
        elif points < 0 and (qualifying.get(account_id) or 0) < -points:
            skipped.append(
                (account_id, f"Member {account.member_number} has too few qualifying points.")
            )
            continue
        if points > 0:
            entries.append(
                _credit(
                    member=account,
                    program=account.program,
                    kind=Kind.ADJUST,
                    currency=currency,
                    points=points,
                    at=at,
                    reason=reason[:300],
                    created_by=user,
                )
            )
        else:
            entries.append(
                LoyaltyLedgerEntry(
                    member=account,
                    kind=Kind.ADJUST,
                    currency=currency,
                    points=points,
                    occurred_at=at,
                    reason=reason[:300],
                    created_by=user,
                )
            )
    _lots_save(taken)
    LoyaltyLedgerEntry.objects.bulk_create(entries, batch_size=1000)
    done = [e.member_id for e in entries]
    balances_refresh(account_ids=done)
    if currency == QUALIFYING and points > 0:
        for program_id in {accounts[a].program_id for a in done}:
            ids = [a for a in done if accounts[a].program_id == program_id]
            loyalty_tiers_evaluate(program=accounts[ids[0]].program, member_ids=ids, at=at)
    audit_record(
        actor=actor,
        action="loyalty.points.adjust",
        target=target,
        details={
            "member_ids": done,
            "skipped_member_ids": [s[0] for s in skipped],
            "points": points,
            "currency": currency,
            "reason": reason[:300],
        },
    )
    return entries, skipped


@transaction.atomic
def loyalty_points_transfer(
    *,
    sender: LoyaltyMember,
    recipient: LoyaltyMember,
    points: int,
    reason: str = "",
    at: datetime | None = None,
    actor=None,
) -> tuple[LoyaltyLedgerEntry, list[LoyaltyLedgerEntry]]:
    """Move points between two members of one program; they keep their expiry dates."""
    at = _now(at)
    if points <= 0:
        raise LoyaltyError("Transfer a positive number of points.")
    if sender.program_id != recipient.program_id:
        raise LoyaltyError("Points move only between members of the same program.")
    ids = sorted({sender.merged_into_id or sender.pk, recipient.merged_into_id or recipient.pk})
    if len(ids) == 1:
        raise LoyaltyError("Sender and recipient are the same member.")
    locked = {m.pk: m for m in LoyaltyMember.objects.select_for_update().filter(pk__in=ids)}
    source = locked[sender.merged_into_id or sender.pk]
    target = locked[recipient.merged_into_id or recipient.pk]
    for member in (source, target):
        if member.status != LoyaltyMember.Status.ACTIVE:
            raise LoyaltyError(f"Member {member.member_number} is not active.")
    _expire_accounts([source.pk], at)
    lots = _lots_by_account([source.pk], at)[source.pk]
    allocation = fifo_allocate([(lot_id, rem) for lot_id, rem in lots], points)
    _lots_save(dict(allocation))
    expiry = dict(
        LoyaltyLedgerEntry.objects.filter(pk__in=[a[0] for a in allocation]).values_list(
            "id", "expires_at"
        )
    )
    user = actor if getattr(actor, "pk", None) else None
    out = LoyaltyLedgerEntry.objects.create(
        member=source,
        kind=Kind.TRANSFER_OUT,
        currency=POINTS,
        points=-points,
        occurred_at=at,
        counterpart=target,
        reason=reason[:300],
        created_by=user,
    )
    credits = LoyaltyLedgerEntry.objects.bulk_create(
        [
            LoyaltyLedgerEntry(
                member=target,
                kind=Kind.TRANSFER_IN,
                currency=POINTS,
                points=take,
                remaining=take,
                occurred_at=at,
                expires_at=expiry[lot_id],
                counterpart=source,
                reason=reason[:300],
                created_by=user,
            )
            for lot_id, take in allocation
        ]
    )
    balances_refresh(account_ids=ids)
    audit_record(
        actor=actor,
        action="loyalty.points.transfer",
        target=source,
        details={"to_member_id": target.pk, "points": points},
    )
    return out, credits


def loyalty_points_expire(
    *,
    program: LoyaltyProgram | None = None,
    account_ids: list[int] | None = None,
    at: datetime | None = None,
) -> dict[str, int]:
    """Expire what is left of every lot past its expiry date, set-based, one entry per lot."""
    at = _now(at)
    expired = points = 0
    with transaction.atomic():
        lots = LoyaltyLedgerEntry.objects.filter(
            currency=POINTS, remaining__gt=0, expires_at__lte=at
        )
        if program is not None:
            lots = lots.filter(member__program=program)
        if account_ids is not None:
            lots = lots.filter(member_id__in=list(_groups(account_ids)))
        touched: set[int] = set()
        # Re-read ``remaining`` under the row lock a concurrent redemption may hold.
        lots = lots.select_for_update(of=("self",))
        while True:
            rows = list(
                lots.annotate(account=Coalesce("member__merged_into_id", "member_id"))
                .order_by("id")
                .values_list("id", "member_id", "account", "remaining", "expires_at")[:CHUNK]
            )
            if not rows:
                break
            rows_insert(
                LoyaltyLedgerEntry,
                [
                    LoyaltyLedgerEntry(
                        member_id=member_id,
                        kind=Kind.EXPIRE,
                        currency=POINTS,
                        points=-remaining,
                        occurred_at=expires_at,
                        lot_id=lot_id,
                        reason="expired",
                    )
                    for lot_id, member_id, _account, remaining, expires_at in rows
                ],
            )
            LoyaltyLedgerEntry.objects.filter(pk__in=[r[0] for r in rows]).update(remaining=0)
            touched.update(r[2] for r in rows)
            expired += len(rows)
            points += sum(r[3] for r in rows)
        balances_refresh(account_ids=touched)
    return {"expired_lots": expired, "expired_points": points, "members": len(touched)}


# --- earning from events -----------------------------------------------------------------------


def _local_month(moment: datetime) -> tuple[int, int]:
    local = moment.astimezone(ZoneInfo(settings.CDP_TIME_ZONE))
    return local.year, local.month


def _birth_month(value: object) -> int | None:
    if not isinstance(value, str) or len(value) < 7:
        return None
    try:
        return date.fromisoformat(value[:10]).month
    except ValueError:
        return None


def loyalty_events_earn(
    *,
    program: LoyaltyProgram | None = None,
    event_ids: list[int] | None = None,
    at: datetime | None = None,
    evaluate_tiers: bool = True,
) -> dict[str, int]:
    """Earn (and reverse) points for every order event of a member not handled yet.

    Set-based: events come in chunks; each chunk is one transaction with a handful of queries
    whatever its size. An event is handled once per program (``LoyaltyActivity`` unique on
    program and event, ledger unique on rule and event), so retries and re-runs earn nothing
    twice. ``event_ids`` limits the run to the events an ingest just stored.
    """
    programs = (
        [program] if program is not None else list(LoyaltyProgram.objects.filter(is_active=True))
    )
    totals = defaultdict(int)
    for prog in programs:
        for key, value in _program_earn(prog, event_ids, at, evaluate_tiers).items():
            totals[key] += value
    return dict(totals)


def _program_earn(program, event_ids, at, evaluate_tiers) -> dict[str, int]:
    counts = defaultdict(int)
    rules = list(program.earning_rules.filter(is_active=True).order_by("id"))
    # Semi-join on members (hashable, no per-event probe of the member table) and anti-join
    # on the (program, event) unique index; events before enrolment are marked ignored.
    member_profiles = LoyaltyMember.objects.filter(
        program=program, status=LoyaltyMember.Status.ACTIVE
    ).values("profile_id")
    events = Event.objects.filter(
        type=Event.Type.TRACK,
        name__in=LOYALTY_EVENT_NAMES,
        profile_id__in=member_profiles,
    ).exclude(Exists(LoyaltyActivity.objects.filter(program=program, event=OuterRef("pk"))))
    if event_ids is not None:
        events = events.filter(pk__in=event_ids)
    last_id = 0
    touched: set[int] = set()
    while True:
        with transaction.atomic():
            # One earning run per program at a time (PostgreSQL row lock; SQLite serialises).
            LoyaltyProgram.objects.select_for_update().filter(pk=program.pk).first()
            chunk = list(
                events.filter(pk__gt=last_id)
                .order_by("pk")
                .values("id", "name", "properties", "timestamp", "profile_id")[:CHUNK]
            )
            if not chunk:
                break
            last_id = chunk[-1]["id"]
            chunk.sort(key=lambda e: (e["timestamp"], e["id"]))
            touched |= _chunk_earn(program, rules, chunk, counts, _now(at))
    if touched:
        balances_refresh(account_ids=touched)
        if evaluate_tiers:
            loyalty_tiers_evaluate(program=program, member_ids=sorted(touched), at=at)
    counts["members"] = len(touched)
    return counts


def _chunk_earn(program, rules, chunk: list[dict], counts, at: datetime) -> set[int]:
    profile_ids = {e["profile_id"] for e in chunk}
    member_of, enrolled = {}, {}
    for profile_id, member_id, enrolled_at in LoyaltyMember.objects.filter(
        program=program, status=LoyaltyMember.Status.ACTIVE, profile_id__in=profile_ids
    ).values_list("profile_id", "id", "enrolled_at"):
        member_of[profile_id] = member_id
        enrolled[member_id] = enrolled_at
    accounts = set(member_of.values())
    group = _groups(accounts)
    birth_months = {
        pid: _birth_month(value)
        for pid, value in Profile.objects.filter(pk__in=profile_ids).values_list(
            "id", "attributes__birth_date"
        )
    }
    order_ids = {str(e["properties"].get("order_id") or "") for e in chunk} - {""}
    prior_orders: dict[int, dict[str, dict]] = defaultdict(dict)
    orders = LoyaltyActivity.objects.filter(kind=LoyaltyActivity.Kind.ORDER)
    has_order = {
        group[mid]
        for mid in orders.filter(member_id__in=list(group))
        .values_list("member_id", flat=True)
        .distinct()
    }
    for row in _rows(orders.filter(order_id__in=order_ids), group, "order_id"):
        prior_orders[row["account"]][row["order_id"]] = row
    birthday_rules = [r for r in rules if r.kind == LoyaltyEarningRule.Kind.BIRTHDAY_MONTH]
    birthday_given: set[tuple[int, int, int]] = set()
    if birthday_rules:
        given = LoyaltyLedgerEntry.objects.filter(rule__in=birthday_rules, kind=Kind.EARN)
        for row in _rows(given, group, "rule_id", "occurred_at"):
            year = _local_month(row["occurred_at"])[0]
            birthday_given.add((row["account"], row["rule_id"], year))

    activities: list[LoyaltyActivity] = []
    credits: list[LoyaltyLedgerEntry] = []
    refunds: list[tuple[int, dict, Decimal | None]] = []
    for event in chunk:
        account = member_of.get(event["profile_id"])
        if account is None:
            continue
        props = event["properties"] if isinstance(event["properties"], dict) else {}
        order_id = str(props.get("order_id") or "")[:200]
        when = event["timestamp"]
        activity = LoyaltyActivity(
            program=program,
            member_id=account,
            event_id=event["id"],
            order_id=order_id,
            occurred_at=when,
        )
        activities.append(activity)
        if when < enrolled[account]:
            activity.kind = LoyaltyActivity.Kind.IGNORED
            activity.note = "before enrolment"
            continue
        if event["name"] == ORDER_REFUNDED:
            activity.kind = LoyaltyActivity.Kind.REFUND
            refunds.append((account, event, order_total(props)))
            continue
        activity.kind = LoyaltyActivity.Kind.ORDER
        amount = order_amount(props)
        currency = str(props.get("currency") or "").upper()
        if order_id and order_id in prior_orders[account]:
            activity.kind = LoyaltyActivity.Kind.IGNORED
            activity.note = "order already earned (duplicate order_id)"
            counts["duplicate_orders"] += 1
            continue
        if amount is None or amount < 0:
            activity.kind = LoyaltyActivity.Kind.IGNORED
            activity.note = "no usable revenue or total"
            counts["unreadable_orders"] += 1
            continue
        if program.currency and currency and currency != program.currency.upper():
            activity.kind = LoyaltyActivity.Kind.IGNORED
            activity.note = f"currency {currency[:3]} is not {program.currency}"
            counts["other_currency_orders"] += 1
            continue
        activity.amount = amount
        activity.order_total = order_total(props)
        if order_id:
            prior_orders[account][order_id] = {"amount": amount}
        first = account not in has_order
        has_order.add(account)
        counts["orders"] += 1
        for rule in rules:
            if rule.kind == LoyaltyEarningRule.Kind.PER_UNIT:
                points = points_for(amount, rule.points_per_unit)
            elif rule.kind == LoyaltyEarningRule.Kind.FIRST_ORDER:
                points = rule.bonus_points if first else 0
            else:
                year, month = _local_month(when)
                key = (account, rule.pk, year)
                if birth_months.get(event["profile_id"]) != month or key in birthday_given:
                    continue
                birthday_given.add(key)
                points = rule.bonus_points
            if points <= 0:
                continue
            credits.append(
                _credit(
                    member=LoyaltyMember(pk=account),
                    program=program,
                    kind=Kind.EARN,
                    currency=rule.currency,
                    points=points,
                    at=when,
                    rule=rule,
                    event_id=event["id"],
                    order_id=order_id,
                    reason=rule.name[:300],
                )
            )
            counts["points_earned" if rule.currency == POINTS else "qualifying_earned"] += points
    rows_insert(LoyaltyLedgerEntry, credits)
    # Orders first: a refund in the same chunk finds its order's activity and earnings.
    refund_events = {event["id"] for _account, event, _total in refunds}
    rows_insert(LoyaltyActivity, [a for a in activities if a.event_id not in refund_events])
    if refunds:
        _refunds_apply(refunds, activities, counts, at)
        rows_insert(LoyaltyActivity, [a for a in activities if a.event_id in refund_events])
    counts["events"] += len(activities)
    return accounts & {a.member_id for a in activities}


def _refunds_apply(refunds, activities, counts, at: datetime) -> None:
    """Reverse the earnings of refunded orders, in proportion to the refunded total."""
    by_event = {a.event_id: a for a in activities}
    accounts = sorted({r[0] for r in refunds})
    order_ids = {str(e["properties"].get("order_id") or "") for _a, e, _t in refunds} - {""}
    group = _groups(accounts)
    activities_of_orders = LoyaltyActivity.objects.filter(order_id__in=order_ids)
    orders = {
        (row["account"], row["order_id"]): row
        for row in _rows(
            activities_of_orders.filter(kind=LoyaltyActivity.Kind.ORDER),
            group,
            "order_id",
            "amount",
            "order_total",
        )
    }
    refunded: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for row in _rows(
        activities_of_orders.filter(kind=LoyaltyActivity.Kind.REFUND), group, "order_id", "amount"
    ):
        refunded[(row["account"], row["order_id"])] += -row["amount"]
    earns: dict[tuple[int, str], list[dict]] = defaultdict(list)
    entries = LoyaltyLedgerEntry.objects.filter(
        order_id__in=order_ids, kind__in=[Kind.EARN, Kind.REVERSAL]
    ).order_by("id")
    for row in _rows(
        entries, group, "id", "order_id", "kind", "rule_id", "currency", "points", "lot_id"
    ):
        earns[(row["account"], row["order_id"])].append(row)
    lots = _lots_by_account(accounts, at)
    lot_index = {lot[0]: lot for account_lots in lots.values() for lot in account_lots}
    reversals: list[LoyaltyLedgerEntry] = []
    taken: dict[int, int] = {}
    for account, event, refund_total in refunds:
        activity = by_event[event["id"]]
        order_id = activity.order_id
        order = orders.get((account, order_id))
        if not order_id or order is None:
            activity.note = "no earning order with this order_id"
            counts["unmatched_refunds"] += 1
            continue
        base_total = order["order_total"] or order["amount"]
        if refund_total is None or not base_total or refund_total >= base_total:
            fraction = Decimal(1)
        else:
            fraction = max(Decimal(0), refund_total / base_total)
        spend_left = order["amount"] - refunded[(account, order_id)]
        spend = min(spend_left, (order["amount"] * fraction).quantize(Decimal("0.01")))
        activity.amount = -spend
        refunded[(account, order_id)] += spend
        counts["refunds"] += 1
        rows = earns[(account, order_id)]
        already: dict[int, int] = defaultdict(int)
        for row in rows:
            if row["kind"] == Kind.REVERSAL:
                already[row["lot_id"]] += -row["points"]
        short = 0
        for row in list(rows):
            if row["kind"] != Kind.EARN:
                continue
            wanted = int(
                (Decimal(row["points"]) * fraction).to_integral_value(rounding=ROUND_HALF_UP)
            )
            wanted = min(wanted, row["points"] - already[row["id"]])
            if wanted <= 0:
                continue
            if row["currency"] == POINTS:
                got = 0
                own = lot_index.get(row["id"])
                if own is not None:
                    got = _consume([own], wanted, taken)
                got += _consume(lots.get(account, []), wanted - got, taken)
                short += wanted - got
            else:
                got = wanted
            if got <= 0:
                continue
            already[row["id"]] += got
            entry = LoyaltyLedgerEntry(
                member_id=account,
                kind=Kind.REVERSAL,
                currency=row["currency"],
                points=-got,
                occurred_at=event["timestamp"],
                rule_id=row["rule_id"],
                event_id=event["id"],
                order_id=order_id,
                lot_id=row["id"],
                reason=f"refund of order {order_id}"[:300],
            )
            reversals.append(entry)
            rows.append({"id": None, "kind": Kind.REVERSAL, "lot_id": row["id"], "points": -got})
            counts["points_reversed" if row["currency"] == POINTS else "qualifying_reversed"] += got
        if short:
            activity.note = f"{short} points already spent could not be taken back"
            counts["points_not_recovered"] += short
    _lots_save(taken)
    rows_insert(LoyaltyLedgerEntry, reversals)


# --- tiers -------------------------------------------------------------------------------------


def _tier_specs(program: LoyaltyProgram) -> list[TierSpec]:
    return [
        TierSpec(t.pk, t.name, t.rank, t.min_qualifying_points, t.min_spend)
        for t in program.tiers.order_by("rank")
    ]


def loyalty_tiers_evaluate(
    *, program: LoyaltyProgram, member_ids: list[int] | None = None, at: datetime | None = None
) -> dict[str, int]:
    """Evaluate tiers of a program's active members (or some of them) at ``at``.

    Qualifying points and spend of the last ``qualifying_period_months`` are summed in SQL per
    chunk; the decision is ``tier_decide``; every change is a LoyaltyTierChange with its reason.
    """
    at = _now(at)
    specs = _tier_specs(program)
    window_start = add_months(at, -program.qualifying_period_months)
    members = LoyaltyMember.objects.filter(program=program, status=LoyaltyMember.Status.ACTIVE)
    if member_ids is not None:
        ids = LoyaltyMember.objects.filter(pk__in=member_ids).values_list(
            Coalesce("merged_into_id", "id"), flat=True
        )
        members = members.filter(pk__in=list(ids))
    counts = {"evaluated": 0, "upgrades": 0, "downgrades": 0, "initial": 0}
    last = 0
    while True:
        with transaction.atomic():
            chunk = list(
                members.filter(pk__gt=last)
                .order_by("pk")
                .select_for_update()
                .only("id", "tier_id", "tier_valid_until")[:CHUNK]
            )
            if not chunk:
                break
            last = chunk[-1].pk
            ids = [m.pk for m in chunk]
            group = _groups(ids)
            window = {"occurred_at__gt": window_start, "occurred_at__lte": at}
            points = _sums(
                LoyaltyLedgerEntry.objects.filter(currency=QUALIFYING, **window), group, "points"
            )
            spend = _sums(LoyaltyActivity.objects.filter(**window), group, "amount")
            changes = []
            for member in chunk:
                qp = max(0, points.get(member.pk) or 0)
                money = max(Decimal(0), spend.get(member.pk) or Decimal(0))
                decision = tier_decide(
                    tiers=specs,
                    current_id=member.tier_id,
                    valid_until=member.tier_valid_until,
                    points=qp,
                    spend=money,
                    at=at,
                    period_months=program.qualifying_period_months,
                )
                if decision.reason:
                    changes.append(
                        LoyaltyTierChange(
                            member_id=member.pk,
                            from_tier_id=member.tier_id,
                            to_tier_id=decision.tier_id,
                            reason=decision.reason[:300],
                            qualifying_points=qp,
                            spend=money,
                            changed_at=at,
                        )
                    )
                    kind = "initial" if member.tier_id is None else None
                    if kind is None:
                        old = next(s.rank for s in specs if s.id == member.tier_id)
                        new = next(s.rank for s in specs if s.id == decision.tier_id)
                        kind = "upgrades" if new > old else "downgrades"
                    counts[kind] += 1
                member.tier_id = decision.tier_id
                member.tier_valid_until = decision.valid_until
                member.qualifying_points = qp
                member.spend_in_period = money
            LoyaltyMember.objects.bulk_update(
                chunk,
                ["tier", "tier_valid_until", "qualifying_points", "spend_in_period"],
                batch_size=500,
            )
            rows_insert(LoyaltyTierChange, changes)
            counts["evaluated"] += len(chunk)
    return counts


# --- merge, unmerge, erasure -------------------------------------------------------------------


@transaction.atomic
def loyalty_profiles_merged(*, survivor_id: int, other_ids: list[int]) -> dict[str, int]:
    """Move memberships of merged-away profiles to the survivor; combine those of one program.

    Call it inside the profile merge, BEFORE the absorbed profiles are deleted (their
    memberships protect them). Absorbed members keep their entries (their origin); the
    survivor's member gets the best tier of the group and a balance over all of them.
    """
    members = list(
        LoyaltyMember.objects.select_for_update(of=("self",))
        .select_related("program", "tier")
        .filter(profile_id__in=[survivor_id, *other_ids], status=LoyaltyMember.Status.ACTIVE)
        .order_by("enrolled_at", "pk")
    )
    counts = {"moved": 0, "combined": 0}
    by_program: dict[int, list[LoyaltyMember]] = defaultdict(list)
    for member in members:
        by_program[member.program_id].append(member)
    now = timezone.now()
    for group in by_program.values():
        keep = next((m for m in group if m.profile_id == survivor_id), group[0])
        others = [m for m in group if m.pk != keep.pk]
        if keep.profile_id != survivor_id:
            keep.profile_id = survivor_id
            keep.save(update_fields=["profile"])
            counts["moved"] += 1
        if not others:
            continue
        if keep.premerge_tier_id is None and keep.tier_id is not None:
            keep.premerge_tier_id = keep.tier_id
            keep.premerge_tier_valid_until = keep.tier_valid_until
        best = max(
            [keep, *others],
            key=lambda m: (m.tier.rank if m.tier else -1, m.tier_valid_until or now),
        )
        other_pks = [m.pk for m in others]
        LoyaltyMember.objects.filter(pk__in=other_pks).update(
            status=LoyaltyMember.Status.MERGED, merged_into=keep, profile_id=survivor_id
        )
        LoyaltyMember.objects.filter(merged_into_id__in=other_pks).update(merged_into=keep)
        if best.pk != keep.pk and best.tier_id != keep.tier_id:
            LoyaltyTierChange.objects.create(
                member=keep,
                from_tier_id=keep.tier_id,
                to_tier_id=best.tier_id,
                reason=f"merge: member {best.member_number} held {best.tier}",
                changed_at=now,
            )
            keep.tier_id = best.tier_id
            keep.tier_valid_until = best.tier_valid_until
        keep.save(
            update_fields=["tier", "tier_valid_until", "premerge_tier", "premerge_tier_valid_until"]
        )
        balances_refresh(account_ids=[keep.pk])
        counts["combined"] += len(others)
    # Members merged earlier into a member of an absorbed profile follow it to the survivor.
    LoyaltyMember.objects.filter(
        profile_id__in=other_ids, status=LoyaltyMember.Status.MERGED
    ).update(profile_id=survivor_id)
    if members:
        audit_record(
            actor=None,
            action="loyalty.members.merge",
            target=f"profile:{survivor_id}",
            details={"merged_profile_ids": other_ids, **counts},
        )
    return counts


def _live_profile_id(profile_id: int) -> int | None:
    if Profile.objects.filter(pk=profile_id).exists():
        return profile_id
    redirects = ProfileRedirect.objects.filter(old_id=profile_id)
    return redirects.values_list("profile_id", flat=True).first()


@transaction.atomic
def loyalty_profile_unmerged(*, survivor_id: int, restored_ids: list[int]) -> dict[str, int]:
    """Give memberships back to profiles an unmerge restored; split combined balances.

    Call it AFTER the unmerge has recreated the restored profiles and repointed redirects.
    Each member goes back to the live profile of the profile it enrolled with. A split member
    gets the unused points of its own lots (what it earned minus what was spent from them);
    a settlement entry on each side moves debits made while combined, so both balances equal
    their lots and neither goes negative. Tiers go back to what each had, then are evaluated.
    """
    accounts = list(
        LoyaltyMember.objects.select_for_update().filter(
            profile_id=survivor_id, status=LoyaltyMember.Status.ACTIVE
        )
    )
    counts = {"returned": 0}
    now = timezone.now()
    restored = set(restored_ids)
    for account in accounts:
        group = list(
            LoyaltyMember.objects.select_for_update()
            .filter(Q(pk=account.pk) | Q(merged_into=account))
            .order_by("enrolled_at", "pk")
        )
        destinations: dict[int, list[LoyaltyMember]] = defaultdict(list)
        for member in group:
            live = _live_profile_id(member.origin_profile_id)
            destinations[live if live in restored else survivor_id].append(member)
        if len(destinations) == 1 and survivor_id in destinations:
            continue
        heads: dict[int, LoyaltyMember] = {}
        for profile_id, movers in destinations.items():
            head = next((m for m in movers if m.pk == account.pk), None) or next(
                (m for m in movers if m.origin_profile_id == profile_id), movers[0]
            )
            heads[profile_id] = head
            rest = [m.pk for m in movers if m.pk != head.pk]
            head.profile_id = profile_id
            head.status = LoyaltyMember.Status.ACTIVE
            head.merged_into = None
            LoyaltyMember.objects.filter(pk=head.pk).update(
                profile_id=profile_id, status=LoyaltyMember.Status.ACTIVE, merged_into=None
            )
            LoyaltyMember.objects.filter(pk__in=rest).update(
                profile_id=profile_id, merged_into=head, status=LoyaltyMember.Status.MERGED
            )
            if profile_id != survivor_id:
                counts["returned"] += 1
        head_ids = [h.pk for h in heads.values()]
        group = _groups(head_ids)
        in_points = LoyaltyLedgerEntry.objects.filter(currency=POINTS)
        lots = _sums(in_points, group, "remaining")
        sums = _sums(in_points, group, "points")
        settlements = []
        for head in heads.values():
            delta = (lots.get(head.pk) or 0) - (sums.get(head.pk) or 0)
            if delta:
                settlements.append(
                    LoyaltyLedgerEntry(
                        member=head,
                        kind=Kind.SETTLEMENT,
                        currency=POINTS,
                        points=delta,
                        occurred_at=now,
                        reason="unmerge: points spent while combined, assigned to their lots",
                    )
                )
        LoyaltyLedgerEntry.objects.bulk_create(settlements)
        balances_refresh(account_ids=head_ids)
        for head in heads.values():
            head.refresh_from_db()
            if head.premerge_tier_id is not None:
                if head.premerge_tier_id != head.tier_id:
                    LoyaltyTierChange.objects.create(
                        member=head,
                        from_tier_id=head.tier_id,
                        to_tier_id=head.premerge_tier_id,
                        reason="unmerge: back to the tier held before the merge",
                        changed_at=now,
                    )
                head.tier_id = head.premerge_tier_id
                head.tier_valid_until = head.premerge_tier_valid_until
                head.premerge_tier = None
                head.premerge_tier_valid_until = None
                head.save(
                    update_fields=[
                        "tier",
                        "tier_valid_until",
                        "premerge_tier",
                        "premerge_tier_valid_until",
                    ]
                )
        program = LoyaltyProgram.objects.get(pk=account.program_id)
        loyalty_tiers_evaluate(program=program, member_ids=head_ids, at=now)
    audit_record(
        actor=None,
        action="loyalty.members.unmerge",
        target=f"profile:{survivor_id}",
        details={"restored_profile_ids": sorted(restored), **counts},
    )
    return counts


@transaction.atomic
def loyalty_profile_erase(*, profile_id: int, actor=None) -> dict[str, int]:
    """Delete every loyalty record of a profile: memberships (and those merged into them),
    their ledger, activities, tier changes and the member-number source records."""
    members = list(
        LoyaltyMember.objects.filter(
            Q(profile_id=profile_id) | Q(merged_into__profile_id=profile_id)
        ).values_list("id", "program__slug", "member_number")
    )
    ids = [m[0] for m in members]
    counts = {"members": len(ids)}
    LoyaltyLedgerEntry.objects.filter(counterpart_id__in=ids).update(counterpart=None)
    entries = LoyaltyLedgerEntry.objects.filter(member_id__in=ids)
    # Debits pointing at these lots first (expiry/reversal rows), then the rest.
    counts["ledger_entries"] = entries.count()
    LoyaltyLedgerEntry.objects.filter(lot__member_id__in=ids).exclude(member_id__in=ids).update(
        lot=None
    )
    entries.filter(lot__isnull=False).delete()
    entries.delete()
    counts["activities"], _ = LoyaltyActivity.objects.filter(member_id__in=ids).delete()
    counts["tier_changes"], _ = LoyaltyTierChange.objects.filter(member_id__in=ids).delete()
    LoyaltyMember.objects.filter(pk__in=ids).update(merged_into=None)
    LoyaltyMember.objects.filter(pk__in=ids).delete()
    keys = [f"{slug}:{number}" for _id, slug, number in members]
    _total, deleted = SourceRecord.objects.filter(
        source__name=LOYALTY_SOURCE_NAME, external_key__in=keys
    ).delete()  # with their member-number identities (CASCADE)
    counts["source_records"] = deleted.get(SourceRecord._meta.label, 0)
    audit_record(
        actor=actor, action="loyalty.profile.erase", target=f"profile:{profile_id}", details=counts
    )
    return counts


@transaction.atomic
def loyalty_profiles_erase(*, profile_ids: list[int], actor=None) -> dict[str, int]:
    """Erasure of a data subject (the consent app's loyalty handler): every loyalty record of
    these profiles, via ``loyalty_profile_erase`` per profile (a person has one or a few).

    The audit rows about the memberships keep their action and date only. Must run before the
    profiles themselves are deleted (``LoyaltyMember.profile`` is PROTECT). Counts are prefixed
    ``loyalty_`` so they sit beside other handlers' counts on the request run.
    """
    member_ids = list(
        loyalty_members_of_profiles(profile_ids=profile_ids).values_list("id", flat=True)
    )
    totals: dict[str, int] = defaultdict(int)
    totals["loyalty_audit_scrubbed"] = AuditEvent.objects.filter(
        target__in=loyalty_member_audit_targets(member_ids)
    ).update(details={"erased": True})
    for profile_id in profile_ids:
        for key, value in loyalty_profile_erase(profile_id=profile_id, actor=actor).items():
            totals[f"loyalty_{key}"] += value
    return dict(totals)


# --- jobs --------------------------------------------------------------------------------------


def loyalty_job_enqueue(
    *, kind: str, program: LoyaltyProgram | None = None, sync: bool = False
) -> LoyaltyJobRun:
    """Create the run row of a loyalty job and run it in a worker (or inline with ``sync``)."""
    run = LoyaltyJobRun.objects.create(kind=kind, program=program)
    job_enqueue("profiles.loyalty_tasks.loyalty_job_execute", run.pk, sync=sync)
    if sync:
        run.refresh_from_db()
    return run


def loyalty_job_execute(*, run: LoyaltyJobRun, at: datetime | None = None) -> LoyaltyJobRun:
    """Run a job for its program (or every active program) and record counts on its row."""
    started = timezone.now()
    updated = LoyaltyJobRun.objects.filter(pk=run.pk, status=LoyaltyJobRun.Status.QUEUED).update(
        status=LoyaltyJobRun.Status.RUNNING, started_at=started
    )
    if not updated:
        run.refresh_from_db()
        return run  # already picked up by another worker
    programs = (
        [run.program]
        if run.program_id
        else list(LoyaltyProgram.objects.filter(is_active=True).order_by("pk"))
    )
    totals: dict[str, int] = defaultdict(int)
    try:
        for program in programs:
            if run.kind == LoyaltyJobRun.Kind.EARN:
                counts = loyalty_events_earn(program=program, at=at)
            elif run.kind == LoyaltyJobRun.Kind.EXPIRE:
                counts = loyalty_points_expire(program=program, at=at)
            else:
                counts = loyalty_tiers_evaluate(program=program, at=at)
            for key, value in counts.items():
                totals[key] += value
    except Exception as exc:
        LoyaltyJobRun.objects.filter(pk=run.pk).update(
            status=LoyaltyJobRun.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            counts=dict(totals),
            finished_at=timezone.now(),
        )
        raise
    LoyaltyJobRun.objects.filter(pk=run.pk).update(
        status=LoyaltyJobRun.Status.SUCCEEDED, counts=dict(totals), finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def loyalty_events_ingested(*, event_ids: Iterable[int]) -> None:
    """The hook for ingest paths: earn for just-stored order events after commit.

    Called by the tracking API (``services/tracking.py``) and the Shopify orders import
    (``services/orders.py``) inside their write transaction. ``event_ids`` may be a lazy
    queryset (``values_list("pk", flat=True)``): it is evaluated only when an active program
    exists, so an ingest pays one cheap query when there is none. Queued on commit (discarded
    with a rolled-back ingest), so an ingest never waits for loyalty and a loyalty failure
    never rolls back an ingest; the scheduled earning job catches up on anything this misses
    (e.g. events of a person who becomes a member later).
    """
    if not LoyaltyProgram.objects.filter(is_active=True).exists():
        return
    ids = list(event_ids)
    if ids:
        job_enqueue("profiles.loyalty_tasks.loyalty_events_earn", ids)
