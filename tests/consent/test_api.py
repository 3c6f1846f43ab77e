"""The consent API (DRF, token auth), GPC on it, and the public request page and API."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from rest_framework.authtoken.models import Token

from consent.models import ConsentRecord, DataSubjectRequest, Suppression
from consent.services.suppression import suppression_add
from profiles.models import Profile, SourceRecord


@pytest.fixture
def api(client, db):
    user = User.objects.create_user("website-backend")
    user.groups.add(Group.objects.get(name="Privacy Officer"))
    token = Token.objects.create(user=user)

    def call(method: str, path: str, body: dict | None = None, headers: dict | None = None):
        headers = {"Authorization": f"Token {token.key}", **(headers or {})}
        if method == "get":
            return client.get(path, body or {}, headers=headers)
        return client.post(path, body or {}, content_type="application/json", headers=headers)

    return call


def test_record_consent_for_a_new_person_creates_them_through_the_pipeline(api):
    response = api(
        "post",
        "/api/consent",
        {
            "email": " Ann@Example.com",
            "purpose": "email_marketing",
            "channel": "email",
            "status": "granted",
            "source": "form",
            "form_version": "signup-v3",
        },
        headers={"User-Agent": "Browser/1.0"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    profile = Profile.objects.get()
    assert body["profile_id"] == profile.pk
    assert profile.email == "ann@example.com"
    assert SourceRecord.objects.get().source.name == "Consent API"
    record = ConsentRecord.objects.get()
    assert (record.source, record.evidence["form_version"]) == ("form", "signup-v3")
    assert record.evidence["user_agent"] == "Browser/1.0"
    assert body["consent"][0]["status"] == "granted"

    read = api("get", "/api/consent", {"email": "ANN@example.com"})
    assert read.status_code == 200
    assert [(h["purpose"], h["status"]) for h in read.json()["history"]] == [
        ("email_marketing", "granted")
    ]


def test_consent_api_gpc_records_opt_out_of_sale(api):
    api("post", "/api/consent", {"user_id": "u-7", "purpose": "sale_sharing", "status": "granted"})
    response = api("get", "/api/consent", {"user_id": "u-7"}, headers={"Sec-GPC": "1"})
    assert response.status_code == 200
    gpc = ConsentRecord.objects.get(source="gpc")
    assert (gpc.status, gpc.conflict) == ("denied", True)
    again = api("get", "/api/consent", {"user_id": "u-7"}, headers={"Sec-GPC": "0"})
    states = {s["purpose"]: s["status"] for s in again.json()["consent"]}
    assert states["sale_sharing"] == "denied"
    assert ConsentRecord.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"purpose": "email_marketing", "status": "granted"}, "missing_identifier"),
        (
            {"email": "a@b.co", "user_id": "x", "purpose": "analytics", "status": "granted"},
            "missing_identifier",
        ),
        (
            {"email": "not-an-email", "purpose": "analytics", "status": "granted"},
            "invalid_identifier",
        ),
        (
            {"email": "a@example.com", "purpose": "astrology", "status": "granted"},
            "invalid_consent",
        ),
        ({"email": "a@example.com", "purpose": "analytics", "status": "maybe"}, "invalid"),
    ],
)
def test_consent_api_errors_are_json(api, body, code):
    response = api("post", "/api/consent", body)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert ConsentRecord.objects.count() == 0


def test_consent_api_needs_the_permission(client, db):
    user = User.objects.create_user("marketer")
    token = Token.objects.create(user=user)
    response = client.get(
        "/api/consent", {"email": "a@example.com"}, headers={"Authorization": f"Token {token.key}"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_consent_api_for_an_erased_person_is_accepted_and_dropped(api):
    suppression_add(keys=[("email", "gone@example.com")])
    response = api(
        "post",
        "/api/consent",
        {"email": "Gone@example.com", "purpose": "analytics", "status": "granted"},
    )
    assert (response.status_code, response.json()) == (200, {"accepted": True, "recorded": False})
    assert Profile.objects.count() == 0
    assert Suppression.objects.get().hits == 1


def test_public_request_api_and_code_verification(client, db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/privacy/requests",
            {"type": "erasure", "regime": "ccpa", "email": "ann@example.com", "name": "Ann"},
            content_type="application/json",
        )
    assert response.status_code == 201, response.content
    reference = response.json()["reference"]
    assert response.json()["status"] == "verifying"
    code = re.search(r"code on the request page: (\d{6})", mail.outbox[0].body).group(1)
    bad = client.post(
        f"/api/privacy/requests/{reference}/verify", {"code": "x"}, content_type="application/json"
    )
    assert (bad.status_code, bad.json()["code"]) == (400, "verification_failed")
    good = client.post(
        f"/api/privacy/requests/{reference}/verify", {"code": code}, content_type="application/json"
    )
    assert good.json() == {"reference": reference, "status": "verified"}
    dsr = DataSubjectRequest.objects.get()
    assert (dsr.intake, dsr.regime, dsr.type) == ("api", "ccpa", "erasure")


def test_public_request_api_rejects_bad_input_with_json(client, db):
    response = client.post(
        "/api/privacy/requests",
        {"type": "access", "regime": "mars", "email": "x"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert set(response.json()["errors"]) == {"regime", "email"}


def test_public_page_and_verification_link(client, db, django_capture_on_commit_callbacks):
    page = client.get("/privacy/request/")
    assert page.status_code == 200 and b"Make a privacy request" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/privacy/request/",
            {"type": "access", "regime": "gdpr", "email": "ann@example.com", "name": "<b>Ann</b>"},
        )
    dsr = DataSubjectRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/privacy/request/{dsr.public_id}/verify/"
    link = re.search(r"http://testserver(/privacy/verify/\S+/)", mail.outbox[0].body).group(1)
    verified = client.get(link)
    assert b"Your request is confirmed" in verified.content
    dsr.refresh_from_db()
    assert (dsr.status, dsr.intake, dsr.verification_method) == ("verified", "page", "e-mail link")
    assert client.get(link).status_code == 400


def test_a_decision_dated_in_the_future_is_refused_so_a_later_withdrawal_wins(api):
    base = {"email": "ghost@example.org", "purpose": "email_marketing", "channel": "email"}
    response = api(
        "post",
        "/api/consent",
        {**base, "status": "granted", "source": "api", "captured_at": "2100-01-01T00:00:00Z"},
    )
    assert response.status_code == 400
    assert response.json() == {"code": "invalid_consent", "message": "captured_at is in the future"}
    assert not Profile.objects.exists()
    api("post", "/api/consent", {**base, "status": "granted", "source": "api"})
    api("post", "/api/consent", {**base, "status": "withdrawn", "source": "api"})
    state = api("get", "/api/consent", {"email": "ghost@example.org"}).json()["consent"]
    assert [(s["purpose"], s["status"]) for s in state] == [("email_marketing", "withdrawn")]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"purpose": "no_such_purpose"}, "unknown purpose 'no_such_purpose'"),
        ({"channel": "carrier_pigeon"}, "unknown channel 'carrier_pigeon'"),
    ],
)
def test_a_rejected_decision_creates_no_profile(api, change, message):
    body = {
        "email": "ghost@example.org",
        "purpose": "email_marketing",
        "channel": "email",
        "status": "granted",
        "source": "api",
        **change,
    }
    response = api("post", "/api/consent", body)
    assert response.status_code == 400
    assert response.json() == {"code": "invalid_consent", "message": message}
    assert not Profile.objects.exists()
    assert not SourceRecord.objects.exists()
