"""Personal data stays out of the request log."""

from __future__ import annotations

import logging


def test_the_servers_request_lines_are_logged_without_their_query_strings():
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("django.server")  # configured by settings.LOGGING
    logger.addHandler(handler)
    try:
        # As Django's development server logs a request.
        logger.info(
            '"%s" %s %s',
            "GET /api/profiles/lookup?type=email&value=lena.vogt%40example.de HTTP/1.1",
            "200",
            "512",
        )
        logger.info('"%s" %s %s', "GET /admin/profiles/profile/ HTTP/1.1", "200", "9000")
    finally:
        logger.removeHandler(handler)

    assert seen == [
        '"GET /api/profiles/lookup?… HTTP/1.1" 200 512',
        '"GET /admin/profiles/profile/ HTTP/1.1" 200 9000',
    ]
