"""Privacy APIs: consent (token auth) and the public data-subject request intake.

Errors are JSON with ``code`` and ``message`` (cdp.api).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers, status
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
    throttle_classes,
)
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from cdp.api import ApiError
from cdp.normalize import InvalidValue
from consent.gpc import gpc_evidence
from consent.models import ConsentSource, DataSubjectRequest, LawfulBasis, Regime, RequestType
from consent.selectors import consent_history, consent_state
from consent.services.consent import (
    ConsentError,
    consent_decision_check,
    consent_gpc_record,
    consent_record,
    consent_subject_ensure,
)
from consent.services.requests import RequestError, request_create, request_verify_code
from profiles.selectors import profile_lookup


class ConsentPermission(BasePermission):
    message = "You do not have permission to read or record consent."

    def has_permission(self, request, view) -> bool:
        perm = (
            "consent.view_consentrecord" if request.method == "GET" else "consent.add_consentrecord"
        )
        return bool(request.user and request.user.has_perm(perm))


class ConsentInSerializer(serializers.Serializer):
    email = serializers.CharField(required=False, allow_blank=True, max_length=320)
    user_id = serializers.CharField(required=False, allow_blank=True, max_length=200)
    purpose = serializers.CharField(max_length=50)
    channel = serializers.CharField(max_length=50, default="all")
    status = serializers.ChoiceField(choices=["granted", "denied", "withdrawn"])
    lawful_basis = serializers.ChoiceField(choices=LawfulBasis.values, default=LawfulBasis.CONSENT)
    source = serializers.ChoiceField(choices=[ConsentSource.API, ConsentSource.FORM], default="api")
    captured_at = serializers.DateTimeField(required=False)
    form_version = serializers.CharField(required=False, max_length=100, allow_blank=True)


def _identifier(data) -> tuple[str, str]:
    email = (data.get("email") or "").strip()
    user_id = (data.get("user_id") or "").strip()
    if bool(email) == bool(user_id):
        raise ApiError("missing_identifier", "Give exactly one of email or user_id.")
    return ("email", email) if email else ("user_id", user_id)


def _history(profile_id: int) -> list[dict]:
    return [
        {
            "id": r.pk,
            "purpose": r.purpose.key,
            "channel": r.channel.key,
            "status": r.status,
            "lawful_basis": r.lawful_basis,
            "source": r.source,
            "captured_at": r.captured_at.isoformat(),
            "conflict": r.conflict,
        }
        for r in consent_history(profile_ids=[profile_id])
    ]


def _evidence(request: Request, extra: dict | None = None) -> dict:
    return {
        "ip": request.META.get("REMOTE_ADDR", ""),
        "user_agent": request.headers.get("User-Agent", "")[:300],
        **(extra or {}),
    }


@api_view(["GET", "POST"])
@permission_classes([ConsentPermission])
def consent_view(request: Request) -> Response:
    """GET ?email= or ?user_id=: current state and history. POST: record a decision."""
    gpc = gpc_evidence(request)
    if request.method == "GET":
        id_type, value = _identifier(request.query_params)
        profile = profile_lookup(id_type=id_type, value=value)
        if profile is None:
            raise ApiError("not_found", "No profile has this identifier.", 404)
        if gpc is not None:
            consent_gpc_record(profile_ids=[profile.pk], evidence=gpc)
        return Response(
            {
                "profile_id": profile.pk,
                "consent": consent_state(profile_id=profile.pk),
                "history": _history(profile.pk),
            }
        )
    serializer = ConsentInSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    id_type, value = _identifier(data)
    try:  # the whole decision is checked before a profile may be created for it
        consent_decision_check(
            purpose=data["purpose"],
            channel=data["channel"],
            status=data["status"],
            source=data["source"],
            lawful_basis=data["lawful_basis"],
            captured_at=data.get("captured_at"),
        )
    except ConsentError as exc:
        raise ApiError("invalid_consent", str(exc)) from None
    try:
        profile = consent_subject_ensure(id_type=id_type, value=value)
    except (InvalidValue, ConsentError) as exc:
        raise ApiError("invalid_identifier", f"{id_type}: {exc}") from None
    if profile is None:  # an erased person: accepted, dropped, counted
        return Response({"accepted": True, "recorded": False}, status=status.HTTP_200_OK)
    extra = {"form_version": data["form_version"]} if data.get("form_version") else {}
    try:
        record = consent_record(
            profile=profile,
            purpose=data["purpose"],
            channel=data["channel"],
            status=data["status"],
            source=data["source"],
            lawful_basis=data["lawful_basis"],
            captured_at=data.get("captured_at"),
            evidence=_evidence(request, extra),
            recorded_by=request.user,
        )
    except ConsentError as exc:
        raise ApiError("invalid_consent", str(exc)) from None
    if gpc is not None:
        consent_gpc_record(profile_ids=[profile.pk], evidence=gpc)
    return Response(
        {
            "accepted": True,
            "recorded": True,
            "profile_id": profile.pk,
            "record": record.pk,
            "consent": consent_state(profile_id=profile.pk),
        },
        status=status.HTTP_201_CREATED,
    )


class PublicRequestThrottle(AnonRateThrottle):
    rate = "30/hour"


class PublicRequestSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=RequestType.values)
    regime = serializers.ChoiceField(choices=Regime.values)
    email = serializers.EmailField(max_length=320)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    details = serializers.CharField(required=False, allow_blank=True, max_length=5000)


@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([PublicRequestThrottle])
def public_request_create_view(request: Request) -> Response:
    """Anyone may file a request; it is verified by e-mail before anything happens."""
    serializer = PublicRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    try:
        dsr = request_create(
            type=data["type"],
            regime=data["regime"],
            requester_email=data["email"],
            requester_name=data.get("name", ""),
            details=data.get("details", ""),
            intake=DataSubjectRequest.Intake.API,
            verify="email",
            base_url=settings.CDP_PUBLIC_BASE_URL,
        )
    except RequestError as exc:
        raise ApiError("invalid_request", str(exc)) from None
    return Response(
        {"reference": str(dsr.public_id), "status": dsr.status, "due_date": dsr.due_date},
        status=status.HTTP_201_CREATED,
    )


@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([PublicRequestThrottle])
def public_request_verify_view(request: Request, public_id) -> Response:
    code = request.data.get("code") if isinstance(request.data, dict) else None
    if not isinstance(code, str) or not code.strip():
        raise ApiError("missing_code", "code is required.")
    try:
        dsr = request_verify_code(public_id=public_id, code=code)
    except RequestError as exc:
        raise ApiError("verification_failed", str(exc)) from None
    return Response({"reference": str(dsr.public_id), "status": dsr.status})
