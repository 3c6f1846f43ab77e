"""Log filters: personal data stays out of the server's logs."""

from __future__ import annotations

import logging
import re

_QUERY_RE = re.compile(r"\?[^\s\"]*")


class QueryStringRedacted(logging.Filter):
    """Drop the query string from logged request lines.

    Lookups and admin searches carry identifiers there (``?type=email&value=lena@…``,
    ``?q=+49 30…``); the development server's request log would print them in plain text.
    The path stays, so a log still says which page or endpoint was asked for.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _QUERY_RE.sub("?…", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = _QUERY_RE.sub("?…", record.msg)
        return True
