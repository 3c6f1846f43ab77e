"""The floor of /v1/batch on this stack: Django settings whose only URL stores a batch raw.

``bench_tracking.py --floor`` serves this instead of the product: gunicorn, Django's request
handling (no middleware), one write-key lookup, ``json.loads`` of the body, a type and
messageId check per message and one ``INSERT … ON CONFLICT DO NOTHING`` of the raw messages
(the same JSON-document insert the product uses). No identity work, no events, no
resolution: no implementation of the tracking spec on this stack can be cheaper, so its rate
is the ceiling the product's rate is measured against.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from cdp.settings import *  # noqa: F403 (the product's settings, with the changes below)

ROOT_URLCONF = "bench.tracking_floor"
MIDDLEWARE: list[str] = []


@csrf_exempt
def batch_raw(request: HttpRequest) -> JsonResponse:
    from cdp.bulk import bulk_insert_rows_json
    from profiles.models import DataSource, RawRecord
    from profiles.services.tracking import RAW_FIELDS

    source = DataSource.objects.get(write_key=request.user_key)  # type: ignore[attr-defined]
    received_at = timezone.now()
    rows = []
    for message in json.loads(request.body)["batch"]:
        if not isinstance(message, dict) or not message.get("type") or not message.get("messageId"):
            return JsonResponse({"code": "invalid", "message": "bad message"}, status=400)
        rows.append(
            (source.pk, message, "", str(message["messageId"]), "accepted", "", None, received_at)
        )
    bulk_insert_rows_json(RawRecord, RAW_FIELDS, rows, ignore_conflicts=True)
    return JsonResponse({"success": True})


def _with_key(view):
    import base64

    def wrapped(request: HttpRequest):
        header = request.headers.get("Authorization", "")
        request.user_key = base64.b64decode(header.split(" ", 1)[1]).decode().rstrip(":")
        return view(request)

    return csrf_exempt(wrapped)


urlpatterns = [path("v1/batch", _with_key(batch_raw))]
