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
