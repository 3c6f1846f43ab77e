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


BULK_CSV = (
    "customer_id,first_name,last_name,email,birth_date,street,postcode,city,country\n"
    "C-1,Lena,Müller,lena@example.de,1990-03-14,Hauptstr. 5,10115,Köln,DE\n"
    "C-2,Lena,Mueller,lena.m@example.org,1990-03-14,Hauptstraße 5,10115,Koeln,DE\n"
    "C-3,Jörg,Schäfer,joerg@example.de,1985-07-02,Ringstr. 9,50667,Köln,DE\n"
    "C-4,Joerg,Schaefer,j.schaefer@example.org,1985-07-02,Ringstraße 9,50667,Koeln,DE\n"
    "C-5,Otto,Klein,otto@example.de,,,,,DE\n"
)


def test_bulk_accept_on_the_changelist_merges_every_suggestion_above_the_score(
    live_server, browser_page, make_source, import_csv
):
    get_user_model().objects.create_superuser("admin", "a@example.com", "pw-admin-1")
    import_csv(make_source(), BULK_CSV)
    ids = sorted(Profile.objects.values_list("pk", flat=True))
    spec = ruleset_spec(ruleset_active())
    suggestions_upsert(suggestions=_score_profile_pairs([(ids[0], ids[1]), (ids[2], ids[3])], spec))
    assert MergeSuggestion.objects.filter(status="pending").count() == 2
    lowest = min(MergeSuggestion.objects.values_list("score", flat=True))
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw-admin-1")
    page.click("input[type=submit]")

    page.goto(f"{live_server.url}/admin/profiles/mergesuggestion/")
    page.fill("#id_min_score", str(lowest))
    page.click("button:has-text('Bulk accept')")
    page.wait_for_selector("text=Accepted 2 suggestions.")

    assert Profile.objects.count() == 3
    assert sorted(MergeSuggestion.objects.values_list("status", flat=True)) == [
        "accepted",
        "accepted",
    ]
    assert page.errors == []
