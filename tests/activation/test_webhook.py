"""Webhook signing and retry rules, against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import hmac

from activation.webhook import post_batch, retry_after_seconds, sign, url_problem, verify


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"records":[]}'
    header = sign("s3cret", 1767225600, body)
    expected = hmac.new(b"s3cret", b"1767225600." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1767225600,v1={expected}"
    assert verify("s3cret", header, body, now=1767225600 + 10)
    assert not verify("s3cret", header, body + b" ", now=1767225600)
    assert not verify("s3cret", header, body, now=1767225600 + 3600)  # replayed later


def test_429_with_retry_after_is_honoured_then_delivered(receiver):
    receiver.script = [(429, {"Retry-After": "7"}), (503, {})]
    waits: list[float] = []
    result = post_batch(
        url=receiver.url,
        body=b"{}",
        secret="k",
        idempotency_key="run-0",
        timeout=5,
        max_attempts=4,
        backoff=0.5,
        sleep=waits.append,
    )
    assert (result.ok, result.attempts, result.status) == (True, 3, 200)
    assert waits == [7.0, 1.0]  # Retry-After, then backoff 0.5 * 2**1


def test_backoff_doubles_and_is_capped(receiver):
    receiver.script = [(500, {})] * 4
    waits: list[float] = []
    result = post_batch(
        url=receiver.url,
        body=b"{}",
        secret="k",
        idempotency_key="run-0",
        timeout=5,
        max_attempts=4,
        backoff=100,
        sleep=waits.append,
    )
    assert (result.ok, result.attempts, result.status) == (False, 4, 500)
    assert waits == [100, 200, 300]  # capped at MAX_DELAY
    assert result.error == "HTTP 500 Internal Server Error"


def test_connection_refused_is_retried_and_reported():
    waits: list[float] = []
    result = post_batch(
        url="http://127.0.0.1:9/hook",
        body=b"{}",
        secret="k",
        idempotency_key="x",
        timeout=1,
        max_attempts=2,
        backoff=0.1,
        sleep=waits.append,
    )
    assert (result.ok, result.attempts, result.status) == (False, 2, None)
    assert waits == [0.1]
    assert "refused" in result.error.lower()


def test_retry_after_http_date_and_garbage():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480) == 10.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("") is None


def test_url_rules():
    assert url_problem("https://crm.example.com/hook") == ""
    assert url_problem("http://127.0.0.1:8080/hook") == ""
    assert url_problem("http://localhost/hook") == ""
    assert "https://" in url_problem("http://crm.example.com/hook")
    assert "https://" in url_problem("ftp://crm.example.com/hook")
