"""Reading insights: the dashboards (from InsightMetric only) and the profile 360 page."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Max, QuerySet

from consent.models import ConsentRecord
from insights import charts
from insights.models import InsightMetric, InsightRun, ProfileInsight, RfmGroup
from profiles.loyalty_selectors import loyalty_summary
from profiles.models import Event, Identity, MergeLog, SourceRecord
from profiles.selectors import PROFILE_PARTS
from segments.models import SegmentMembership

DASHBOARDS = {
    "overview": "Overview",
    "identity": "Identity resolution",
    "segments": "Segments",
    "consent": "Consent",
    "privacy": "Privacy requests",
    "value": "Customer value",
}


@dataclass
class Dashboard:
    slug: str
    title: str
    tiles: list[tuple[str, str]] = field(default_factory=list)
    charts: list[dict] = field(default_factory=list)  # Plotly figure dicts
    notes: list[str] = field(default_factory=list)
    computed_at: object = None


def _metrics() -> dict[str, dict[str, float]]:
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for metric, bucket, value in InsightMetric.objects.values_list("metric", "bucket", "value"):
        values[metric][bucket] = value
    return values


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _sorted_items(values: dict[str, float], *, by_value=False, limit=None):
    items = sorted(values.items(), key=(lambda kv: -kv[1]) if by_value else (lambda kv: kv[0]))
    return items[:limit] if limit else items


def dashboard_get(*, slug: str) -> Dashboard:
    """A dashboard's tiles and figures, read from the materialised metrics (one query)."""
    m = _metrics()
    board = Dashboard(slug=slug, title=DASHBOARDS[slug])
    board.computed_at = InsightMetric.objects.aggregate(at=Max("computed_at"))["at"]
    if not m:
        board.notes.append(
            "No insight run has finished yet: run one (Insight runs > Add) or wait for the "
            "scheduled run."
        )
        return board
    BUILDERS[slug](board, m)
    return board


def _total(m, name: str) -> float:
    return m.get(f"total.{name}", {}).get("", 0)


def _build_overview(board: Dashboard, m) -> None:
    board.tiles = [
        ("Profiles", _number(_total(m, "profiles"))),
        ("Source records", _number(_total(m, "source_records"))),
        ("Events", _number(_total(m, "events"))),
        ("Sources", _number(_total(m, "sources"))),
    ]
    created = _sorted_items(m.get("profiles.created", {}))
    days = [d for d, _ in created]
    board.charts.append(
        charts.line_chart(
            "Profiles over time",
            days,
            {"Profiles": charts.cumulative([v for _, v in created])},
            y_title="profiles",
        )
    )
    by_source = _sorted_items(m.get("profiles.by_source", {}), by_value=True, limit=20)
    board.charts.append(
        charts.bar_chart(
            "Profiles by source",
            [k for k, _ in by_source],
            [v for _, v in by_source],
            horizontal=True,
        )
    )
    records = _sorted_items(m.get("records.by_source", {}), by_value=True, limit=20)
    board.charts.append(
        charts.bar_chart(
            "Source records by source",
            [k for k, _ in records],
            [v for _, v in records],
            horizontal=True,
        )
    )


def _build_identity(board: Dashboard, m) -> None:
    profiles, records = _total(m, "profiles"), _total(m, "source_records")
    rate = (1 - profiles / records) if records else None
    pending = m.get("suggestions.by_status", {}).get("pending")
    board.tiles = [
        ("Source records", _number(records)),
        ("Profiles", _number(profiles)),
        ("Consolidation rate", f"{rate:.1%}" if rate is not None else "–"),
        ("Review queue", _number(pending) if pending is not None else "–"),
    ]
    merges = _sorted_items(m.get("merges.by_day", {}))
    board.charts.append(
        charts.bar_chart(
            "Merges per day", [d for d, _ in merges], [v for _, v in merges], y_title="merges"
        )
    )
    items = _sorted_items(m.get("suggestions.by_status", {}))
    board.charts.append(
        charts.bar_chart(
            "Merge suggestions by status", [k for k, _ in items], [v for _, v in items]
        )
    )
    types = _sorted_items(m.get("identities.by_type", {}), by_value=True)
    board.charts.append(
        charts.bar_chart("Identities by type", [k for k, _ in types], [v for _, v in types])
    )


def _build_segments(board: Dashboard, m) -> None:
    sizes: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in m.get("segments.size", {}).items():
        day, name = key.split("|", 1)
        sizes[name][day] = value
    latest = sorted(sizes, key=lambda n: -sizes[n][max(sizes[n])])[:10]
    days = sorted({d for n in latest for d in sizes[n]})
    board.tiles = [("Segments with history", _number(len(sizes)))]
    board.charts.append(
        charts.line_chart(
            "Segment sizes (last 90 days, 10 largest)",
            days,
            {n: [sizes[n].get(d) for d in days] for n in latest},
            y_title="members",
        )
    )


def _build_consent(board: Dashboard, m) -> None:
    by_purpose: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in m.get("consent.current", {}).items():
        purpose, status = key.split("|", 1)
        by_purpose[purpose][status] = value
    purposes = sorted(by_purpose)
    rates = [
        100 * by_purpose[p].get("granted", 0) / (sum(by_purpose[p].values()) or 1) for p in purposes
    ]
    board.tiles = [("Purposes", _number(len(purposes)))]
    board.charts.append(
        charts.bar_chart("Opt-in rate by purpose (%)", purposes, rates, y_title="% granted")
    )
    statuses = sorted({s for p in purposes for s in by_purpose[p]})
    board.charts.append(
        charts.stacked_bar_chart(
            "Current consent by purpose",
            purposes,
            {s: [by_purpose[p].get(s, 0) for p in purposes] for s in statuses},
        )
    )


def _build_privacy(board: Dashboard, m) -> None:
    deadlines = _sorted_items(m.get("privacy.open_by_deadline", {}))
    board.tiles = [
        ("Open requests", _number(sum(v for _, v in deadlines))),
        ("Overdue", _number(dict(deadlines).get("1 overdue", 0))),
    ]
    states = _sorted_items(m.get("privacy.by_status", {}), by_value=True)
    board.charts.append(
        charts.bar_chart("Requests by state", [k for k, _ in states], [v for _, v in states])
    )
    board.charts.append(
        charts.bar_chart(
            "Open requests by deadline",
            [k.split(" ", 1)[1] for k, _ in deadlines],
            [v for _, v in deadlines],
        )
    )


def _build_value(board: Dashboard, m) -> None:
    customers = _total(m, "customers")
    board.tiles = [
        ("Customers", _number(customers)),
        ("Revenue", _number(_total(m, "revenue"))),
        ("Predicted CLV, 365 days", _number(_total(m, "predicted_clv"))),
        (
            "Average predicted CLV",
            _number(_total(m, "predicted_clv") / customers) if customers else "–",
        ),
    ]
    histogram = _sorted_items(m.get("clv.histogram", {}))
    board.charts.append(
        charts.bar_chart(
            "Predicted CLV distribution (365 days)",
            [k.split(" ", 1)[1] for k, _ in histogram],
            [v for _, v in histogram],
            y_title="customers",
        )
    )
    grid = {(int(k[0]), int(k[1])): v for k, v in m.get("rfm.grid", {}).items()}
    board.charts.append(charts.rfm_grid("RFM grid: customers by recency and frequency", grid))
    labels = dict(RfmGroup.choices)
    groups = _sorted_items(m.get("rfm.group_size", {}), by_value=True)
    board.charts.append(
        charts.bar_chart(
            "Customers by RFM group",
            [labels.get(k, k) for k, _ in groups],
            [v for _, v in groups],
            horizontal=True,
        )
    )


BUILDERS = {
    "overview": _build_overview,
    "identity": _build_identity,
    "segments": _build_segments,
    "consent": _build_consent,
    "privacy": _build_privacy,
    "value": _build_value,
}


# ---------------------------------------------------------------------------------------------
# Profile 360


@dataclass
class Profile360:
    profile: object
    attributes: list[tuple[str, object, str]]
    identities: list | None  # None: not shown to this viewer
    source_records: list | None
    source_record_count: int
    insight: ProfileInsight | None
    custom_insights: list[tuple[str, object]]
    merges: list | None
    events: list | None
    more_events: bool
    page: int
    sections: dict[str, list | None]  # consent records, segment memberships, loyalty cards


def _consent_history(profile_id: int, limit: int = 100) -> list:
    """Consent records, newest first; the newest of each purpose x channel is the current state
    (``is_current``), the rest is its history."""
    rows = list(
        ConsentRecord.objects.filter(profile_id=profile_id)
        .select_related("purpose", "channel")
        .order_by("-captured_at", "-pk")[:limit]
    )
    seen = set()
    for row in rows:
        key = (row.purpose_id, row.channel_id)
        row.is_current = key not in seen
        seen.add(key)
    return rows


def _segment_memberships(profile_id: int, limit: int = 100) -> list:
    return list(
        SegmentMembership.objects.filter(profile_id=profile_id)
        .select_related("segment")
        .order_by("-entered_at", "-pk")[:limit]
    )


def profile_360_get(
    *,
    profile,
    page: int = 1,
    limit: int = 100,
    parts: frozenset[str] = frozenset(PROFILE_PARTS),
):
    """Everything about one person the viewer may see (``parts``; others are None), each part
    with a fixed number of queries.

    Events of every merged record are on the survivor (merges move them), so the timeline
    shows the whole person; each event names the source record it came through.
    """
    records = list(
        SourceRecord.objects.filter(profile=profile).select_related("source").order_by("id")
    )
    label = {r.pk: f"{r.source.name} #{r.pk}" for r in records}
    attributes = [
        (name, value, label.get(profile.attribute_sources.get(name), "–"))
        for name, value in sorted(profile.attributes.items())
    ]
    identities = (
        list(
            Identity.objects.filter(profile=profile)
            .select_related("source_record__source")
            .order_by("type", "id")
        )
        if "identities" in parts
        else None
    )
    insight = ProfileInsight.objects.filter(profile=profile).first()
    events = None
    if "events" in parts:
        events_qs = Event.objects.filter(profile=profile).select_related("source", "source_record")
        offset = (max(page, 1) - 1) * limit
        events = list(events_qs.order_by("-timestamp", "-id")[offset : offset + limit + 1])
        for event in events:
            event.properties_json = json.dumps(event.properties, ensure_ascii=False, sort_keys=True)
            event.record_label = label.get(event.source_record_id, "")
    merges = (
        list(MergeLog.objects.filter(survivor=profile).order_by("-created_at")[:50])
        if "merges" in parts
        else None
    )
    sections = {
        "consent": _consent_history(profile.pk) if "consent" in parts else None,
        "segments": _segment_memberships(profile.pk) if "segments" in parts else None,
        "loyalty": loyalty_summary(profile) if "loyalty" in parts else None,
    }
    return Profile360(
        profile=profile,
        attributes=attributes,
        identities=identities,
        source_records=records if "source_records" in parts else None,
        source_record_count=len(records),
        insight=insight,
        custom_insights=sorted((insight.custom or {}).items()) if insight else [],
        merges=merges,
        events=events[:limit] if events is not None else None,
        more_events=events is not None and len(events) > limit,
        page=max(page, 1),
        sections=sections,
    )


def insight_runs_recent() -> QuerySet[InsightRun]:
    return InsightRun.objects.select_related("requested_by").order_by("-created_at")[:10]
