"""Global Privacy Control: reading the ``Sec-GPC`` header (https://privacycg.github.io/gpc-spec/)."""

from __future__ import annotations


def gpc_evidence(request) -> dict | None:
    """Evidence of a ``Sec-GPC: 1`` header, or None (``0``, absent or anything else)."""
    if request.headers.get("Sec-GPC", "").strip() != "1":
        return None
    return {
        "ip": request.META.get("REMOTE_ADDR", ""),
        "user_agent": request.headers.get("User-Agent", "")[:300],
        "path": request.path[:200],
    }
