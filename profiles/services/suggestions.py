"""A data steward's decisions on merge suggestions: accept, reject, skip, bulk accept."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from cdp.audit import audit_record
from profiles import matching
from profiles.models import MergeLog, MergeSuggestion, Profile
from profiles.services.merging import MergeError, do_not_merge_store, profiles_merge
from profiles.services.resolution import do_not_merge_pairs

Status = MergeSuggestion.Status


def _claim(suggestion: MergeSuggestion, status: str, actor) -> None:
    """Move a pending suggestion to a decision; a second click finds it no longer pending."""
    updated = MergeSuggestion.objects.filter(pk=suggestion.pk, status=Status.PENDING).update(
        status=status, reviewed_by=actor, reviewed_at=timezone.now()
    )
    if not updated:
        raise MergeError("This suggestion is no longer pending (decided in another tab?).")


def merge_suggestion_accept(*, suggestion: MergeSuggestion, actor) -> MergeLog:
    """Merge the pair (the older id survives); see ``_accept``.

    A side that no longer exists (erased, or merged before merges closed such suggestions)
    closes the suggestion (status closed, as a merge closes it), so it leaves the queue
    instead of coming back to the top of "Review next" after every failed accept.
    """
    pair = (suggestion.left_id, suggestion.right_id)
    live = set(Profile.objects.filter(pk__in=pair).values_list("pk", flat=True))
    gone = [pid for pid in pair if pid not in live]
    if gone:
        _claim(suggestion, Status.CLOSED, actor)
        audit_record(actor=actor, action="merge_suggestion.close", target=suggestion)
        raise MergeError(
            f"Profile #{gone[0]} no longer exists (merged or erased); the suggestion is closed."
        )
    return _accept(suggestion=suggestion, actor=actor)


@transaction.atomic
def _accept(*, suggestion: MergeSuggestion, actor) -> MergeLog:
    """Merge the pair (the older id survives). Safe against double submission.

    Refused while a do-not-merge pair keeps the two apart, also one read through a merge
    redirect (a profile merged into one side since was kept apart from the other).
    """
    survivor, other = sorted((suggestion.left_id, suggestion.right_id))
    # Both profiles are locked before the suggestion is claimed, as every merge locks its
    # profiles before it closes the suggestions of the absorbed ones: the same order, so an
    # accept and a merge of a shared profile wait for each other instead of deadlocking.
    locked = Profile.objects.select_for_update().filter(pk__in=[survivor, other]).order_by("pk")
    if len(locked.values_list("pk", flat=True)) != 2:
        raise MergeError("One of these profiles no longer exists (merged meanwhile?).")
    _claim(suggestion, Status.ACCEPTED, actor)
    if matching.pair_key(survivor, other) in do_not_merge_pairs([survivor, other]):
        raise MergeError(
            f"#{survivor} and #{other} are kept apart by a do-not-merge pair; "
            "lift it first to merge them."
        )
    log = profiles_merge(
        survivor_id=survivor,
        other_ids=[other],
        reason="steward accepted suggestion",
        actor=actor,
        details={"suggestion": suggestion.pk, "score": suggestion.score},
    )
    MergeSuggestion.objects.filter(pk=suggestion.pk).update(merge_log=log)
    audit_record(actor=actor, action="merge_suggestion.accept", target=suggestion)
    return log


@transaction.atomic
def merge_suggestion_reject(*, suggestion: MergeSuggestion, actor) -> None:
    """Different people: store do-not-merge, which every later run honours."""
    _claim(suggestion, Status.REJECTED, actor)
    do_not_merge_store(
        a=suggestion.left_id, b=suggestion.right_id, reason="steward rejected", actor=actor
    )
    audit_record(actor=actor, action="merge_suggestion.reject", target=suggestion)


@transaction.atomic
def merge_suggestion_skip(*, suggestion: MergeSuggestion, actor) -> None:
    """Not now: the pair leaves the queue; a later run may suggest it again."""
    _claim(suggestion, Status.SKIPPED, actor)
    audit_record(actor=actor, action="merge_suggestion.skip", target=suggestion)


def merge_suggestions_accept_above(*, min_score: float, actor) -> tuple[int, list[str]]:
    """Accept every pending suggestion scoring at least ``min_score``, best first.

    Each merge is its own transaction; a pair whose profile was merged meanwhile is reported.
    """
    accepted, errors = 0, []
    queryset = MergeSuggestion.objects.filter(status=Status.PENDING, score__gte=min_score)
    for suggestion in queryset.order_by("-score", "created_at"):
        try:
            merge_suggestion_accept(suggestion=suggestion, actor=actor)
            accepted += 1
        except MergeError as exc:
            errors.append(f"#{suggestion.pk}: {exc}")
    return accepted, errors
