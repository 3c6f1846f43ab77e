"""A steward's decisions on suggestions: accepting never crosses a do-not-merge pair, and a
suggestion whose profile was merged elsewhere or erased leaves the queue instead of blocking it."""

from __future__ import annotations

import pytest

from profiles.models import DoNotMerge, MergeSuggestion, Profile, SourceRecord
from profiles.services.merging import MergeError
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
