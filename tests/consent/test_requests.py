"""Requests: intake, verification by link and code, duplicates, the state machine, deadlines."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from django.core import mail

from consent.models import DataSubjectRequest, RequestEvent
from consent.services.requests import (
    RequestError,
    request_create,
    request_extend,
    request_reject,
    request_transition,
    request_verify_code,
    request_verify_token,
)


def link_and_code(message) -> tuple[str, str]:
    token = re.search(r"/privacy/verify/([^/\s]+)/", message.body).group(1)
    code = re.search(r"code on the request page: (\d{6})", message.body).group(1)
    return token, code


def test_email_verification_by_code(make_request, officer):
    request = make_request(verify="email", requester_email="ann@example.com")
    assert request.status == "verifying"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ann@example.com"]
    _token, code = link_and_code(mail.outbox[0])
    assert code not in (request.verification_code_hash + request.verification_token_hash)

    with pytest.raises(RequestError, match="not correct"):
        request_verify_code(public_id=request.public_id, code="000000" if code != "000000" else "1")
    verified = request_verify_code(public_id=request.public_id, code=code)
    assert (verified.status, verified.verification_method) == ("verified", "e-mail code")
    assert verified.acknowledged_at is not None


def test_email_verification_by_link_is_one_time(make_request):
    request = make_request(verify="email")
    token, _code = link_and_code(mail.outbox[0])
    verified = request_verify_token(token=token)
    assert (verified.pk, verified.status) == (request.pk, "verified")
    with pytest.raises(RequestError, match="not valid or was already used"):
        request_verify_token(token=token)


def test_five_wrong_codes_end_verification(make_request):
    request = make_request(verify="email")
    _token, code = link_and_code(mail.outbox[0])
    wrong = "111111" if code != "111111" else "222222"
    for _ in range(5):
        with pytest.raises(RequestError):
            request_verify_code(public_id=request.public_id, code=wrong)
    with pytest.raises(RequestError, match="Too many"):
        request_verify_code(public_id=request.public_id, code=code)
    assert DataSubjectRequest.objects.get().status == "verifying"


def test_a_duplicate_of_an_open_request_is_linked(make_request):
    first = make_request(requester_email="Ann@Example.com")
    second = make_request(requester_email="ann@example.com ")
    other_type = make_request(requester_email="ann@example.com", type="erasure")
    assert second.duplicate_of == first
    assert other_type.duplicate_of is None
    assert "duplicate of DSR-" in second.events.get(action="received").note


def test_guarded_transitions_and_the_audit_trail(make_request, officer):
    request = make_request()
    with pytest.raises(RequestError, match="cannot become completed"):
        request_transition(request=request, to="completed", actor=officer)
    request_reject(request=request, actor=officer, reason="not a customer of ours")
    with pytest.raises(RequestError):
        request_reject(request=request, actor=officer, reason="again")  # double click
    request.refresh_from_db()
    assert (request.status, request.rejection_reason) == ("rejected", "not a customer of ours")
    trail = list(
        RequestEvent.objects.filter(request=request).values_list("action", "actor__username")
    )
    assert trail == [("received", "olga"), ("verified", "olga"), ("rejected", "olga")]


def test_rejection_needs_a_reason(make_request, officer):
    with pytest.raises(RequestError, match="reason"):
        request_reject(request=make_request(), actor=officer, reason=" ")


def test_deadlines_are_set_at_intake(make_request):
    received = datetime(2026, 5, 1, 9, tzinfo=UTC)
    gdpr = make_request(received_at=received)
    ccpa = make_request(regime="ccpa", type="erasure", received_at=received)
    opt_out = make_request(regime="ccpa", type="objection", received_at=received)
    assert (gdpr.due_date, gdpr.acknowledge_by) == (date(2026, 6, 1), None)
    assert (ccpa.due_date, ccpa.acknowledge_by) == (date(2026, 6, 15), date(2026, 5, 15))
    assert opt_out.due_date == date(2026, 5, 22)


def test_extension_moves_the_deadline_once(make_request, officer):
    request = make_request(received_at=datetime(2026, 3, 10, 9, tzinfo=UTC))
    request_extend(request=request, actor=officer, reason="many systems", today=date(2026, 4, 1))
    request.refresh_from_db()
    assert (request.status, request.due_date) == ("extended", date(2026, 6, 10))
    assert request.extension_reason == "many systems"
    with pytest.raises(RequestError, match="already been extended"):
        request_extend(request=request, actor=officer, reason="again", today=date(2026, 4, 2))


def test_extension_after_the_first_month_is_refused(make_request, officer):
    request = make_request(received_at=datetime(2026, 3, 10, 9, tzinfo=UTC))
    with pytest.raises(RequestError, match="within the first month"):
        request_extend(request=request, actor=officer, reason="late", today=date(2026, 4, 11))
    assert DataSubjectRequest.objects.get().status == "verified"


def test_invalid_email_is_a_clear_error(db):
    with pytest.raises(RequestError, match="not valid"):
        request_create(type="access", regime="gdpr", requester_email="nobody", verify="email")
    assert DataSubjectRequest.objects.count() == 0


@pytest.mark.parametrize("terminal", ["completed", "rejected"])
def test_closed_requests_cannot_move(make_request, officer, terminal):
    request = make_request()
    DataSubjectRequest.objects.filter(pk=request.pk).update(status=terminal)
    for to in ("received", "verifying", "verified", "in_progress", "extended", "completed"):
        with pytest.raises(RequestError, match="cannot become"):
            request_transition(request=request, to=to, actor=officer)
    assert DataSubjectRequest.objects.get().status == terminal
    assert request.events.count() == 2  # received, verified: nothing was added


def test_an_unverified_request_cannot_start_or_be_extended(make_request, officer):
    request = make_request(verify="email")
    with pytest.raises(RequestError, match="cannot become in progress"):
        request_transition(request=request, to="in_progress", actor=officer)
    with pytest.raises(RequestError, match="cannot become extended"):
        request_extend(request=request, actor=officer, reason="busy")
    request_reject(request=request, actor=officer, reason="never confirmed")
    trail = list(request.events.values_list("action", "from_status", "to_status", "note"))
    assert trail == [
        ("received", "", "received", ""),
        ("verification_sent", "received", "verifying", ""),
        ("rejected", "verifying", "rejected", "never confirmed"),
    ]
