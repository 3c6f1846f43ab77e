"""Error pages: JSON for the APIs, Django's HTML elsewhere."""

from __future__ import annotations

from django.test import RequestFactory

from cdp.views import not_found, server_error


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


def test_not_found_handler_outside_the_apis_is_html():
    response = not_found(RequestFactory().get("/admin/nothing"), Exception("x"))

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_root_redirects_to_the_admin(client, db):
    response = client.get("/")

    assert (response.status_code, response["Location"]) == (302, "/admin/")
