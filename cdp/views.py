"""Error pages: JSON for the APIs (/api/, /v1/), Django's defaults elsewhere."""

from django.http import JsonResponse
from django.views import defaults


def _is_api(request) -> bool:
    return request.path.startswith(("/api/", "/v1/"))


def not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse({"code": "not_found", "message": "No such endpoint."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse(
            {"code": "server_error", "message": "An unexpected error; it has been logged."},
            status=500,
        )
    return defaults.server_error(request)
