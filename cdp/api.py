"""API conventions: every error is JSON with a machine-readable ``code`` and a ``message``."""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """An error a client can fix, raised by API views with its own code."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, code: str, message: str, status_code: int = 400):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code


def exception_handler(exc, context):
    """DRF's handler, with the body reshaped to {"code": ..., "message": ...}."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "error_code", None)
    if code is None:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "invalid"
    detail = response.data
    if isinstance(detail, dict) and "detail" in detail:
        message = str(detail["detail"])
        errors = None
    else:
        message = "The request is not valid."
        errors = detail
    body = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return Response(body, status=response.status_code, headers=response.headers)


def json_error(code: str, message: str, status: int) -> JsonResponse:
    """The same error shape for plain Django views (the tracking API)."""
    return JsonResponse({"code": code, "message": message}, status=status)


def is_api_path(path: str) -> bool:
    """The REST API (/api/) and the tracking API (/v1/) answer errors in JSON."""
    return path.startswith(("/api/", "/v1/"))


def api_json_errors(get_response):
    """Middleware: a 404 or 405 under the APIs that is not JSON already becomes JSON.

    A path no URL matches (an unknown endpoint, or an id its converter refuses, like
    /api/profiles/abc) gets Django's 404 page, and with DEBUG on its HTML debug page, whatever
    ``handler404`` says; a plain view's 405 has no body. Outermost, so it sees every response.
    """

    def middleware(request):
        response = get_response(request)
        if (
            response.status_code not in (404, 405)
            or not is_api_path(request.path)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        if response.status_code == 404:
            return json_error("not_found", "No such endpoint.", 404)
        allowed = response.get("Allow", "")
        converted = json_error(
            "method_not_allowed", f"{request.method} is not allowed here; use {allowed}.", 405
        )
        converted["Allow"] = allowed
        return converted

    return middleware
