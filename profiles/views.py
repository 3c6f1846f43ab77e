"""The tracking API (Segment HTTP tracking spec): /v1/identify, /v1/track, ... and /v1/batch.

Success is exactly HTTP 200 {"success": true}. Errors are 400/401/405/413/415 with a JSON body
holding ``code`` and ``message``; nothing is ever answered with a 500 for bad input.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import logging
import zlib

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from cdp.api import json_error
from consent.gpc import gpc_evidence
from profiles.models import DataSource
from profiles.services.tracking import (
    MAX_DEPTH,
    json_depth,
    json_value_problem,
    tracking_messages_ingest,
)

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
# A message nests at most MAX_DEPTH levels (deeper: that message is rejected); a body nesting
# deeper than this cannot be kept verbatim safely (JSON encoders recurse) and is refused whole.
MAX_BODY_DEPTH = 4 * MAX_DEPTH


class RequestError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


GZIP_CODINGS = frozenset({"gzip", "x-gzip"})  # RFC 9110 8.4.1.3: x-gzip is gzip


def _content_codings(request: HttpRequest) -> list[str]:
    """The body's content codings to undo, last applied first; 415 for one not supported.

    Only gzip (and its alias x-gzip) is supported, as with Segment; ``identity`` is a no-op.
    A body in any other coding (br, deflate, ...) is refused rather than read as plain JSON.
    """
    header = request.headers.get("Content-Encoding", "")
    codings = [c.strip().lower() for c in header.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for coding in codings:
        if coding not in GZIP_CODINGS:
            raise RequestError(
                "unsupported_encoding",
                f"Content-Encoding {coding!r} is not supported; send the body as is or gzip it.",
                415,
            )
    return codings[::-1]


def _read_body(request: HttpRequest) -> tuple[dict, int]:
    """The JSON body (gunzipped when sent so) and its decompressed size in bytes."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise RequestError("batch_too_large", "The body is too large.") from None
    for _coding in _content_codings(request):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
                raw = handle.read(MAX_BATCH_BYTES + 1)
        except (OSError, EOFError, zlib.error):
            raise RequestError("invalid_gzip", "The body is not valid gzip.") from None
        if len(raw) > MAX_BATCH_BYTES:
            break  # over the limit already: a truncated inner layer must not read as bad gzip
    if len(raw) > MAX_BATCH_BYTES:
        raise RequestError(
            "batch_too_large", f"The decompressed body is over {MAX_BATCH_BYTES} bytes."
        )
    too_deep = RequestError(
        "invalid_json", f"The body nests objects and arrays deeper than {MAX_BODY_DEPTH} levels."
    )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("invalid_json", "The body is not valid JSON.") from None
    except RecursionError:
        raise too_deep from None
    if json_depth(body) > MAX_BODY_DEPTH:
        raise too_deep
    if not isinstance(body, dict):
        raise RequestError("invalid_json", "The body must be a JSON object.")
    return body, len(raw)


def _write_key(request: HttpRequest, body: dict) -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RequestError(
                "invalid_auth", "The Authorization header is malformed.", 401
            ) from None
        user = decoded.split(":", 1)[0]
        if user:
            return user
        # An empty Basic user (":") names no key: the body's writeKey may.
    key = body.get("writeKey")
    return key if isinstance(key, str) else ""


def _source_for(request: HttpRequest, body: dict) -> DataSource:
    key = _write_key(request, body)
    if not key:
        raise RequestError("missing_write_key", "No write key was sent.", 401)
    # A key no database can hold (e.g. an unpaired surrogate) is no key of any source.
    source = (
        DataSource.objects.filter(write_key=key, kind=DataSource.Kind.API).first()
        if json_value_problem(key) is None
        else None
    )
    if source is None:
        raise RequestError("invalid_write_key", "The write key is not known.", 401)
    return source


CORS_ALLOW_HEADERS = "Authorization, Content-Type, Content-Encoding, Sec-GPC"


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Let browser SDKs on allowed pages read the answer (CDP_TRACKING_CORS_ORIGINS)."""
    origin = request.headers.get("Origin")
    allowed = settings.CDP_TRACKING_CORS_ORIGINS
    if origin and "*" in allowed:
        response["Access-Control-Allow-Origin"] = "*"
    elif origin and origin in allowed:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


def _handle(request: HttpRequest, message_type: str | None) -> HttpResponse:
    if request.method == "OPTIONS":  # a browser's CORS preflight
        response = HttpResponse(status=204)
        response["Allow"] = "POST, OPTIONS"
        if "Access-Control-Allow-Origin" in _cors(request, response):
            response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            response["Access-Control-Max-Age"] = "86400"
        return response
    return _cors(request, _answer(request, message_type))


def _answer(request: HttpRequest, message_type: str | None) -> JsonResponse:
    if request.method != "POST":
        response = json_error("method_not_allowed", "Use POST.", 405)
        response["Allow"] = "POST, OPTIONS"
        return response
    try:
        body, size = _read_body(request)
        source = _source_for(request, body)
        if message_type is None:
            messages = body.get("batch")
            if not isinstance(messages, list):
                raise RequestError("invalid_batch", "batch must be a list of messages.")
            batch_level = {k: body[k] for k in ("context", "integrations", "sentAt") if k in body}
        else:
            message = {k: v for k, v in body.items() if k != "writeKey"}
            message.setdefault("type", message_type)
            if message["type"] != message_type:
                raise RequestError("invalid_type", f"This endpoint takes {message_type} messages.")
            messages, batch_level = [message], {}
        if message_type is not None and size > MAX_MESSAGE_BYTES:
            raise RequestError(
                "message_too_large",
                f"The message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}.",
            )
        # A body within the message limit cannot hold an oversized message: skip the check.
        for index, message in enumerate(messages if size > MAX_MESSAGE_BYTES else []):
            text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
            # An unpaired surrogate is measured, not refused here: its message is rejected later.
            length = len(text.encode("utf-8", "surrogatepass"))
            if length > MAX_MESSAGE_BYTES:
                raise RequestError(
                    "message_too_large",
                    f"Message {index} is {length} bytes; the limit is {MAX_MESSAGE_BYTES}.",
                )
    except RequestError as exc:
        return json_error(exc.code, exc.message, exc.status)
    result = tracking_messages_ingest(
        source=source, messages=messages, batch=batch_level, gpc=gpc_evidence(request)
    )
    if result["rejected"]:
        first = result["rejected"][0]
        return JsonResponse(
            {
                "code": "invalid_message",
                "message": f"{len(result['rejected'])} message(s) rejected; "
                f"message {first['index']}: {first['message']}",
                "rejected": result["rejected"],
            },
            status=400,
        )
    return JsonResponse({"success": True})


@csrf_exempt
def tracking_batch(request: HttpRequest) -> HttpResponse:
    return _handle(request, None)


def _single(message_type: str):
    @csrf_exempt
    def view(request: HttpRequest) -> HttpResponse:
        return _handle(request, message_type)

    view.__name__ = f"tracking_{message_type}"
    return view


tracking_identify = _single("identify")
tracking_track = _single("track")
tracking_page = _single("page")
tracking_screen = _single("screen")
tracking_group = _single("group")
tracking_alias = _single("alias")
