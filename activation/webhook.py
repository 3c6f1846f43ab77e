"""Webhook delivery: signing, and POST with timeouts and retries. Pure HTTP, no ORM.

Signature (documented for receivers in docs/activation.md)::

    X-CDP-Timestamp: 1767225600
    X-CDP-Signature: t=1767225600,v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    Idempotency-Key: <run uuid>-<batch number>

Retries: 429, 5xx, timeouts and connection errors are retried with exponential backoff
(``backoff * 2**(try-1)``), waiting at least what ``Retry-After`` asks (seconds or an HTTP
date), each wait capped at ``MAX_DELAY``. Other 4xx answers are not retried.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-CDP-Signature"
TIMESTAMP_HEADER = "X-CDP-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_DELAY = 300.0
USER_AGENT = "cdp-activation/1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, tolerance: int = 300, now=None) -> bool:
    """What a receiver does: recompute the signature and check the timestamp is fresh."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    now = int(time.time()) if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str:
    """Why a webhook URL cannot be used, or "" when it can (HTTPS; plain HTTP only on loopback)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return ""
    if parts.scheme == "http" and is_loopback(url):
        return ""
    return "A webhook URL must use https:// (plain http is allowed only for localhost)."


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Delivery:
    ok: bool
    attempts: int
    status: int | None
    error: str


def _retryable(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


def post_batch(
    *,
    url: str,
    body: bytes,
    secret: str,
    idempotency_key: str,
    timeout: float,
    max_attempts: int,
    backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``body`` until a 2xx, a non-retryable answer, or ``max_attempts`` tries."""
    problem = url_problem(url)
    if problem:
        return Delivery(False, 0, None, problem)
    status: int | None = None
    error = ""
    for attempt in range(1, max(1, max_attempts) + 1):
        timestamp = int(time.time())
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(secret, timestamp, body),
                IDEMPOTENCY_HEADER: idempotency_key,
            },
        )
        retry_after = None
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                status = response.status
                response.read(1024)
            return Delivery(True, attempt, status, "")
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = f"HTTP {exc.code} {exc.reason}"
            retry_after = retry_after_seconds(exc.headers.get("Retry-After"))
            exc.close()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            status = None
            reason = getattr(exc, "reason", exc)
            error = f"{exc.__class__.__name__}: {reason}"
        if not _retryable(status) or attempt == max_attempts:
            break
        delay = backoff * 2 ** (attempt - 1)
        if retry_after is not None:
            delay = max(delay, retry_after)
        sleep(min(delay, MAX_DELAY))
    return Delivery(False, attempt, status, error)
