"""Materialising the dashboards' numbers: a handful of GROUP BY queries, one small table.

Each insight run ends with ``dashboard_metrics_refresh``; dashboards read only InsightMetric, so
they cost the same with a thousand profiles or ten million. Segment refresh history, consent
and data-subject requests are read from their apps' tables; with no rows there the dashboards
draw empty charts.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from consent.models import ConsentRecord, DataSubjectRequest, RequestStatus
from insights.models import InsightMetric, ProfileInsight
from insights.services.compute import workspace_tz
from profiles.models import (
    DataSource,
    Event,
    Identity,
    MergeLog,
    MergeSuggestion,
    Profile,
    SourceRecord,
)
from segments.models import SegmentRefresh

# Upper bounds of the predicted-CLV histogram buckets (workspace currency).
CLV_BUCKETS = [0, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]


def clv_bucket_label(index: int) -> str:
    if index == 0:
        return "00 0"
    if index >= len(CLV_BUCKETS):
        return f"{index:02d} > {CLV_BUCKETS[-1]}"
    return f"{index:02d} {CLV_BUCKETS[index - 1]}-{CLV_BUCKETS[index]}"


def _clv_bucket_case():
    whens = [When(predicted_clv__lte=0, then=Value(0))]
    for i, upper in enumerate(CLV_BUCKETS[1:], start=1):
        whens.append(When(predicted_clv__lte=upper, then=Value(i)))
    return Case(*whens, default=Value(len(CLV_BUCKETS)), output_field=IntegerField())


def _profiles_metrics(put) -> None:
    tz = workspace_tz()
    put("total.profiles", "", Profile.objects.count())
    put("total.source_records", "", SourceRecord.objects.count())
    put("total.identities", "", Identity.objects.count())
    put("total.events", "", Event.objects.count())
    put("total.sources", "", DataSource.objects.count())
    for row in (
        Profile.objects.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    ):
        put("profiles.created", row["day"].isoformat(), row["n"])
    for row in SourceRecord.objects.values("source__name").annotate(n=Count("id")).order_by():
        put("records.by_source", row["source__name"], row["n"])
    for row in (
        SourceRecord.objects.filter(profile__isnull=False)
        .values("source__name")
        .annotate(n=Count("profile_id", distinct=True))
        .order_by()
    ):
        put("profiles.by_source", row["source__name"], row["n"])
    for row in Identity.objects.values("type").annotate(n=Count("id")).order_by():
        put("identities.by_type", row["type"], row["n"])


def _identity_metrics(put) -> None:
    tz = workspace_tz()
    for row in (
        MergeLog.objects.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    ):
        put("merges.by_day", row["day"].isoformat(), row["n"])
    put("suggestions.by_status", "pending", 0)
    for row in MergeSuggestion.objects.values("status").annotate(n=Count("id")).order_by():
        put("suggestions.by_status", row["status"], row["n"])


def _value_metrics(put) -> None:
    rows = ProfileInsight.objects
    customers = rows.filter(order_count__gt=0)
    put("total.customers", "", customers.count())
    put("total.revenue", "", float(customers.aggregate(s=Sum("revenue"))["s"] or 0))
    put("total.predicted_clv", "", float(rows.aggregate(s=Sum("predicted_clv"))["s"] or 0))
    for row in (
        customers.values("recency_score", "frequency_score").annotate(n=Count("pk")).order_by()
    ):
        if row["recency_score"] and row["frequency_score"]:
            put("rfm.grid", f"{row['recency_score']}{row['frequency_score']}", row["n"])
    for row in (
        customers.values("rfm_group").annotate(n=Count("pk"), revenue=Sum("revenue")).order_by()
    ):
        put("rfm.group_size", row["rfm_group"] or "unscored", row["n"])
        put("rfm.group_revenue", row["rfm_group"] or "unscored", float(row["revenue"] or 0))
    for row in (
        rows.filter(predicted_clv__isnull=False)
        .annotate(bucket=_clv_bucket_case())
        .values("bucket")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        put("clv.histogram", clv_bucket_label(row["bucket"]), row["n"])


def _segment_metrics(put) -> None:
    since = timezone.now() - timedelta(days=90)
    tz = workspace_tz()
    for row in (
        SegmentRefresh.objects.filter(
            status=SegmentRefresh.Status.SUCCEEDED, finished_at__gte=since, size__isnull=False
        )
        .annotate(day=TruncDate("finished_at", tzinfo=tz))
        .values("segment__name", "day")
        .annotate(size=Sum("size"), n=Count("id"))
        .order_by()
    ):
        # The last refresh of a day stands for the day; several a day are averaged.
        put(
            "segments.size",
            f"{row['day'].isoformat()}|{row['segment__name']}",
            row["size"] / row["n"],
        )


def _consent_metrics(put) -> None:
    # The current state of each (profile, purpose, channel) is its latest record.
    newer = ConsentRecord.objects.filter(
        profile_id=OuterRef("profile_id"),
        purpose_id=OuterRef("purpose_id"),
        channel_id=OuterRef("channel_id"),
        captured_at__gt=OuterRef("captured_at"),
    )
    current = ConsentRecord.objects.filter(~Exists(newer))
    for row in current.values("purpose__name", "status").annotate(n=Count("id")).order_by():
        put("consent.current", f"{row['purpose__name']}|{row['status']}", row["n"])


def _privacy_metrics(put) -> None:
    today = timezone.now().astimezone(workspace_tz()).date()
    for row in DataSubjectRequest.objects.values("status").annotate(n=Count("id")).order_by():
        put("privacy.by_status", row["status"], row["n"])
    open_requests = DataSubjectRequest.objects.exclude(
        status__in=[RequestStatus.COMPLETED, RequestStatus.REJECTED]
    )
    windows = [
        ("1 overdue", {"due_date__lt": today}),
        ("2 due in 7 days", {"due_date__gte": today, "due_date__lte": today + timedelta(days=7)}),
        (
            "3 due in 8-30 days",
            {
                "due_date__gt": today + timedelta(days=7),
                "due_date__lte": today + timedelta(days=30),
            },
        ),
        ("4 due later", {"due_date__gt": today + timedelta(days=30)}),
    ]
    for label, lookups in windows:
        put("privacy.open_by_deadline", label, open_requests.filter(**lookups).count())


def dashboard_metrics_refresh() -> int:
    """Recompute every dashboard number and replace the table in one transaction."""
    values: dict[tuple[str, str], float] = {}

    def put(metric: str, bucket: str, value) -> None:
        values[(metric, str(bucket)[:200])] = float(value)

    for part in (
        _profiles_metrics,
        _identity_metrics,
        _value_metrics,
        _segment_metrics,
        _consent_metrics,
        _privacy_metrics,
    ):
        part(put)
    now = timezone.now()
    with transaction.atomic():
        InsightMetric.objects.all().delete()
        InsightMetric.objects.bulk_create(
            [
                InsightMetric(metric=m, bucket=b, value=v, computed_at=now)
                for (m, b), v in values.items()
            ],
            batch_size=2000,
        )
    return len(values)
