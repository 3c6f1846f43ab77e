"""Fuzzy matching (pure): blanks, guards, scores, clustering with do-not-merge."""

from __future__ import annotations

from dataclasses import replace

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
         "street": "Hauptstr. 5", "postcode": "10115", "city": "Berlin",
         "user_id": "u-1"}  # fmt: skip
    table, scores = score(a, {**a, "user_id": "u-2"})
    assert float(scores.total[0]) >= matching.DEFAULT_SPEC.auto_threshold  # the guard decides
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


def test_birth_date_relation_tells_typos_from_other_dates():
    relation = matching.birth_date_relation
    assert relation("19900314", "") == matching.DateRelation.UNKNOWN
    assert relation("19900314", "19900314") == matching.DateRelation.SAME
    assert relation("19900314", "19900315") == "typo"  # one digit changed
    assert relation("19900314", "19900341") == "typo"  # neighbouring digits swapped
    assert relation("19900314", "19901403") == "typo"  # day and month swapped
    assert relation("19900314", "19900328") == "typo"  # only the day wrong
    assert relation("19900314", "19850314") == "typo"  # only the year wrong
    assert relation("19900314", "19900827") == "different"  # month and day differ
    assert relation("19610402", "19941123") == "different"  # the household's two people
    assert matching.birth_dates_conflict("19900314", "19900328") is False
    assert matching.birth_dates_conflict("19900314", "19900827") is True


LENA = {"first_name": "lena", "last_name": "vogt", "birth_date": "19900314",
        "customer_id": "c-111", "email": "lena@example.de"}  # fmt: skip


def test_a_typo_in_the_birth_date_blocks_only_without_an_agreeing_name():
    typo = {**LENA, "birth_date": "19900315"}
    assert matching.birth_dates_block(LENA, typo) is False
    assert matching.birth_dates_block(LENA, {**typo, "first_name": ""}) is False  # no evidence
    assert matching.birth_dates_block(LENA, {**typo, "first_name": "anna"}) is True  # a sister
    assert matching.strong_conflicts(LENA, {**typo, "first_name": "anna"}) == [
        "different birth dates"
    ]


def test_a_different_birth_date_blocks_unless_name_and_customer_number_agree():
    other_date = {**LENA, "birth_date": "19610402"}
    assert matching.birth_dates_block(LENA, other_date) is False  # the date is the error
    assert matching.birth_dates_block(LENA, {**other_date, "customer_id": "c-112"}) is False
    assert matching.birth_dates_block(LENA, {**other_date, "customer_id": "c-999"}) is True
    assert matching.birth_dates_block(LENA, {**other_date, "customer_id": ""}) is True
    short = {**LENA, "customer_id": "c-1"}  # one character off a short number: another number
    assert matching.birth_dates_block(short, {**other_date, "customer_id": "c-2"}) is True
    # A shared e-mail is no excuse: households share addresses, phones and e-mails.
    no_number = {k: v for k, v in LENA.items() if k != "customer_id"}
    assert matching.birth_dates_block(no_number, {**no_number, "birth_date": "19610402"}) is True
    assert matching.birth_dates_block(LENA, {**other_date, "first_name": "anna"}) is True


HOME = {"street": "Hauptstr. 5", "postcode": "10115", "city": "Berlin"}


def test_one_odd_member_does_not_keep_a_cluster_from_the_same_person():
    # Lena's CRM record has a wrong birth date, admitted because name and customer number
    # agree; the shop writes only her initial. Pairwise, "L. Vogt, 1961" vs "Lena, 1990" is a
    # conflict, but the cluster has both dates already: all three are one person.
    rows = [
        {"id": 1, **HOME, **LENA},
        {"id": 2, **HOME, **LENA, "birth_date": "1961-04-02"},
        {"id": 3, **HOME, **LENA, "first_name": "L.", "birth_date": "1961-04-02"},
    ]
    table = matching.table_build(rows)
    assert matching.birth_dates_block(table.record(0), table.record(2)) is True
    pairs, _ = matching.candidate_pairs(table)
    decisions = matching.decide(table, matching.pairs_score(table, pairs))
    assert decisions.merges == [[1, 2, 3]]
    assert decisions.blocked == 0


def test_a_household_cluster_still_keeps_the_other_person_apart():
    dad = {"first_name": "Peter", "last_name": "Schulz", "phone": "+4930123456",
           "birth_date": "1961-04-02", **HOME}  # fmt: skip
    rows = [
        {"id": 1, **dad},
        {"id": 2, **dad, "first_name": "P."},
        {"id": 3, **dad, "first_name": "Lukas", "birth_date": "1994-11-23"},
        {"id": 4, **dad, "first_name": "Lukas", "birth_date": "1994-11-23"},
    ]
    table = matching.table_build(rows)
    pairs, _ = matching.candidate_pairs(table)
    decisions = matching.decide(table, matching.pairs_score(table, pairs))
    assert sorted(decisions.merges) == [[1, 2], [3, 4]]


KATHARINA = {"first_name": "Katharina", "last_name": "Schneider", "birth_date": "1985-07-09",
             "customer_id": "4711023", **HOME}  # fmt: skip
# The same person keyed again: no first name, typos in last name, customer number, postcode.
KATHARINA_AGAIN = {**KATHARINA, "first_name": "", "last_name": "Schnieder",
                   "customer_id": "4711032", "postcode": "10151"}  # fmt: skip


def test_a_pair_with_typos_in_two_strong_fields_and_the_same_birth_date_is_merged():
    table, scores = score(KATHARINA, KATHARINA_AGAIN)
    assert int(scores.rule[0]) == -1  # no match rule takes typos in customer number and postcode
    assert bool(scores.typo[0]) is True
    assert float(scores.total[0]) >= matching.DEFAULT_SPEC.typo_threshold
    assert matching.decide(table, scores).merges == [[1, 2]]
    # A birth date one typo off (one digit; day and month swapped) is still the same person.
    for typo in ("1985-07-08", "1985-09-07"):
        table, scores = score(KATHARINA, {**KATHARINA_AGAIN, "birth_date": typo})
        assert matching.decide(table, scores).merges == [[1, 2]], typo
    # With the typo rule off (as in rulesets made before it), the pair is only suggested.
    off = replace(matching.DEFAULT_SPEC, typo_threshold=None)
    decisions = matching.decide(*score(KATHARINA, KATHARINA_AGAIN), off)
    assert decisions.merges == []
    assert [s["rule"] for s in decisions.suggestions] == [""]


def test_the_typo_rule_never_fires_across_another_birth_date_or_a_conflicting_strong_field():
    other_date = {**KATHARINA_AGAIN, "birth_date": "1991-02-03"}
    table, scores = score(KATHARINA, other_date)
    assert bool(scores.typo[0]) is False
    decisions = matching.decide(table, scores)
    assert decisions.merges == []
    assert [(s["left"], s["right"]) for s in decisions.suggestions] == [(1, 2)]
    # No birth date on one side: no evidence for the guard, so no typo rule either.
    assert bool(score(KATHARINA, {**KATHARINA_AGAIN, "birth_date": ""})[1].typo[0]) is False
    # A twin: same birth date and address, another first name and customer number.
    twin = {**KATHARINA, "first_name": "Johanna", "customer_id": "4711099"}
    assert bool(score(KATHARINA, twin)[1].typo[0]) is False
    # Another phone or e-mail is a conflict even one digit off (only equal machine keys agree).
    phones = ({**KATHARINA, "phone": "+4930123456"}, {**KATHARINA_AGAIN, "phone": "+4930123457"})
    assert bool(score(*phones)[1].typo[0]) is False
    # Only one of first name, last name and customer number known alike: not enough.
    alone = {"last_name": "Schnieder", "birth_date": "1985-07-09", **HOME}
    assert bool(score(KATHARINA, alone)[1].typo[0]) is False


def test_a_record_joins_its_person_whose_cluster_already_holds_a_typo_of_its_birth_date():
    # Lena's second record has her birth date one digit off (admitted: the names
    # agree). Her shop record says "Leni" (too far from "Lena" to vouch for a typo'd date) but
    # has her exact birth date: it brings no date of its own, so it joins the cluster.
    rows = [
        {"id": 1, **HOME, **LENA},
        {"id": 2, **HOME, **LENA, "birth_date": "19900313"},
        {"id": 3, **HOME, **LENA, "first_name": "leni", "customer_id": ""},
    ]
    table = matching.table_build(rows)
    assert matching.birth_dates_block(table.record(1), table.record(2)) is True
    pairs, _ = matching.candidate_pairs(table)
    decisions = matching.decide(table, matching.pairs_score(table, pairs))
    assert decisions.merges == [[1, 2, 3]]
    assert decisions.blocked == 0


def test_a_customer_number_counts_like_a_user_id_and_another_one_says_little():
    parts = score({"customer_id": "4711023"}, {"customer_id": "4711023"})[1].explain(0)
    assert parts["customer_id"] == {"similarity": 1.0, "contribution": 10.0}
    parts = score({"customer_id": "4711023"}, {"customer_id": "9900001"})[1].explain(0)
    assert parts["customer_id"] == {"similarity": 0.0, "contribution": -1.0}
    # One character off in a short number is another number, not a typo.
    parts = score({"customer_id": "C-1"}, {"customer_id": "C-2"})[1].explain(0)
    assert parts["customer_id"] == {"similarity": 0.0, "contribution": -1.0}
    parts = score({"customer_id": "4711023"}, {"customer_id": "4711032"})[1].explain(0)
    assert parts["customer_id"] == {"similarity": 0.6, "contribution": 5.6}
