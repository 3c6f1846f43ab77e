"""A privacy officer opens a verified access request, runs it, watches the progress, downloads
the archive and closes the request: in a real Chromium against the live server."""

from __future__ import annotations

import importlib
import json
import zipfile

import pytest
from django_q.models import OrmQ

from consent.models import DataSubjectRequest, RequestRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are ordinary synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        context.close()
        browser.close()


def run_queued_task_like_a_worker() -> str:
    """Take the one queued django-q2 task from the broker table and run it."""
    queued = OrmQ.objects.get()
    task = queued.task
    module, name = task["func"].rsplit(".", 1)
    result = getattr(importlib.import_module(module), name)(*task["args"])
    queued.delete()
    return result


def test_officer_runs_an_access_request_and_downloads_the_archive(
    live_server, browser_page, officer, people, make_request, tmp_path
):
    officer.set_password("pw-olga-123")
    officer.save()
    request = make_request(type="access", requester_email="lena.private@example.org")
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/?next=/admin/consent/datasubjectrequest/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "pw-olga-123")
    page.click("input[type=submit]")
    page.get_by_role("link", name=f"DSR-{request.pk}").click()
    assert page.locator("#dsr-status").inner_text() == "Verified"
    assert page.locator("#dsr-subject").inner_text().startswith("1 profile(s)")

    page.click("#dsr-run")
    page.wait_for_selector(".dsr-run[data-status=queued]")
    assert page.locator(".dsr-run-percent").inner_text() == "0%"
    assert page.locator("#dsr-status").inner_text() == "In progress"
    assert OrmQ.objects.count() == 1  # queued for the worker, not run in the web request

    assert run_queued_task_like_a_worker() == "succeeded"
    # The page polls the job (htmx) and shows it finishing without a reload.
    page.wait_for_selector(".dsr-run[data-status=succeeded]")
    assert page.locator(".dsr-run-percent").inner_text() == "100%"
    assert page.locator("#dsr-runs[hx-trigger]").count() == 0  # polling stopped

    with page.expect_download() as download_info:
        page.click(".dsr-download")
    download = download_info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    assert download.suggested_filename == f"dsr-{request.pk}-export.zip"
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("subject.json"))
        assert "tables/events.csv" in archive.namelist()
    assert [p["id"] for p in document["tables"]["profiles"]] == [people["lena"].pk]
    assert len(document["tables"]["events"]) == 3

    page.click("#dsr-complete")
    page.wait_for_selector("text=Request completed.")
    assert page.locator("#dsr-status").inner_text() == "Completed"
    request.refresh_from_db()
    assert request.status == "completed"
    assert RequestRun.objects.get().status == "succeeded"
    actions = list(request.events.values_list("action", flat=True))
    assert actions[-3:] == ["export_queued", "export_succeeded", "completed"]
    assert DataSubjectRequest.objects.get().completed_at is not None


def test_dashboard_chart_renders_open_requests_by_type_and_regime(
    live_server, browser_page, officer, make_request
):
    officer.set_password("pw-olga-123")
    officer.save()
    make_request(type="access", regime="gdpr", requester_email="a@example.com")
    make_request(type="access", regime="gdpr", requester_email="b@example.com")
    make_request(type="erasure", regime="ccpa", requester_email="c@example.com")
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/?next=/admin/consent/datasubjectrequest/dashboard/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "pw-olga-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#dsr-chart .main-svg")
    assert page.locator("#dash-open").inner_text() == "3"
    # Plotly drew one bar group per regime; the bars with a height are the non-zero counts.
    assert page.locator("#dsr-chart .trace.bars").count() == 2
    heights = page.eval_on_selector_all(
        "#dsr-chart .trace.bars .point path",
        "paths => paths.map(p => p.getBBox().height).filter(h => h > 0)",
    )
    assert len(heights) == 2
    assert max(heights) == pytest.approx(2 * min(heights), rel=0.05)  # 2 GDPR access vs 1
    legend = page.locator("#dsr-chart .legendtext").all_text_contents()
    assert sorted(legend) == ["CCPA / CPRA", "GDPR"]
