"""A data steward reviews a merge suggestion in a real headless Chromium, accepts, undoes."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model

from profiles.models import MergeSuggestion, Profile
from profiles.services.resolution import (
    _score_profile_pairs,
    ruleset_active,
    ruleset_spec,
    suggestions_upsert,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CSV = (
    "customer_id,first_name,last_name,email,birth_date,street,postcode,city,country\n"
    "C-1,Lena,Müller,lena@example.de,1990-03-14,Hauptstr. 5,10115,Köln,DE\n"
    "C-2,Lena,Mueller,lena.m@example.org,1990-03-14,Hauptstraße 5,10115,Koeln,DE\n"
    "C-3,Otto,Klein,otto@example.de,,,,,DE\n"
)


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-background-networking"],
        )
        page = browser.new_page()
        yield page
        browser.close()


def test_steward_accepts_a_suggestion_and_undoes_it(
    live_server, browser_page, make_source, import_csv
):
    get_user_model().objects.create_superuser("steward", "s@example.com", "pw-steward-1")
    import_csv(make_source(), CSV)
    left, right, _ = sorted(Profile.objects.values_list("pk", flat=True))
    suggestions_upsert(
        suggestions=_score_profile_pairs([(left, right)], ruleset_spec(ruleset_active()))
    )
    suggestion = MergeSuggestion.objects.get()
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "steward")
    page.fill("#id_password", "pw-steward-1")
    page.click("input[type=submit]")

    page.goto(f"{live_server.url}/admin/profiles/mergesuggestion/{suggestion.pk}/review/")
    assert page.inner_text("#side-1 h2") == f"Profile #{left}"
    assert page.inner_text("#side-2 h2") == f"Profile #{right}"
    assert "Müller" in page.inner_text("#side-1")
    assert "Mueller" in page.inner_text("#side-2")
    scores = page.inner_text("#field-scores")
    assert "Last name\t1.0\t5.5" in scores
    assert "E-mail\t0.0\t-0.5" in scores
    page.wait_for_selector("#score-chart .main-svg")  # Plotly drew the bar chart
    assert Profile.objects.count() == 3

    page.keyboard.press("a")  # accept from the keyboard
    page.wait_for_selector("#undo-link")
    assert Profile.objects.count() == 2
    assert MergeSuggestion.objects.get().status == "accepted"

    page.click("#undo-link")
    page.click("#unmerge")
    page.wait_for_selector("text=Unmerged")
    assert Profile.objects.count() == 3
    assert sorted(Profile.objects.values_list("pk", flat=True))[:2] == [left, right]
