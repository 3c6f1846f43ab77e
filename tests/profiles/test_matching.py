"""Fuzzy matching (pure): blanks, guards, scores, clustering with do-not-merge."""

from __future__ import annotations

import numpy as np

from profiles import matching


def score(a: dict, b: dict, spec=matching.DEFAULT_SPEC):
    table = matching.table_build([{"id": 1, **a}, {"id": 2, **b}])
    scores = matching.pairs_score(table, np.array([[0, 1]], dtype=np.int64), spec)
    return table, scores


def test_blanks_never_match_blanks_and_count_as_no_evidence():
    _, scores = score({"first_name": "Ann"}, {"first_name": "Ann"})
    parts = scores.explain(0)
    assert parts["last_name"] == {"similarity": None, "contribution": 0.0}
    assert parts["birth_date"] == {"similarity": None, "contribution": 0.0}
    assert float(scores.total[0]) == 4.5  # only the first name counts
    rule = matching.Rule("email", (matching.Criterion("email"),))
    _, blank = score({"first_name": "A"}, {"first_name": "B"}, matching.Spec(rules=(rule,)))
    assert int(blank.rule[0]) == -1
    opt_in = matching.Rule("email", (matching.Criterion("email", blank_matches_blank=True),))
    _, both_blank = score({"first_name": "A"}, {"first_name": "B"}, matching.Spec(rules=(opt_in,)))
    assert int(both_blank.rule[0]) == 0


def test_mueller_and_koeln_score_as_equal():
    _, scores = score(
        {"last_name": "Müller", "city": "Köln", "street": "Hauptstr. 5"},
        {"last_name": "Mueller", "city": "KOELN", "street": "Hauptstraße 5"},
    )
    parts = scores.explain(0)
    assert parts["last_name"]["similarity"] == 1.0
    assert parts["city"]["similarity"] == 1.0
    assert parts["street"]["similarity"] == 1.0


def test_household_phone_with_other_first_name_and_birth_date_is_not_merged():
    dad = {"first_name": "Peter", "last_name": "Schulz", "phone": "+4930123456",
           "birth_date": "1961-04-02", "street": "Hauptstr. 5", "postcode": "10115"}  # fmt: skip
    son = {**dad, "first_name": "Lukas", "birth_date": "1994-11-23"}
    table, scores = score(dad, son)
    assert matching.strong_conflicts(table.record(0), table.record(1)) == ["different birth dates"]
    decisions = matching.decide(table, scores)
    assert decisions.merges == []
    assert float(scores.total[0]) < matching.DEFAULT_SPEC.auto_threshold


def test_same_person_is_merged_and_birth_date_typo_is_no_conflict():
    a = {"first_name": "Lena", "last_name": "Vogt", "birth_date": "1990-03-14",
         "street": "Hauptstr. 5", "postcode": "10115", "city": "Berlin"}  # fmt: skip
    table, scores = score(a, {**a, "street": "Hauptstraße 5"})
    assert matching.decide(table, scores).merges == [[1, 2]]
    assert matching.birth_dates_conflict("19900314", "19900341") is False  # swapped digits
    assert matching.birth_dates_conflict("19900314", "19901403") is False  # day/month swap
    assert matching.birth_dates_conflict("19900314", "19610402") is True


def test_different_user_ids_block_an_automatic_merge_but_are_suggested():
    a = {"first_name": "Lena", "last_name": "Vogt", "birth_date": "1990-03-14",
         "street": "Hauptstr. 5", "postcode": "10115", "user_id": "u-1"}  # fmt: skip
    table, scores = score(a, {**a, "user_id": "u-2"})
    decisions = matching.decide(table, scores)
    assert decisions.merges == []
    assert [(s["left"], s["right"], s["reasons"]) for s in decisions.suggestions] == [
        (1, 2, ["different user ids"])
    ]


def test_do_not_merge_is_honoured_even_through_a_chain():
    person = {"first_name": "Lena", "last_name": "Vogt", "birth_date": "1990-03-14",
              "street": "Hauptstr. 5", "postcode": "10115"}  # fmt: skip
    table = matching.table_build([{"id": n, **person} for n in (1, 2, 3)])
    pairs, _ = matching.candidate_pairs(table)
    scores = matching.pairs_score(table, pairs)
    assert matching.decide(table, scores).merges == [[1, 2, 3]]
    kept_apart = matching.decide(table, scores, do_not_merge={(1, 3)})
    assert all(not {1, 3} <= set(cluster) for cluster in kept_apart.merges)
    assert kept_apart.merges == [[1, 2]]


def test_blocking_never_makes_all_pairs_and_reports_oversized_blocks():
    people = [{"id": n, "first_name": f"x{n}", "last_name": f"y{n}", "postcode": "10115"}
              for n in range(30)]  # fmt: skip
    table = matching.table_build(people)
    pairs, report = matching.candidate_pairs(table, block_cap=10)
    assert len(pairs) < 30 * 29 // 2
    assert ("pc-ln", 30) not in report.oversized_blocks
    shared = matching.table_build([{"id": n, "email": "same@example.com"} for n in range(12)])
    _, report = matching.candidate_pairs(shared, block_cap=10)
    assert report.oversized_blocks == [("email", 12)]
