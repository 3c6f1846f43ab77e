"""Error pages: JSON for the APIs (/api/, /v1/), Django's defaults elsewhere.

404 and 405 under the APIs are made JSON by the ``cdp.api.api_json_errors`` middleware (which
also sees Django's DEBUG pages); a 500 by ``handler500`` here.
"""

from django.http import JsonResponse
from django.views import defaults

from cdp.api import is_api_path


def server_error(request):
    if is_api_path(request.path):
        return JsonResponse(
            {"code": "server_error", "message": "An unexpected error; it has been logged."},
            status=500,
        )
    return defaults.server_error(request)
