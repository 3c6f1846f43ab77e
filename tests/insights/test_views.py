"""Dashboards and the profile 360 page: permissions, escaping, content, query budgets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from consent.services.consent import consent_record
from insights.models import InsightMetric, InsightRun
from insights.selectors import DASHBOARDS
from insights.services.runs import insight_run_create
from profiles.models import MergeLog, Profile
from profiles.services.loyalty import loyalty_member_enrol
from segments.models import Segment, SegmentMembership
from tests.profiles.loyalty_helpers import make_program


@pytest.fixture
def staff(db):
    def make(role: str | None = None, superuser=False) -> User:
        user = User.objects.create_user(
            f"user{User.objects.count()}", password="pw", is_staff=True, is_superuser=superuser
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def merged_person(send, order, api_source):
    """An anonymous visitor and a known customer whom a data steward merged (one person)."""
    from profiles.services.merging import profiles_merge
    from profiles.services.tracking import tracking_messages_ingest

    tracking_messages_ingest(
        source=api_source,
        messages=[
            {
                "type": "track",
                "anonymousId": "a-1",
                "event": "Product Viewed",
                "properties": {"name": "<b>Mug</b>"},
                "timestamp": "2026-06-01T10:00:00Z",
            }
        ],
    )
    send("u-1", traits={"email": "ann@example.com", "firstName": "Ann"})
    order("u-1", "o-1", "2026-06-02T10:00:00Z", 42)
    anonymous, known = Profile.objects.order_by("pk")
    profiles_merge(survivor_id=anonymous.pk, other_ids=[known.pk], reason="steward: same device")
    assert Profile.objects.count() == 1
    return Profile.objects.get()


def test_every_dashboard_renders_its_charts_as_json_script(client, staff, merged_person):
    insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    client.force_login(staff("Marketer"))
    for slug in DASHBOARDS:
        response = client.get(reverse("admin:insights_dashboard", args=[slug]))
        assert response.status_code == 200, slug
        board = response.context["board"]
        assert len(response.context["charts"]) == len(board.charts)
    value = client.get(reverse("admin:insights_dashboard", args=["value"]))
    titles = [fig["layout"]["title"]["text"] for _, _, fig in value.context["charts"]]
    assert titles == [
        "Predicted CLV distribution (365 days)",
        "RFM grid: customers by recency and frequency",
        "Customers by RFM group",
    ]
    overview = client.get(reverse("admin:insights_dashboard"))
    assert dict(overview.context["board"].tiles)["Profiles"] == "1"
    assert b'src="/static/vendor/plotly.min.js"' in overview.content
    identity = client.get(reverse("admin:insights_dashboard", args=["identity"]))
    # 2 source records (anonymous and known) became 1 profile: 1 - 1/2.
    assert dict(identity.context["board"].tiles)["Consolidation rate"] == "50.0%"


def test_dashboard_labels_are_escaped(client, staff, db):
    InsightMetric.objects.create(metric="total.profiles", bucket="", value=1)
    InsightMetric.objects.create(
        metric="profiles.by_source", bucket="</script><script>alert(1)</script>", value=3
    )
    client.force_login(staff(superuser=True))
    response = client.get(reverse("admin:insights_dashboard"))
    assert b"<script>alert(1)</script>" not in response.content
    assert b"\\u003C/script\\u003E\\u003Cscript\\u003Ealert(1)" in response.content


def test_dashboard_reads_only_the_metrics_table(client, staff, db, django_assert_max_num_queries):
    InsightMetric.objects.create(metric="total.profiles", bucket="", value=5)
    client.force_login(staff(superuser=True))
    with django_assert_max_num_queries(8):
        client.get(reverse("admin:insights_dashboard", args=["value"]))


def test_dashboards_and_360_need_their_roles(client, staff, merged_person):
    client.force_login(staff("Data Engineer"))  # no insights permissions
    assert client.get(reverse("admin:insights_dashboard")).status_code == 403
    client.force_login(staff())  # staff without any role
    url = reverse("admin:insights_profile_360", args=[merged_person.pk])
    assert client.get(url).status_code == 403
    client.force_login(staff("Data Steward"))
    assert client.get(url).status_code == 200


def test_profile_360_shows_the_merged_persons_timeline(client, staff, merged_person):
    insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    client.force_login(staff("Data Steward"))
    url = reverse("admin:insights_profile_360", args=[merged_person.pk])
    response = client.get(url)
    view = response.context["view"]
    names = [(e.type, e.name) for e in view.events]
    assert ("track", "Product Viewed") in names and ("track", "Order Completed") in names
    records = {r.external_key: f"web #{r.pk}" for r in view.source_records}
    assert set(records) == {"anon:a-1", "user:u-1"}
    through = {e.name: e.record_label for e in view.events if e.type == "track"}
    assert through == {
        "Product Viewed": records["anon:a-1"],
        "Order Completed": records["user:u-1"],
    }
    attributes = {name: (value, origin) for name, value, origin in view.attributes}
    assert attributes["email"] == ("ann@example.com", records["user:u-1"])
    assert view.insight.order_count == 1
    content = response.content.decode()
    assert "&lt;b&gt;Mug&lt;/b&gt;" in content and "<b>Mug</b>" not in content
    # The absorbed id redirects to the person it became.
    absorbed = MergeLog.objects.get().merged_ids[0]
    old = client.get(reverse("admin:insights_profile_360", args=[absorbed]))
    assert old.status_code == 302 and old.url == url


def test_profile_360_headline_before_any_insight_run_says_not_computed(
    client, staff, merged_person
):
    # The person has an order of 42, but no insight run has included them yet: the tiles must
    # not claim 0 orders and 0 revenue.
    client.force_login(staff("Data Steward"))
    url = reverse("admin:insights_profile_360", args=[merged_person.pk])
    content = client.get(url).content.decode()
    for label in ("Orders", "Revenue", "Engagement"):
        assert f'<span class="cdp-count">–</span><span class="cdp-label">{label}</span>' in content

    insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    content = client.get(url).content.decode()
    assert '<span class="cdp-count">1</span><span class="cdp-label">Orders</span>' in content


def test_360_is_linked_from_the_change_page_and_search_results(client, staff, merged_person):
    client.force_login(staff(superuser=True))
    url = reverse("admin:insights_profile_360", args=[merged_person.pk])
    change = client.get(reverse("admin:profiles_profile_change", args=[merged_person.pk]))
    assert f'href="{url}"' in change.content.decode()
    results = client.get(reverse("admin:profiles_profile_changelist"), {"q": "ann@example.com"})
    assert f'href="{url}"' in results.content.decode()


def test_dashboards_are_linked_from_the_admin_index_for_marketers(client, staff, db):
    client.force_login(staff("Marketer"))
    url = reverse("admin:insights_dashboard")
    assert f'href="{url}"' in client.get(reverse("admin:index")).content.decode()
    changelist = client.get(reverse("admin:insights_profileinsight_changelist"))
    assert f'href="{url}"' in changelist.content.decode()
    client.force_login(staff("Data Engineer"))
    assert f'href="{url}"' not in client.get(reverse("admin:index")).content.decode()


def test_a_marketer_defines_a_custom_insight_in_the_admin(client, staff, db):
    from insights.models import CustomInsight

    client.force_login(staff("Marketer"))
    url = reverse("admin:insights_custominsight_add")
    form = {
        "name": "Shoe views",
        "key": "shoe_views",
        "aggregate": "sum",
        "event_name": "Viewed",
        "property": "",
        "window_days": "30",
        "is_active": "on",
        "filters-TOTAL_FORMS": "1",
        "filters-INITIAL_FORMS": "0",
        "filters-0-property": "price",
        "filters-0-operator": "greater",
        "filters-0-value": "lots",
    }
    response = client.post(url, form)
    assert response.status_code == 200  # re-shown with errors, nothing saved
    errors = str(response.context["adminform"].form.errors) + str(
        response.context["inline_admin_formsets"][0].formset.errors
    )
    assert "Sum, average, minimum and maximum need a property." in errors
    assert "A number is needed for this operator." in errors
    form.update({"property": "price", "filters-0-value": "100"})
    assert client.post(url, form).status_code == 302
    insight = CustomInsight.objects.get(key="shoe_views")
    assert [(f.property, f.operator, f.value) for f in insight.filters.all()] == [
        ("price", "greater", "100")
    ]


def test_profile_360_without_consent_segments_or_loyalty_says_so(client, admin_user, merged_person):
    """A fresh install: no consent record, segment or loyalty program exists yet."""
    client.force_login(admin_user)
    response = client.get(reverse("admin:insights_profile_360", args=[merged_person.pk]))
    assert response.status_code == 200
    assert response.context["view"].sections == {"consent": [], "segments": [], "loyalty": []}
    content = response.content.decode()
    assert '<td colspan="6">No consent recorded.</td>' in content
    assert "<li>In no segment.</li>" in content
    assert '<td colspan="5">Not a member of any loyalty program.</td>' in content


def test_profile_360_shows_the_loyalty_membership(client, staff, merged_person):
    """The 360 page shows loyalty_summary's cards."""
    program = make_program(name="Club <Gold>")
    loyalty_member_enrol(program=program, profile=merged_person, member_number="CL-7")
    client.force_login(staff("Marketer"))
    response = client.get(reverse("admin:insights_profile_360", args=[merged_person.pk]))
    (card,) = response.context["view"].sections["loyalty"]
    assert (card["program"], card["member_number"], card["tier"]) == ("Club <Gold>", "CL7", "Base")
    content = response.content.decode()
    assert "<td>Club &lt;Gold&gt;</td><td>CL7</td><td>Base</td>" in content


def test_profile_360_query_budget_segments_and_consent(
    client, admin_user, merged_person, django_assert_max_num_queries
):
    """A fixed number of queries (13: consent, segments and loyalty take one each), whatever
    the number of rows."""
    for name in ("Repeat buyers", "Mug <fans>"):
        segment = Segment.objects.create(name=name)
        SegmentMembership.objects.create(segment=segment, profile=merged_person)
    now = timezone.now()
    for days_ago, purpose, status in (
        (3, "email_marketing", "granted"),
        (1, "email_marketing", "withdrawn"),
        (2, "analytics", "granted"),
    ):
        consent_record(
            profile=merged_person,
            purpose=purpose,
            channel="email",
            status=status,
            source="form",
            captured_at=now - timedelta(days=days_ago),
        )
    insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    client.force_login(admin_user)
    url = reverse("admin:insights_profile_360", args=[merged_person.pk])
    with django_assert_max_num_queries(13):
        response = client.get(url)
    content = response.content.decode()
    sections = response.context["view"].sections
    assert [str(m.segment) for m in sections["segments"]] == ["Mug <fans>", "Repeat buyers"]
    assert "Mug &lt;fans&gt; (since" in content
    rows = [(r.purpose.key, r.status, r.is_current) for r in sections["consent"]]
    assert rows == [
        ("email_marketing", "withdrawn", True),
        ("analytics", "granted", True),
        ("email_marketing", "granted", False),
    ]


def test_segments_consent_and_privacy_dashboards_with_empty_tables(client, staff, merged_person):
    """A fresh install: no segment refresh, consent record or request yet. The dashboards draw
    their charts without data and count zero open requests, with no note about a missing app."""
    insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    client.force_login(staff("Marketer"))
    shown = {}
    for slug in ("segments", "consent", "privacy"):
        response = client.get(reverse("admin:insights_dashboard", args=[slug]))
        assert response.status_code == 200, slug
        board = response.context["board"]
        assert board.notes == [], slug
        shown[slug] = (
            board.tiles,
            [
                (fig["layout"]["title"]["text"], fig["data"])
                for _, _, fig in response.context["charts"]
            ],
        )
    segments_line = shown["segments"][1][0]
    assert shown["segments"][0] == [("Segments with history", "0")]
    assert segments_line[0] == "Segment sizes (last 90 days, 10 largest)"
    assert list(segments_line[1]) == []
    assert shown["consent"][0] == [("Purposes", "0")]
    assert [title for title, _ in shown["consent"][1]] == [
        "Opt-in rate by purpose (%)",
        "Current consent by purpose",
    ]
    opt_in = shown["consent"][1][0][1]
    assert [list(trace["x"]) for trace in opt_in] == [[]]
    assert shown["privacy"][0] == [("Open requests", "0"), ("Overdue", "0")]
    by_state, by_deadline = (data for _, data in shown["privacy"][1])
    assert [list(trace["x"]) for trace in by_state] == [[]]
    assert list(by_deadline[0]["x"]) == [
        "overdue",
        "due in 7 days",
        "due in 8-30 days",
        "due later",
    ]
    assert list(by_deadline[0]["y"]) == [0, 0, 0, 0]


def test_consent_dashboard_opt_in_rate_from_current_state(client, staff, merged_person):
    """Two people: ann granted then withdrew e-mail marketing, bob granted it: 50% opt-in."""
    bob = Profile.objects.create(first_name="Bob")
    now = timezone.now()
    for profile, days_ago, status in (
        (merged_person, 3, "granted"),
        (merged_person, 1, "withdrawn"),
        (bob, 2, "granted"),
    ):
        consent_record(
            profile=profile,
            purpose="email_marketing",
            channel="email",
            status=status,
            source="form",
            captured_at=now - timedelta(days=days_ago),
        )
    insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    client.force_login(staff("Marketer"))
    response = client.get(reverse("admin:insights_dashboard", args=["consent"]))
    (rate, current) = [fig for _, _, fig in response.context["charts"]]
    assert (list(rate["data"][0]["x"]), list(rate["data"][0]["y"])) == (
        ["E-mail marketing"],
        [50.0],
    )
    assert {t["name"]: list(t["y"]) for t in current["data"]} == {
        "granted": [1.0],
        "withdrawn": [1.0],
    }


@pytest.mark.parametrize(
    "role, shown, hidden",
    [
        (
            "Marketer",
            ["events", "segments", "loyalty"],
            ["identities", "source_records", "consent"],
        ),
        ("Data Steward", ["identities", "source_records", "events", "loyalty"], ["consent"]),
        ("Privacy Officer", ["identities", "source_records", "events", "consent"], ["segments"]),
    ],
)
def test_profile_360_shows_each_part_only_to_roles_that_may_view_its_rows(
    client, staff, merged_person, role, shown, hidden
):
    """The 360 page is no back door: a part is shown when the role may view its admin list."""
    consent_record(
        profile=merged_person,
        purpose="email_marketing",
        channel="email",
        status="granted",
        source="form",
    )
    client.force_login(staff(role))
    response = client.get(reverse("admin:insights_profile_360", args=[merged_person.pk]))
    assert response.status_code == 200
    view = response.context["view"]
    parts = {
        "identities": view.identities,
        "source_records": view.source_records,
        "events": view.events,
        **view.sections,
    }
    assert [p for p in shown if parts[p] is None] == []
    assert [p for p in hidden if parts[p] is not None] == []
    content = response.content.decode()
    assert content.count("Not shown to your role.") == len([p for p in parts if parts[p] is None])
    anonymous_id = merged_person.identities.get(type="anonymous_id").raw_value
    assert (f"<td>{anonymous_id}</td>" in content) == ("identities" in shown)


@pytest.mark.parametrize(
    "next_url, expected",
    [
        ("/admin/insights/profileinsight/dashboards/value/",) * 2,
        ("https://evil.example/phish", None),
        ("//evil.example/phish", None),
    ],
)
def test_dashboard_refresh_redirects_only_inside_the_site(client, staff, next_url, expected):
    client.force_login(staff("Marketer"))
    response = client.post(reverse("admin:insights_dashboard_refresh"), {"next": next_url})
    assert response.status_code == 302
    assert response["Location"] == (expected or reverse("admin:insights_dashboard"))
