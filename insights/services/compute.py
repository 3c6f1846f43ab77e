"""Computing insights per profile: set-based aggregates grouped by profile, written in batches.

A chunk of profiles costs a fixed number of queries (orders, engagement, one per custom
insight, one upsert), whatever its size. RFM scores are two UPDATE statements over the table;
CLV streams one aggregate row per (profile, purchase day) into numpy and writes back in batches.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Avg, Case, Count, F, Max, Min, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from insights import clv, rfm
from insights.models import CustomInsight, CustomInsightFilter, InsightRun, ProfileInsight
from insights.services.expressions import counted_orders, json_number, json_text, property_path
from profiles.models import Event

logger = logging.getLogger(__name__)

CHUNK_SIZE = 5000
WRITE_BATCH = 2000
ENGAGEMENT_DAYS = 30
CLV_HORIZON_DAYS = 365
BASE_FIELDS = [
    "order_count",
    "revenue",
    "refunded",
    "average_order_value",
    "unconverted_order_count",
    "first_order_at",
    "last_order_at",
    "days_since_last_order",
    "purchase_days",
    "events_30d",
    "active_days_30d",
    "engagement_score",
    "custom",
    "computed_at",
]
CLV_FIELDS = ["predicted_purchases_365d", "probability_alive", "predicted_clv"]


def workspace_tz() -> ZoneInfo:
    return ZoneInfo(settings.CDP_TIME_ZONE)


@contextmanager
def analytics_transaction():
    """A transaction for the big aggregate queries. On PostgreSQL it turns JIT off for it:
    compiling these many-expression plans cost 25x the query itself (bench_dashboards)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        yield


def money(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(round(value, 2)))


# ---------------------------------------------------------------------------------------------
# Per-profile aggregates


def _scope(profile_ids: list[int] | None, bounds: tuple[int, int] | None) -> Q:
    if bounds is not None:
        return Q(profile_id__gte=bounds[0], profile_id__lte=bounds[1])
    return Q(profile_id__in=profile_ids or [])


def _order_rows(scope: Q) -> dict[int, dict]:
    tz = workspace_tz()
    counted = Q(counted=True)
    rows = (
        counted_orders(Event.objects.filter(scope), scope)
        .values("profile_id")
        .annotate(
            order_count=Count("id", filter=counted),
            revenue=Sum(F("net") * F("rate"), filter=counted),
            refunded=Sum(F("refunded") * F("rate")),
            unconverted=Count("id", filter=counted & Q(rate__isnull=True)),
            first_at=Min("timestamp", filter=counted),
            last_at=Max("timestamp", filter=counted),
            days=Count(TruncDate("timestamp", tzinfo=tz), distinct=True, filter=counted),
        )
        .order_by()
    )
    return {row["profile_id"]: row for row in rows}


def _engagement_rows(scope: Q, now: datetime) -> dict[int, dict]:
    since = now - timedelta(days=ENGAGEMENT_DAYS)
    rows = (
        Event.objects.filter(scope, timestamp__gt=since, timestamp__lte=now)
        .exclude(type=Event.Type.IDENTIFY)
        .values("profile_id")
        .annotate(
            n=Count("id"),
            days=Count(TruncDate("timestamp", tzinfo=workspace_tz()), distinct=True),
        )
        .order_by()
    )
    return {row["profile_id"]: row for row in rows}


def custom_filter_q(flt: CustomInsightFilter) -> Q:
    """One admin-defined filter as a condition on Event (never raw SQL).

    Works on the annotations ``custom_insight_queryset`` adds: ``_t<id>`` (the property as
    text) and ``_f<id>`` (as a number, NULL when not numeric). "does not equal" also matches
    events without the property.
    """
    op = CustomInsightFilter.Operator
    text, number = f"_t{flt.pk}", f"_f{flt.pk}"
    if flt.operator == op.IS_SET:
        return Q(**{f"{text}__isnull": False})
    if flt.operator == op.GREATER:
        return Q(**{f"{number}__gt": float(flt.value)})
    if flt.operator == op.LESS:
        return Q(**{f"{number}__lt": float(flt.value)})
    if flt.operator == op.CONTAINS:
        return Q(**{f"{text}__icontains": flt.value})
    if flt.operator == op.NOT_EQUALS:
        return ~Q(**{text: flt.value}) | Q(**{f"{text}__isnull": True})
    return Q(**{text: flt.value})


def custom_insight_queryset(insight: CustomInsight, scope: Q, now: datetime):
    """Per-profile values of one custom insight: rows of (profile_id, value)."""
    events = Event.objects.filter(scope, name=insight.event_name)
    if insight.window_days:
        events = events.filter(timestamp__gt=now - timedelta(days=insight.window_days))
    filters = list(insight.filters.all())
    annotations = {}
    for flt in filters:
        path = property_path(flt.property)
        annotations[f"_t{flt.pk}"] = json_text(path)
        annotations[f"_f{flt.pk}"] = json_number(path)
    if annotations:
        events = events.annotate(**annotations)
    for flt in filters:
        events = events.filter(custom_filter_q(flt))
    agg = CustomInsight.Aggregate
    if insight.aggregate == agg.COUNT:
        return events.values("profile_id").annotate(value=Count("id")).order_by()
    function = {agg.SUM: Sum, agg.AVG: Avg, agg.MIN: Min, agg.MAX: Max}[insight.aggregate]
    return (
        events.annotate(_number=json_number(property_path(insight.property)))
        .filter(_number__isnull=False)
        .values("profile_id")
        .annotate(value=function("_number"))
        .order_by()
    )


def _custom_rows(scope: Q, now: datetime, insights: list[CustomInsight]) -> dict[int, dict]:
    values: dict[int, dict] = {}
    for insight in insights:
        for row in custom_insight_queryset(insight, scope, now):
            value = row["value"]
            if isinstance(value, float):
                value = round(value, 6)
            values.setdefault(row["profile_id"], {})[insight.key] = value
    return values


def profile_insights_write(
    *,
    profile_ids: list[int],
    bounds: tuple[int, int] | None = None,
    now: datetime,
    insights: list[CustomInsight],
) -> int:
    """Compute and upsert the base and custom insights of these profiles (a fixed query count).

    ``bounds`` (lowest, highest id) narrows the event queries to an id range in full runs.
    RFM scores and CLV are left for ``rfm_scores_apply`` and ``clv_apply``.
    """
    if not profile_ids:
        return 0
    scope = _scope(profile_ids, bounds)
    with analytics_transaction():
        orders = _order_rows(scope)
        engagement = _engagement_rows(scope, now)
        custom = _custom_rows(scope, now, insights)
    counts = {i.key: 0 for i in insights if i.aggregate == CustomInsight.Aggregate.COUNT}
    today = now.astimezone(workspace_tz()).date()
    objects = []
    for pid in profile_ids:
        o = orders.get(pid) or {}
        e = engagement.get(pid) or {}
        count = o.get("order_count") or 0
        revenue = o.get("revenue") or 0.0
        converted = count - (o.get("unconverted") or 0)
        last_at = o.get("last_at") if count else None
        objects.append(
            ProfileInsight(
                profile_id=pid,
                order_count=count,
                revenue=money(revenue),
                refunded=money(o.get("refunded") or 0.0),
                average_order_value=money(revenue / converted) if converted else None,
                unconverted_order_count=o.get("unconverted") or 0,
                first_order_at=o.get("first_at") if count else None,
                last_order_at=last_at,
                days_since_last_order=(
                    (today - last_at.astimezone(workspace_tz()).date()).days if last_at else None
                ),
                purchase_days=o.get("days") or 0,
                events_30d=e.get("n") or 0,
                active_days_30d=e.get("days") or 0,
                engagement_score=round(100 * (e.get("days") or 0) / ENGAGEMENT_DAYS),
                custom={**counts, **custom.get(pid, {})},
                computed_at=now,
                # Cleared here (one write per row); clv_apply fills them in for customers.
                predicted_purchases_365d=None,
                probability_alive=None,
                predicted_clv=None,
            )
        )
    ProfileInsight.objects.bulk_create(
        objects,
        batch_size=WRITE_BATCH,
        update_conflicts=True,
        unique_fields=["profile"],
        update_fields=BASE_FIELDS + CLV_FIELDS,
    )
    return len(objects)


# ---------------------------------------------------------------------------------------------
# RFM


RFM_FIELDS = {"recency": "last_order_at", "frequency": "order_count", "monetary": "revenue"}


def rfm_cuts_compute() -> dict:
    """Quintile cut points of customers with orders: a few indexed OFFSET queries."""
    customers = ProfileInsight.objects.filter(order_count__gt=0)
    n = customers.count()
    cuts: dict = {"customers": n}
    for name, column in RFM_FIELDS.items():
        values = []
        for position in rfm.quintile_positions(n) if n else []:
            value = customers.order_by(column, "profile_id").values_list(column, flat=True)[
                position
            ]
            values.append(value.isoformat() if isinstance(value, datetime) else float(value))
        cuts[name] = values
    return cuts


def _score_case(column: str, cuts: list):
    whens = [
        When(**{f"{column}__gt": cut}, then=Value(len(cuts) + 1 - i))
        for i, cut in enumerate(reversed(cuts))
    ]
    return Case(*whens, default=Value(1))


def rfm_scores_apply(*, queryset, cuts: dict) -> None:
    """Set scores and named groups on these rows from the cut points (two UPDATE statements)."""
    queryset.filter(order_count=0).update(
        recency_score=None, frequency_score=None, monetary_score=None, rfm_group=""
    )
    if not cuts.get("customers"):
        return
    parsed = {
        "recency": [datetime.fromisoformat(c) for c in cuts["recency"]],
        "frequency": cuts["frequency"],
        "monetary": [Decimal(str(c)) for c in cuts["monetary"]],
    }
    customers = queryset.filter(order_count__gt=0)
    customers.update(
        recency_score=_score_case("last_order_at", parsed["recency"]),
        frequency_score=_score_case("order_count", parsed["frequency"]),
        monetary_score=_score_case("revenue", parsed["monetary"]),
    )
    customers.update(
        rfm_group=Case(
            *[
                When(
                    recency_score__in=sorted(recencies),
                    frequency_score__in=sorted(frequencies),
                    then=Value(group),
                )
                for recencies, frequencies, group in rfm.GROUP_RULES
            ],
            default=Value(""),
        )
    )


# ---------------------------------------------------------------------------------------------
# CLV


@dataclass
class ClvInputs:
    """Per-customer BG/NBD and Gamma-Gamma inputs in days (see insights.clv)."""

    profile_ids: list[int] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    t_x: list[float] = field(default_factory=list)
    T: list[float] = field(default_factory=list)
    m: list[float] = field(default_factory=list)

    def arrays(self):
        return (np.array(self.x), np.array(self.t_x), np.array(self.T), np.array(self.m))


def clv_inputs(*, scope: Q, today: date) -> ClvInputs:
    """Purchase history per customer: several orders on one day are one purchase period.

    x = purchase days - 1; t_x = last - first purchase day; T = today - first purchase day;
    m = average value of the repeat purchase days (net of refunds, workspace currency).
    """
    rows = (
        counted_orders(Event.objects.filter(scope), scope)
        .filter(counted=True)
        .values("profile_id", day=TruncDate("timestamp", tzinfo=workspace_tz()))
        .annotate(value=Sum(F("net") * F("rate")))
        .order_by("profile_id", "day")
    )
    inputs = ClvInputs()
    current, days = None, []

    def flush():
        if current is None:
            return
        first, last = days[0][0], days[-1][0]
        repeat = [v for _, v in days[1:]]
        inputs.profile_ids.append(current)
        inputs.x.append(len(days) - 1)
        inputs.t_x.append((last - first).days)
        inputs.T.append(max((today - first).days, 0))
        inputs.m.append(sum(repeat) / len(repeat) if repeat else 0.0)

    with analytics_transaction():
        for row in rows.iterator(chunk_size=10000):
            if row["profile_id"] != current:
                flush()
                current, days = row["profile_id"], []
            days.append((row["day"], row["value"] or 0.0))
    flush()
    return inputs


def clv_fit(inputs: ClvInputs) -> dict:
    """Fit both models on these customers; identical histories are fitted once with a weight."""
    x, t_x, T, m = inputs.arrays()
    usable = T > 0
    if usable.sum() < 3:
        raise clv.FitError("At least three customers with a purchase before today are needed.")
    stacked = np.stack([x[usable], t_x[usable], T[usable]], axis=1)
    unique, weights = np.unique(stacked, axis=0, return_counts=True)
    bgnbd = clv.bgnbd_fit(unique[:, 0], unique[:, 1], unique[:, 2], weights=weights)
    result = {"bgnbd": bgnbd.as_dict(), "customers": int(usable.sum()), "unit": "days"}
    try:
        result["gamma_gamma"] = clv.gamma_gamma_fit(x, m).as_dict()
    except clv.FitError as exc:
        result["gamma_gamma_error"] = str(exc)
    return result


def clv_apply(*, inputs: ClvInputs, params: dict, now: datetime) -> int:
    """Write expected purchases, probability alive and predicted CLV (365 days) in batches."""
    if not inputs.profile_ids or "bgnbd" not in params:
        return 0
    bgnbd = clv.BgNbdParams(**{k: float(v) for k, v in params["bgnbd"].items()})
    gg = (
        clv.GammaGammaParams(**{k: float(v) for k, v in params["gamma_gamma"].items()})
        if "gamma_gamma" in params
        else None
    )
    x, t_x, T, m = inputs.arrays()
    purchases, alive, value = clv.predicted_clv(
        bgnbd, gg, horizon=CLV_HORIZON_DAYS, x=x, t_x=t_x, T=T, m=m
    )
    objects = [
        ProfileInsight(
            profile_id=pid,
            predicted_purchases_365d=_finite(purchases[i]),
            probability_alive=_finite(alive[i]),
            predicted_clv=money(_finite(value[i])),
            computed_at=now,
        )
        for i, pid in enumerate(inputs.profile_ids)
    ]
    ProfileInsight.objects.bulk_create(
        objects,
        batch_size=WRITE_BATCH,
        update_conflicts=True,
        unique_fields=["profile"],
        update_fields=CLV_FIELDS,
    )
    return len(objects)


def _finite(value) -> float | None:
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# Runs


def last_successful_run(kind: str | None = None) -> InsightRun | None:
    runs = InsightRun.objects.filter(status=InsightRun.Status.SUCCEEDED)
    if kind:
        runs = runs.filter(kind=kind)
    return runs.order_by("-created_at", "-pk").first()


def active_custom_insights() -> list[CustomInsight]:
    return list(CustomInsight.objects.filter(is_active=True).prefetch_related("filters"))


def insights_compute_full(*, run: InsightRun, now: datetime | None = None) -> InsightRun:
    """Every profile, then RFM cut points and the CLV fit over all customers."""
    from profiles.models import Profile

    now = now or timezone.now()
    insights = active_custom_insights()
    run.last_event_id = Event.objects.aggregate(m=Max("id"))["m"] or 0
    run.profiles_total = Profile.objects.count()
    run.save(update_fields=["last_event_id", "profiles_total"])
    done, after = 0, 0
    while True:
        ids = list(
            Profile.objects.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:CHUNK_SIZE]
        )
        if not ids:
            break
        done += profile_insights_write(
            profile_ids=ids, bounds=(ids[0], ids[-1]), now=now, insights=insights
        )
        after = ids[-1]
        InsightRun.objects.filter(pk=run.pk).update(profiles_done=done)
    run.profiles_done = done
    run.rfm_cuts = rfm_cuts_compute()
    rfm_scores_apply(queryset=ProfileInsight.objects.all(), cuts=run.rfm_cuts)
    today = now.astimezone(workspace_tz()).date()
    inputs = clv_inputs(scope=Q(profile__isnull=False), today=today)
    try:
        run.clv_params = clv_fit(inputs)
    except clv.FitError as exc:
        previous = last_successful_run()
        kept = previous.clv_params if previous and "bgnbd" in previous.clv_params else {}
        run.clv_params = {
            **kept,
            "fit_error": str(exc),
            "reused_from_run": previous and previous.pk,
        }
    clv_apply(inputs=inputs, params=run.clv_params, now=now)
    run.save(update_fields=["profiles_done", "rfm_cuts", "clv_params"])
    return run


def touched_profile_ids(*, since: InsightRun) -> list[int]:
    """Profiles with events stored after that run, survivors of merges (and unmerges) since,
    and profiles without insights yet (new ones, and those an unmerge restored)."""
    from profiles.models import MergeLog, Profile

    ids = set(
        Event.objects.filter(id__gt=since.last_event_id or 0, profile__isnull=False)
        .values_list("profile_id", flat=True)
        .distinct()
    )
    start = since.started_at or since.created_at
    ids.update(
        MergeLog.objects.filter(Q(created_at__gte=start) | Q(unmerged_at__gte=start))
        .filter(survivor_id__in=Profile.objects.values("pk"))  # absorbed since: gone
        .values_list("survivor_id", flat=True)
    )
    ids.update(Profile.objects.filter(insight__isnull=True).values_list("pk", flat=True))
    return sorted(ids)


def insights_compute_incremental(*, run: InsightRun, now: datetime | None = None) -> InsightRun:
    """Recompute the touched profiles with the last full run's cut points and CLV fit."""
    now = now or timezone.now()
    previous = last_successful_run()
    full = last_successful_run(InsightRun.Kind.FULL)
    if previous is None or full is None:
        return insights_compute_full(run=run, now=now)
    run.last_event_id = Event.objects.aggregate(m=Max("id"))["m"] or 0
    ids = touched_profile_ids(since=previous)
    run.profiles_total = len(ids)
    run.rfm_cuts, run.clv_params = full.rfm_cuts, full.clv_params
    run.save(update_fields=["last_event_id", "profiles_total", "rfm_cuts", "clv_params"])
    insights = active_custom_insights()
    today = now.astimezone(workspace_tz()).date()
    for start in range(0, len(ids), CHUNK_SIZE):
        chunk = ids[start : start + CHUNK_SIZE]
        profile_insights_write(profile_ids=chunk, now=now, insights=insights)
        rows = ProfileInsight.objects.filter(profile_id__in=chunk)
        rfm_scores_apply(queryset=rows, cuts=run.rfm_cuts)
        inputs = clv_inputs(scope=Q(profile_id__in=chunk), today=today)
        clv_apply(inputs=inputs, params=run.clv_params, now=now)
        run.profiles_done = start + len(chunk)
        InsightRun.objects.filter(pk=run.pk).update(profiles_done=run.profiles_done)
    return run
