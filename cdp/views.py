"""Error pages: JSON for the APIs (/api/, /v1/), Django's defaults elsewhere.

404 and 405 under the APIs are made JSON by the ``cdp.api.api_json_errors`` middleware (which
also sees Django's DEBUG pages); a 500 by ``handler500`` here.
"""

from pathlib import Path

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from cdp.api import is_api_path


def server_error(request):
    if is_api_path(request.path):
        return JsonResponse(
            {"code": "server_error", "message": "An unexpected error; it has been logged."},
            status=500,
        )
    return defaults.server_error(request)


@require_safe
@cache_control(max_age=86400, public=True)
def favicon(request):
    """Browsers ask for /favicon.ico on every page; answer with the product's icon (SVG)."""
    icon = Path(settings.BASE_DIR) / "static" / "cdp" / "favicon.svg"
    return HttpResponse(icon.read_bytes(), content_type="image/svg+xml")
