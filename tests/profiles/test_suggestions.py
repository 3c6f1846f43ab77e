"""A steward's decisions on suggestions: accepting never crosses a do-not-merge pair, and a
suggestion whose profile was merged elsewhere or erased leaves the queue instead of blocking it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from profiles.models import DoNotMerge, MergeLog, MergeSuggestion, Profile, SourceRecord
from profiles.services.merging import (
    MergeError,
    profile_unmerge,
    profiles_merge,
    profiles_merge_many,
)
from profiles.services.suggestions import (
    merge_suggestion_accept,
    merge_suggestions_accept_above,
)

HEADER = "customer_id,first_name,last_name,email,phone,birth_date,street,postcode,city,country\n"
THREE = (
    HEADER + "C-1,Ann,Lee,a@x.com,,,,,Aachen,\n"
    "C-2,Bob,Stone,b@x.com,,,,,Bonn,\n"
    "C-3,Cid,Cole,c@x.com,,,,,Celle,\n"
)


@pytest.fixture
def three(make_source, import_csv) -> tuple[int, int, int]:
    source = make_source()
    import_csv(source, THREE)
    ids = dict(SourceRecord.objects.values_list("external_key", "profile_id"))
    return ids["C-1"], ids["C-2"], ids["C-3"]


def test_bulk_accept_never_joins_two_profiles_kept_apart(three, admin_user):
    a, b, c = three
    MergeSuggestion.objects.create(left_id=a, right_id=b, score=20)
    second = MergeSuggestion.objects.create(left_id=a, right_id=c, score=19)
    DoNotMerge.objects.create(left_id=b, right_id=c, reason="steward rejected")

    accepted, errors = merge_suggestions_accept_above(min_score=10, actor=admin_user)

    assert accepted == 1
    assert errors == [
        f"#{second.pk}: #{a} and #{c} are kept apart by a do-not-merge pair; "
        "lift it first to merge them."
    ]
    assert sorted(Profile.objects.values_list("pk", flat=True)) == [a, c]
    assert MergeSuggestion.objects.get(pk=second.pk).status == MergeSuggestion.Status.PENDING


def test_accepting_a_pair_refuses_when_a_profile_merged_into_one_side_is_kept_apart(
    three, admin_user
):
    a, b, c = three
    first = MergeSuggestion.objects.create(left_id=a, right_id=b, score=20)
    second = MergeSuggestion.objects.create(left_id=a, right_id=c, score=12)
    DoNotMerge.objects.create(left_id=b, right_id=c, reason="unmerged")
    merge_suggestion_accept(suggestion=first, actor=admin_user)  # b is now part of a

    with pytest.raises(MergeError, match=f"#{a} and #{c} are kept apart"):
        merge_suggestion_accept(suggestion=second, actor=admin_user)

    assert sorted(Profile.objects.values_list("pk", flat=True)) == [a, c]
    assert MergeSuggestion.objects.get(pk=second.pk).status == MergeSuggestion.Status.PENDING


@pytest.mark.parametrize("bulk", [False, True])
def test_a_merge_closes_the_pending_suggestions_of_the_profile_it_absorbs(three, bulk):
    a, b, c = three
    of_absorbed = MergeSuggestion.objects.create(left_id=b, right_id=c, score=12)
    of_survivor = MergeSuggestion.objects.create(left_id=a, right_id=c, score=9)

    if bulk:
        profiles_merge_many(clusters=[[a, b]], reason="fuzzy: ruleset Default")
    else:
        profiles_merge(survivor_id=a, other_ids=[b], reason="steward")

    of_absorbed.refresh_from_db()
    assert of_absorbed.status == MergeSuggestion.Status.CLOSED
    assert of_absorbed.reviewed_at is not None
    assert MergeSuggestion.objects.get(pk=of_survivor.pk).status == MergeSuggestion.Status.PENDING

    # Undoing the merge puts the suggestion back in the queue as it was.
    profile_unmerge(merge_log=MergeLog.objects.get())

    of_absorbed.refresh_from_db()
    assert (of_absorbed.status, of_absorbed.reviewed_at) == (MergeSuggestion.Status.PENDING, None)
    assert MergeSuggestion.objects.get(pk=of_survivor.pk).status == MergeSuggestion.Status.PENDING


def test_undoing_a_merge_does_not_reopen_a_suggestion_whose_pair_is_now_kept_apart(three):
    a, b, c = three
    between = MergeSuggestion.objects.create(left_id=a, right_id=b, score=12)
    profiles_merge_many(clusters=[[a, b]], reason="fuzzy: ruleset Default")
    assert MergeSuggestion.objects.get(pk=between.pk).status == MergeSuggestion.Status.CLOSED

    profile_unmerge(merge_log=MergeLog.objects.get())

    # The undo stores do-not-merge for the pair: the suggestion stays closed.
    assert MergeSuggestion.objects.get(pk=between.pk).status == MergeSuggestion.Status.CLOSED


def test_review_next_moves_past_a_suggestion_whose_profile_is_gone(three, admin_client):
    a, b, c = three
    stale = MergeSuggestion.objects.create(left_id=a, right_id=b, score=20)
    MergeSuggestion.objects.create(left_id=a, right_id=c, score=9)
    Profile.objects.filter(pk=b).delete()  # erased (a data-subject request)
    review = reverse("admin:profiles_mergesuggestion_review", args=[stale.pk])

    response = admin_client.post(review, {"decision": "accept"}, follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        f"Profile #{b} no longer exists (merged or erased); the suggestion is closed."
    ]
    stale.refresh_from_db()
    assert stale.status == MergeSuggestion.Status.CLOSED
    nxt = admin_client.get(reverse("admin:profiles_mergesuggestion_next"))
    assert nxt.url != review
    assert Profile.objects.filter(pk__in=[a, c]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_accepting_two_suggestions_that_share_a_profile_at_once_does_not_deadlock(
    make_source, import_csv, admin_user, monkeypatch
):
    import threading
    import time

    from django.db import connection, connections

    from profiles.services import suggestions

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; row locks are exercised on PostgreSQL")
    import_csv(make_source(), THREE)
    ids = dict(SourceRecord.objects.values_list("external_key", "profile_id"))
    a, b, c = ids["C-1"], ids["C-2"], ids["C-3"]
    first = MergeSuggestion.objects.create(left_id=a, right_id=b, score=20)
    second = MergeSuggestion.objects.create(left_id=b, right_id=c, score=19)
    release = threading.Event()
    real = suggestions.do_not_merge_pairs

    def paused(ids):  # the second accept waits here, after it has claimed its suggestion
        if threading.current_thread().name == "second":
            release.wait(10)
        return real(ids)

    monkeypatch.setattr(suggestions, "do_not_merge_pairs", paused)
    results = {}

    def accept(suggestion):
        try:
            merge_suggestion_accept(suggestion=suggestion, actor=admin_user)
            results[threading.current_thread().name] = "merged"
        except Exception as exc:  # a deadlock surfaced as a database error (a 500)
            results[threading.current_thread().name] = type(exc).__name__
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=accept, args=(second,), name="second"),
        threading.Thread(target=accept, args=(first,), name="first"),
    ]
    threads[0].start()
    time.sleep(0.5)
    threads[1].start()
    time.sleep(0.5)  # the first accept now waits for a lock the second holds
    release.set()
    for thread in threads:
        thread.join(20)

    assert results == {"second": "merged", "first": "merged"}
    assert list(Profile.objects.values_list("pk", flat=True)) == [a]


def test_the_review_page_names_each_identitys_type_and_the_record_it_came_from(
    make_source, import_csv, admin_client
):
    import_csv(make_source(name="shop"), HEADER + "C-1,Ann,Lee,ann@x.com,,,,,Aachen,\n")
    import_csv(make_source(name="crm"), HEADER + "K-9,Anne,Lee,,,,,,Aachen,\n")
    left, right = sorted(SourceRecord.objects.values_list("profile_id", flat=True))
    suggestion = MergeSuggestion.objects.create(left_id=left, right_id=right, score=5)

    page = admin_client.get(
        reverse("admin:profiles_mergesuggestion_review", args=[suggestion.pk])
    ).content.decode()

    side = page[page.index('id="side-1"') : page.index('id="side-2"')]
    assert "<td>E-mail</td><td>ann@x.com</td><td>shop C-1</td>" in side
    assert "<td>Customer number</td><td>C-1</td><td>shop C-1</td>" in side


def test_undoing_a_merge_reopens_one_suggestion_per_pair(three):
    """Two closed suggestions of one pair (the first stayed closed while the pair was kept
    apart; after the pair was lifted a run suggested it again and a merge closed that one
    too): the undo reopens the newest only, instead of failing on one-pending-per-pair."""
    a, b, c = three
    first = MergeSuggestion.objects.create(left_id=b, right_id=c, score=12)
    profiles_merge(survivor_id=a, other_ids=[b], reason="steward")
    DoNotMerge.objects.create(left_id=b, right_id=c, reason="steward")
    profile_unmerge(merge_log=MergeLog.objects.get())
    assert MergeSuggestion.objects.get(pk=first.pk).status == MergeSuggestion.Status.CLOSED
    DoNotMerge.objects.filter(left_id=b, right_id=c).delete()  # lifted in the admin
    again = MergeSuggestion.objects.create(left_id=b, right_id=c, score=13)
    log = profiles_merge(survivor_id=a, other_ids=[c], reason="steward")

    profile_unmerge(merge_log=log)

    statuses = dict(MergeSuggestion.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "closed", again.pk: "pending"}
