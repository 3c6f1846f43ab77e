"""Privacy admin: the request list (unverified hidden), intake, processing page, dashboard,
download by the privacy officer only, consent records append-only."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from consent.models import ConsentRecord, DataSubjectRequest, RequestRun
from consent.services.requests import request_run


@pytest.fixture
def officer_client(client, officer):
    client.force_login(officer)
    return client


def test_changelist_hides_unverified_requests_by_default(
    officer_client, make_request, django_assert_max_num_queries
):
    verified = make_request(requester_email="a@example.com")
    unverified = make_request(requester_email="b@example.com", verify="email")
    for i in range(5):
        make_request(requester_email=f"more{i}@example.com")
    url = "/admin/consent/datasubjectrequest/"
    with django_assert_max_num_queries(12):
        page = officer_client.get(url)
    assert page.status_code == 200
    shown = {r.pk for r in page.context["cl"].result_list}
    assert verified.pk in shown and unverified.pk not in shown
    everything = officer_client.get(url + "?verification=all")
    assert unverified.pk in {r.pk for r in everything.context["cl"].result_list}
    only = officer_client.get(url + "?verification=unverified")
    assert [r.pk for r in only.context["cl"].result_list] == [unverified.pk]


def test_days_left_and_search_by_email(officer_client, make_request):
    request = make_request(received_at=timezone.now() - timedelta(days=40))
    page = officer_client.get("/admin/consent/datasubjectrequest/?q=LENA.VOGT@example.de")
    assert [r.pk for r in page.context["cl"].result_list] == [request.pk]
    assert b"overdue" in page.content


def test_admin_intake_creates_a_request_and_sends_verification(
    officer_client, db, django_capture_on_commit_callbacks
):
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        response = officer_client.post(
            "/admin/consent/datasubjectrequest/add/",
            {
                "type": "rectification",
                "regime": "gdpr",
                "requester_email": "ann@example.com",
                "requester_name": "Ann",
                "identifiers": "email: ann.old@example.com\nuser_id: 42",
                "corrections": '{"last_name": "Berg"}',
                "verify": "email",
            },
        )
    request = DataSubjectRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/consent/datasubjectrequest/{request.pk}/change/"
    assert request.identifiers == [
        {"type": "email", "value": "ann.old@example.com"},
        {"type": "user_id", "value": "42"},
    ]
    assert (request.status, request.corrections) == ("verifying", {"last_name": "Berg"})
    assert len(mail.outbox) == 1


def test_admin_intake_form_errors(officer_client, db):
    response = officer_client.post(
        "/admin/consent/datasubjectrequest/add/",
        {
            "type": "access",
            "regime": "gdpr",
            "requester_email": "a@example.com",
            "identifiers": "shoe size: 42",
            "verify": "officer",
        },
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "Line 1" in errors["identifiers"][0]
    assert "verified" in errors["verification_method"][0]
    assert DataSubjectRequest.objects.count() == 0


def test_process_page_escapes_personal_data_and_acts(officer_client, make_request):
    request = make_request(requester_name="<script>alert(1)</script>")
    url = f"/admin/consent/datasubjectrequest/{request.pk}/change/"
    page = officer_client.get(url)
    assert page.status_code == 200
    assert b"<script>alert(1)</script>" not in page.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content
    response = officer_client.post(url, {"action": "extend", "note": ""})
    assert response.status_code == 302
    follow = officer_client.get(url)
    assert b"needs a reason" in follow.content
    officer_client.post(url, {"action": "reject", "note": "identity not confirmed"})
    assert DataSubjectRequest.objects.get().status == "rejected"


def test_dashboard_counts_and_chart_data(officer_client, make_request):
    make_request(received_at=timezone.now() - timedelta(days=40))  # overdue
    make_request(type="erasure", regime="ccpa", received_at=timezone.now() - timedelta(days=40))
    make_request(type="objection", regime="ccpa", verify="email")  # due in 15 business days
    silent = make_request(
        regime="ccpa",
        verify="email",
        requester_email="x@example.com",
        received_at=timezone.now() - timedelta(days=20),
    )
    DataSubjectRequest.objects.filter(pk=silent.pk).update(acknowledged_at=None)
    page = officer_client.get("/admin/consent/datasubjectrequest/dashboard/")
    assert page.status_code == 200
    totals = page.context["data"]["totals"]
    assert (totals["open"], totals["overdue"], totals["unverified"]) == (4, 1, 2)
    assert totals["ack_overdue"] == 1
    assert totals["due_soon"] == 1  # the CCPA erasure: 45 days after receipt
    figure = page.context["figure"]
    by_regime = {trace["name"]: trace["y"] for trace in figure["data"]}
    assert by_regime["GDPR"][0] == 1 and by_regime["CCPA / CPRA"][2] == 1
    assert b'<script id="dsr-chart-data" type="application/json">' in page.content
    assert b"/static/vendor/plotly.min.js" in page.content


def test_only_the_privacy_officer_downloads_exports(client, officer, make_request, people):
    request = make_request()
    run = request_run(request=request, actor=officer, sync=True)
    url = f"/admin/consent/datasubjectrequest/runs/{run.pk}/download/"
    engineer = User.objects.create_user("dan", is_staff=True)
    engineer.groups.add(Group.objects.get(name="Data Engineer"))
    client.force_login(engineer)
    assert client.get(url).status_code == 403
    client.force_login(officer)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="dsr-{request.pk}-export.zip"'
    assert b"".join(response.streaming_content)[:2] == b"PK"
    assert RequestRun.objects.get().status == "succeeded"


def test_consent_records_cannot_be_changed_in_the_admin(officer_client, db):
    from profiles.models import Profile

    profile = Profile.objects.create()
    response = officer_client.post(
        "/admin/consent/consentrecord/add/",
        {
            "profile_id": profile.pk,
            "purpose": "analytics",
            "channel": "web",
            "status": "granted",
            "lawful_basis": "consent",
            "evidence_note": "paper form #12",
        },
    )
    assert response.status_code == 302
    record = ConsentRecord.objects.get()
    assert (record.source, record.evidence) == ("admin", {"note": "paper form #12"})
    change = officer_client.get(f"/admin/consent/consentrecord/{record.pk}/change/")
    assert b'name="status"' not in change.content
    assert (
        officer_client.post(
            f"/admin/consent/consentrecord/{record.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert json.loads(json.dumps(record.evidence))["note"] == "paper form #12"


def test_days_left_on_every_open_request(officer_client, make_request):
    from consent.selectors import workspace_today

    today = workspace_today()
    soon = make_request(requester_email="a@example.com")
    late = make_request(requester_email="b@example.com")
    closed = make_request(requester_email="c@example.com")
    DataSubjectRequest.objects.filter(pk=soon.pk).update(due_date=today + timedelta(days=12))
    DataSubjectRequest.objects.filter(pk=late.pk).update(due_date=today - timedelta(days=3))
    DataSubjectRequest.objects.filter(pk=closed.pk).update(
        due_date=today - timedelta(days=9), status="rejected", rejection_reason="duplicate"
    )
    page = officer_client.get("/admin/consent/datasubjectrequest/").content.decode()
    cells = re.findall(r'<td class="field-days_left_display">(.*?)</td>', page)
    assert sorted(cells) == sorted(["12", '<span class="cdp-flag">3 overdue</span>', "—"])
    detail = officer_client.get(f"/admin/consent/datasubjectrequest/{soon.pk}/change/")
    assert re.search(rb'id="dsr-days-left">12<', detail.content)
    overdue = officer_client.get(f"/admin/consent/datasubjectrequest/{late.pk}/change/")
    assert re.search(rb'id="dsr-days-left">-3<', overdue.content)
