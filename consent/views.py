"""The public privacy request page a company links from its privacy notice."""

from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from consent.forms import PublicRequestForm
from consent.models import DataSubjectRequest
from consent.services.requests import (
    RequestError,
    request_create,
    request_verify_code,
    request_verify_token,
)


@require_http_methods(["GET", "POST"])
def request_page(request: HttpRequest) -> TemplateResponse:
    form = PublicRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dsr = request_create(
                type=data["type"],
                regime=data["regime"],
                requester_email=data["email"],
                requester_name=data["name"],
                details=data["details"],
                intake=DataSubjectRequest.Intake.PUBLIC_PAGE,
                verify="email",
                base_url=request.build_absolute_uri("/"),
            )
        except RequestError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("privacy_request_verify", public_id=dsr.public_id)
    return TemplateResponse(request, "consent/request_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
def request_verify_page(request: HttpRequest, public_id) -> TemplateResponse:
    error, verified = "", False
    if request.method == "POST":
        try:
            request_verify_code(public_id=public_id, code=request.POST.get("code", ""))
            verified = True
        except RequestError as exc:
            error = str(exc)
    return TemplateResponse(
        request,
        "consent/request_verify.html",
        {"public_id": public_id, "error": error, "verified": verified},
    )


def request_verify_link(request: HttpRequest, token: str) -> TemplateResponse:
    try:
        request_verify_token(token=token)
    except RequestError as exc:
        return TemplateResponse(
            request,
            "consent/request_verify.html",
            {"error": str(exc), "verified": False},
            status=400,
        )
    return TemplateResponse(request, "consent/request_verify.html", {"verified": True})
