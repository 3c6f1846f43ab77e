"""Merge suggestion admin: who may see the review pages (they show both people's personal data)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from profiles.models import MergeSuggestion, Profile, Ruleset
from profiles.services.resolution import (
    _score_profile_pairs,
    ruleset_active,
    ruleset_spec,
    suggestions_upsert,
)

CSV = (
    "customer_id,first_name,last_name,email,phone,birth_date,street,postcode,city,country\n"
    "C-1,Lena,Müller,lena@example.de,+49 221 1234567,1990-03-14,Hauptstr. 5,10115,Köln,DE\n"
    "C-2,Lena,Mueller,lena.m@example.org,,1990-03-14,Hauptstraße 5,10115,Koeln,DE\n"
)


@pytest.fixture
def user_with_role(db):
    def make(role: str) -> User:
        user = User.objects.create_user(username=role.lower().replace(" ", "-"), password="pw")
        user.is_staff = True
        user.save()
        user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def suggestion(make_source, import_csv) -> MergeSuggestion:
    import_csv(make_source(), CSV)
    left, right = sorted(Profile.objects.values_list("pk", flat=True))
    suggestions_upsert(
        suggestions=_score_profile_pairs([(left, right)], ruleset_spec(ruleset_active()))
    )
    return MergeSuggestion.objects.get()


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("Data Steward", 200),
        ("Marketer", 403),
        ("Privacy Officer", 403),
        ("Data Engineer", 403),
    ],
)
def test_review_page_is_shown_only_to_roles_that_may_view_suggestions(
    client, user_with_role, suggestion, role, status
):
    client.force_login(user_with_role(role))
    url = reverse("admin:profiles_mergesuggestion_review", args=[suggestion.pk])
    response = client.get(url)
    assert response.status_code == status
    body = response.content.decode()
    assert ("lena.m@example.org" in body) is (status == 200)
    assert ("lena@example.de" in body) is (status == 200)


@pytest.mark.parametrize(
    ("role", "status"),
    [("Data Steward", 302), ("Marketer", 403), ("Privacy Officer", 403), ("Data Engineer", 403)],
)
def test_review_next_is_refused_to_roles_that_may_not_view_suggestions(
    client, user_with_role, suggestion, role, status
):
    client.force_login(user_with_role(role))
    response = client.get(reverse("admin:profiles_mergesuggestion_next"))
    assert response.status_code == status
    if status == 302:
        review = reverse("admin:profiles_mergesuggestion_review", args=[suggestion.pk])
        assert response["Location"] == review


@pytest.mark.parametrize("role", ["Marketer", "Privacy Officer", "Data Engineer"])
def test_roles_without_change_permission_cannot_decide_or_bulk_accept(
    client, user_with_role, suggestion, role
):
    client.force_login(user_with_role(role))
    review = reverse("admin:profiles_mergesuggestion_review", args=[suggestion.pk])
    assert client.post(review, {"decision": "accept"}).status_code == 403
    bulk = reverse("admin:profiles_mergesuggestion_bulk")
    assert client.post(bulk, {"min_score": "0"}).status_code == 403
    suggestion.refresh_from_db()
    assert suggestion.status == MergeSuggestion.Status.PENDING
    assert Profile.objects.count() == 2


def test_bulk_accept_form_is_outside_the_changelist_form(client, user_with_role, suggestion):
    client.force_login(user_with_role("Data Steward"))
    body = client.get(reverse("admin:profiles_mergesuggestion_changelist")).content.decode()
    bulk = body.index('id="bulk-accept-form"')
    changelist = body.index('id="changelist-form"')
    assert bulk < body.index("</form>", bulk) < changelist


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"auto_threshold": "-1"}, "auto_threshold", "must not be below the review threshold"),
        ({"review_threshold": "50"}, "auto_threshold", "must not be below the review threshold"),
        ({"review_threshold": "0"}, "review_threshold", "must be above 0"),
        ({"typo_threshold": "100"}, "typo_threshold", "between the review and the auto"),
        ({"typo_threshold": "-5"}, "typo_threshold", "between the review and the auto"),
    ],
)
def test_ruleset_form_refuses_thresholds_out_of_order(admin_client, values, field, message):
    ruleset = Ruleset.objects.create(name="Strict")
    form = {
        "name": "Strict",
        "description": "",
        "auto_threshold": "16",
        "typo_threshold": "14",
        "review_threshold": "7",
        "block_cap": "200",
        "identifier_cap": "20",
        "survivorship_default": ruleset.survivorship_default,
        "survivorship_overrides": "{}",
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        "updated_at_0": "2026-01-01",
        "updated_at_1": "00:00:00",
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
        **values,
    }
    response = admin_client.post(reverse("admin:profiles_ruleset_change", args=[ruleset.pk]), form)

    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors[field])
    ruleset.refresh_from_db()
    assert (ruleset.auto_threshold, ruleset.typo_threshold, ruleset.review_threshold) == (16, 14, 7)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ('["city"]', 'an object of attribute and strategy, e.g. {"city": "most_recent"}'),
        ('{"city": "newest"}', "city: unknown strategy 'newest'"),
        ('{"city": ["most_recent"]}', "city: unknown strategy ['most_recent']"),
        ('{"citty": "most_recent"}', "unknown attribute 'citty'"),
    ],
)
def test_ruleset_form_refuses_survivorship_overrides_it_cannot_apply(
    admin_client, overrides, message
):
    ruleset = Ruleset.objects.get(is_active=True)
    form = {
        "name": ruleset.name,
        "description": "",
        "is_active": "on",
        "auto_threshold": "16",
        "typo_threshold": "14",
        "review_threshold": "7",
        "block_cap": "200",
        "identifier_cap": "20",
        "survivorship_default": "source_priority",
        "survivorship_overrides": overrides,
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        "updated_at_0": "2026-01-01",
        "updated_at_1": "00:00:00",
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:profiles_ruleset_change", args=[ruleset.pk]), form)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["survivorship_overrides"]
    assert message in " ".join(errors)
    ruleset.refresh_from_db()
    assert ruleset.survivorship_overrides == {}


def test_ruleset_form_saves_thresholds_in_order(admin_client):
    ruleset = Ruleset.objects.create(name="Strict")
    form = {
        "name": "Strict",
        "description": "",
        "auto_threshold": "20",
        "typo_threshold": "",
        "review_threshold": "5",
        "block_cap": "200",
        "identifier_cap": "20",
        "survivorship_default": ruleset.survivorship_default,
        "survivorship_overrides": "{}",
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        "updated_at_0": "2026-01-01",
        "updated_at_1": "00:00:00",
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:profiles_ruleset_change", args=[ruleset.pk]), form)

    assert response.status_code == 302
    ruleset.refresh_from_db()
    thresholds = (ruleset.auto_threshold, ruleset.typo_threshold, ruleset.review_threshold)
    assert thresholds == (20, None, 5)


@pytest.mark.parametrize(
    ("role", "changelist", "can_edit", "run_actions"),
    [
        ("Data Engineer", 200, True, True),
        ("Data Steward", 200, False, False),
        ("Marketer", 403, False, False),
        ("Privacy Officer", 403, False, False),
    ],
)
def test_rulesets_are_edited_and_run_by_the_engineer_and_only_read_by_the_steward(
    client, user_with_role, role, changelist, can_edit, run_actions
):
    client.force_login(user_with_role(role))
    ruleset = Ruleset.objects.get(is_active=True)

    listed = client.get(reverse("admin:profiles_ruleset_changelist"))
    page = client.get(reverse("admin:profiles_ruleset_change", args=[ruleset.pk]))
    runs = client.get(reverse("admin:profiles_resolutionrun_changelist"))

    assert listed.status_code == changelist
    assert runs.status_code == changelist
    if changelist == 200:
        assert ('name="_save"' in page.content.decode()) is can_edit
        assert ('value="run_now"' in listed.content.decode()) is run_actions
        assert ('value="dry_run"' in listed.content.decode()) is run_actions


def test_a_viewer_cannot_start_a_run_by_posting_the_action(client, user_with_role):
    from profiles.models import ResolutionRun

    client.force_login(user_with_role("Data Steward"))
    ruleset = Ruleset.objects.get(is_active=True)

    client.post(
        reverse("admin:profiles_ruleset_changelist"),
        {"action": "run_now", "_selected_action": [ruleset.pk]},
    )

    assert ResolutionRun.objects.count() == 0


@pytest.mark.parametrize(
    ("role", "view", "delete"),
    [("Data Steward", True, True), ("Data Engineer", True, False), ("Marketer", False, False)],
)
def test_do_not_merge_pairs_are_seen_by_engineer_and_steward_and_lifted_by_the_steward(
    user_with_role, role, view, delete
):
    user = User.objects.get(pk=user_with_role(role).pk)

    assert user.has_perm("profiles.view_donotmerge") is view
    assert user.has_perm("profiles.delete_donotmerge") is delete


def test_undoing_an_accepted_suggestion_marks_it_rejected(suggestion, admin_user):
    from profiles.services.merging import profile_unmerge
    from profiles.services.suggestions import merge_suggestion_accept

    log = merge_suggestion_accept(suggestion=suggestion, actor=admin_user)
    accepted = MergeSuggestion.objects.get(pk=suggestion.pk)
    profile_unmerge(merge_log=log, actor=admin_user)
    undone = MergeSuggestion.objects.get(pk=suggestion.pk)

    assert (accepted.status, accepted.merge_log_id) == ("accepted", log.pk)
    assert (undone.status, undone.reviewed_by_id) == ("rejected", admin_user.pk)
    assert Profile.objects.count() == 2
