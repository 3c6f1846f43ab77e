"""Data-subject requests: intake, verification, the guarded state machine, and the rights.

Every state change is one function, in one transaction, guarded by a conditional UPDATE (so a
double click changes nothing twice), leaving a RequestEvent and an audit row.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from cdp.audit import audit_record
from cdp.jobs import job_enqueue
from cdp.normalize import InvalidValue, normalize_email
from consent.deadlines import DeadlineError, extended_due, request_deadlines
from consent.hashing import identifier_hash, secret_hash
from consent.models import (
    OPEN_STATUSES,
    DataSubjectRequest,
    RequestEvent,
    RequestRun,
    RequestStatus,
    RequestType,
)

S = RequestStatus

TRANSITIONS: dict[str, set[str]] = {
    S.RECEIVED: {S.VERIFYING, S.VERIFIED, S.REJECTED},
    S.VERIFYING: {S.VERIFYING, S.VERIFIED, S.REJECTED},
    S.VERIFIED: {S.IN_PROGRESS, S.EXTENDED, S.REJECTED},
    S.IN_PROGRESS: {S.EXTENDED, S.COMPLETED, S.REJECTED},
    S.EXTENDED: {S.IN_PROGRESS, S.COMPLETED, S.REJECTED},
    S.COMPLETED: set(),
    S.REJECTED: set(),
}
JOB_TYPES = {
    RequestType.ACCESS: RequestRun.Kind.EXPORT,
    RequestType.PORTABILITY: RequestRun.Kind.EXPORT,
    RequestType.ERASURE: RequestRun.Kind.ERASURE,
}
VERIFICATION_TTL = timedelta(hours=72)
MAX_CODE_ATTEMPTS = 5


class RequestError(ValueError):
    """A step that is not allowed now; the message tells the privacy officer or person why."""


def holidays() -> set[date]:
    return {date.fromisoformat(d) for d in getattr(settings, "CDP_PRIVACY_HOLIDAYS", [])}


def local_date(moment: datetime) -> date:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(settings.CDP_TIME_ZONE)).date()


def _event(request, actor, action, from_status="", to_status="", note="") -> None:
    RequestEvent.objects.create(
        request=request,
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        from_status=from_status,
        to_status=to_status,
        note=note,
    )
    audit_record(
        actor=actor,
        action=f"dsr.{action}",
        target=request,
        details={"from": from_status, "to": to_status},
    )


@transaction.atomic
def request_transition(
    *, request: DataSubjectRequest, to: str, actor=None, note: str = "", action: str = "", **fields
) -> DataSubjectRequest:
    """Move the request to ``to`` if the state machine allows it from its stored state."""
    current = DataSubjectRequest.objects.filter(pk=request.pk).values_list("status", flat=True)
    current = current.first()
    if current is None or to not in TRANSITIONS.get(current, set()):
        raise RequestError(
            f"A request that is {S(current).label.lower() if current else 'gone'} cannot become "
            f"{S(to).label.lower()}."
        )
    updated = DataSubjectRequest.objects.filter(pk=request.pk, status=current).update(
        status=to, **fields
    )
    if not updated:
        raise RequestError("The request was changed by someone else; reload and try again.")
    _event(request, actor, action or to, current, to, note)
    request.refresh_from_db()
    return request


def request_create(
    *,
    type: str,
    regime: str,
    requester_email: str,
    requester_name: str = "",
    identifiers: list[dict] | None = None,
    details: str = "",
    corrections: dict | None = None,
    purpose_keys: list[str] | None = None,
    intake: str = DataSubjectRequest.Intake.ADMIN,
    received_at: datetime | None = None,
    created_by=None,
    verify: str = "email",
    verification_method: str = "",
    base_url: str = "",
) -> DataSubjectRequest:
    """Record a new request with its deadlines; link it to an open duplicate; start verification.

    ``verify`` is "email" (send a one-time link and code) or "officer" (the privacy officer
    verified the person another way, named in ``verification_method``).
    """
    if type not in RequestType.values:
        raise RequestError("Unknown request type.")
    try:
        email_key = normalize_email(requester_email)
    except InvalidValue as exc:
        raise RequestError(f"The e-mail address is not valid ({exc}).") from None
    received_at = received_at or timezone.now()
    deadlines = request_deadlines(
        regime=regime, request_type=type, received=local_date(received_at), holidays=holidays()
    )
    requester_hash = identifier_hash("email", email_key)
    with transaction.atomic():
        duplicate_of = (
            DataSubjectRequest.objects.filter(
                requester_hash=requester_hash, type=type, status__in=OPEN_STATUSES
            )
            .order_by("received_at", "id")
            .first()
        )
        request = DataSubjectRequest.objects.create(
            type=type,
            regime=regime,
            intake=intake,
            requester_email=requester_email.strip(),
            requester_name=requester_name.strip(),
            requester_hash=requester_hash,
            identifiers=identifiers or [],
            details=details,
            corrections=corrections or {},
            purpose_keys=purpose_keys or [],
            received_at=received_at,
            due_date=deadlines.due,
            acknowledge_by=deadlines.acknowledge_by,
            duplicate_of=duplicate_of,
            created_by=created_by if getattr(created_by, "pk", None) else None,
        )
        note = f"duplicate of DSR-{duplicate_of.pk}" if duplicate_of else ""
        _event(request, created_by, "received", "", S.RECEIVED, note)
    if verify == "officer":
        request_mark_verified(request=request, actor=created_by, method=verification_method)
    elif verify == "email":
        request_send_verification(request=request, actor=created_by, base_url=base_url)
    return request


def request_send_verification(
    *, request: DataSubjectRequest, actor=None, base_url: str = ""
) -> DataSubjectRequest:
    """Send a one-time link and code to the requester; only their hashes are stored."""
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(1_000_000):06d}"
    now = timezone.now()
    request = request_transition(
        request=request,
        to=S.VERIFYING,
        actor=actor,
        action="verification_sent",
        verification_token_hash=secret_hash(token),
        verification_code_hash=secret_hash(f"{request.public_id}:{code}"),
        verification_expires_at=now + VERIFICATION_TTL,
        verification_attempts=0,
        acknowledged_at=request.acknowledged_at or now,
    )
    base = (base_url or settings.CDP_PUBLIC_BASE_URL).rstrip("/")
    link = f"{base}/privacy/verify/{token}/"
    reference = str(request.public_id)
    recipient = request.requester_email
    body = (
        f"We received your privacy request (reference {reference}).\n\n"
        f"To confirm it is you, open this link within 72 hours:\n{link}\n\n"
        f"or enter this code on the request page: {code}\n\n"
        "If you did not make this request, ignore this message."
    )
    transaction.on_commit(
        lambda: send_mail(
            "Confirm your privacy request",
            body,
            settings.DEFAULT_FROM_EMAIL,
            [recipient],
        )
    )
    return request


def _verified(request: DataSubjectRequest, method: str) -> DataSubjectRequest:
    return request_transition(
        request=request,
        to=S.VERIFIED,
        action="verified",
        note=method,
        verified_at=timezone.now(),
        verification_method=method,
        verification_token_hash="",
        verification_code_hash="",
    )


def request_verify_token(*, token: str) -> DataSubjectRequest:
    """Verify by the one-time link."""
    if not token:
        raise RequestError("This link is not valid.")
    request = DataSubjectRequest.objects.filter(
        verification_token_hash=secret_hash(token), status=S.VERIFYING
    ).first()
    if request is None:
        raise RequestError("This link is not valid or was already used.")
    if request.verification_expires_at and request.verification_expires_at < timezone.now():
        raise RequestError("This link has expired; ask for a new one.")
    return _verified(request, "e-mail link")


def request_verify_code(*, public_id, code: str) -> DataSubjectRequest:
    """Verify by the code; five wrong tries end it."""
    request = DataSubjectRequest.objects.filter(public_id=public_id, status=S.VERIFYING).first()
    if request is None:
        raise RequestError("There is no request waiting for verification with this reference.")
    if request.verification_attempts >= MAX_CODE_ATTEMPTS:
        raise RequestError("Too many wrong codes; ask for a new one.")
    if request.verification_expires_at and request.verification_expires_at < timezone.now():
        raise RequestError("This code has expired; ask for a new one.")
    expected = request.verification_code_hash
    given = secret_hash(f"{request.public_id}:{(code or '').strip()}")
    if not expected or not secrets.compare_digest(expected, given):
        DataSubjectRequest.objects.filter(pk=request.pk).update(
            verification_attempts=F("verification_attempts") + 1
        )
        raise RequestError("The code is not correct.")
    return _verified(request, "e-mail code")


def request_mark_verified(*, request: DataSubjectRequest, actor, method: str) -> DataSubjectRequest:
    """The officer verified the person another way (and so has been in touch: acknowledged)."""
    if not method.strip():
        raise RequestError("Say how the person's identity was verified.")
    now = timezone.now()
    return request_transition(
        request=request,
        to=S.VERIFIED,
        actor=actor,
        action="verified",
        note=method,
        verified_at=now,
        verification_method=method.strip()[:100],
        acknowledged_at=request.acknowledged_at or now,
    )


def request_extend(*, request: DataSubjectRequest, actor, reason: str, today: date | None = None):
    """Extend the deadline once, within the first period, with a reason."""
    today = today or local_date(timezone.now())
    try:
        due = extended_due(
            regime=request.regime,
            request_type=request.type,
            received=local_date(request.received_at),
            today=today,
            already_extended=request.extended_at is not None,
            reason=reason,
            holidays=holidays(),
        )
    except DeadlineError as exc:
        raise RequestError(str(exc)) from None
    return request_transition(
        request=request,
        to=S.EXTENDED,
        actor=actor,
        action="extended",
        note=reason,
        due_date=due,
        extended_at=timezone.now(),
        extension_reason=reason.strip(),
    )


def request_reject(*, request: DataSubjectRequest, actor, reason: str) -> DataSubjectRequest:
    if not reason.strip():
        raise RequestError("A rejection needs a reason.")
    return request_transition(
        request=request,
        to=S.REJECTED,
        actor=actor,
        note=reason,
        rejection_reason=reason.strip(),
        completed_at=timezone.now(),
    )


def request_run(*, request: DataSubjectRequest, actor, sync: bool = False):
    """Carry out the request: queue the export or erasure job, or apply the right at once.

    Returns the RequestRun for access/portability/erasure, else the outcome dict.
    """
    from consent.services import rights

    request.refresh_from_db()
    if not request.is_verified:
        raise RequestError("Unverified requests are not actionable.")
    if request.status not in (S.VERIFIED, S.IN_PROGRESS, S.EXTENDED):
        raise RequestError("Only a verified, open request can be run.")
    kind = JOB_TYPES.get(request.type)
    with transaction.atomic():
        if request.status == S.VERIFIED:
            request_transition(request=request, to=S.IN_PROGRESS, actor=actor, action="started")
        if kind is not None:
            if RequestRun.objects.filter(
                request=request, status__in=[RequestRun.Status.QUEUED, RequestRun.Status.RUNNING]
            ).exists():
                raise RequestError("This request already has a job queued or running.")
            run = RequestRun.objects.create(request=request, kind=kind, created_by=actor)
            _event(request, actor, f"{kind}_queued", note=f"run {run.pk}")
            if not sync:
                job_enqueue("consent.tasks.request_run_execute", run.pk)
        else:
            outcome = rights.right_apply(request=request, actor=actor)
            DataSubjectRequest.objects.filter(pk=request.pk).update(outcome=outcome)
            _event(
                request, actor, "applied", note=", ".join(f"{k}={v}" for k, v in outcome.items())
            )
            return outcome
    if sync:
        job_enqueue("consent.tasks.request_run_execute", run.pk, sync=True)
    run.refresh_from_db()
    return run


def request_complete(*, request: DataSubjectRequest, actor, note: str = "") -> DataSubjectRequest:
    """Close a request whose work is done (a succeeded job, or the right applied)."""
    request.refresh_from_db()
    kind = JOB_TYPES.get(request.type)
    if kind is not None:
        if not request.runs.filter(kind=kind, status=RequestRun.Status.SUCCEEDED).exists():
            raise RequestError("Run the request and wait for its job to succeed first.")
    elif not request.outcome:
        raise RequestError("Run the request first.")
    fields = {"completed_at": timezone.now()}
    if request.type == RequestType.ERASURE:
        # The requester's contact details are personal data of the erased person: keep the hash.
        fields.update(
            requester_email=f"erased:{request.requester_hash}",
            requester_name="",
            identifiers=[],
            details="",
        )
    return request_transition(
        request=request, to=S.COMPLETED, actor=actor, action="completed", note=note, **fields
    )
