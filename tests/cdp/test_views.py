"""Error pages: JSON for the APIs, Django's HTML elsewhere."""

from __future__ import annotations

import pytest
from django.http import HttpResponseNotAllowed
from django.test import RequestFactory

from cdp.api import api_json_errors
from cdp.views import server_error


def test_unknown_api_path_is_json_404(client, db):
    response = client.get("/api/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "No such endpoint."}


def test_unknown_page_is_html_404(client, db):
    response = client.get("/nothing-here")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_server_error_on_an_api_is_json_500():
    response = server_error(RequestFactory().get("/v1/track"))

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert b'"code": "server_error"' in response.content


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/profiles/abc",  # the <int:> converter refuses it: no URL matches
        "/api/privacy/requests/not-a-uuid/verify",
        "/api/nothing-here",
        "/v1/nothing",
    ],
)
def test_an_api_path_no_url_matches_is_json_404_with_debug_on_or_off(
    admin_client, settings, debug, path
):
    settings.DEBUG = debug  # the quick start runs with DEBUG on: Django's HTML 404 page

    response = admin_client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"code": "not_found", "message": "No such endpoint."}


def test_unknown_page_is_html_404_with_debug_on(client, db, settings):
    settings.DEBUG = True

    response = client.get("/admin-nothing-here")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_plain_django_405_under_the_apis_becomes_json_and_keeps_allow():
    middleware = api_json_errors(lambda request: HttpResponseNotAllowed(["POST"]))

    response = middleware(RequestFactory().get("/api/consent"))

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response["Content-Type"] == "application/json"
    assert response.content == (
        b'{"code": "method_not_allowed", "message": "GET is not allowed here; use POST."}'
    )


def test_a_405_outside_the_apis_is_left_alone():
    middleware = api_json_errors(lambda request: HttpResponseNotAllowed(["POST"]))

    response = middleware(RequestFactory().get("/privacy/request/"))

    assert (response.status_code, response.content) == (405, b"")


def test_root_redirects_to_the_admin(client, db):
    response = client.get("/")

    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_favicon_is_the_product_icon_not_a_404(client, db):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    assert "max-age=86400" in response["Cache-Control"]
    assert client.post("/favicon.ico").status_code == 405
