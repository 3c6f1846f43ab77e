"""Deadline rules: GDPR month (+2 with a reason in the first month), CCPA 10/45/+45, 15 days."""

from __future__ import annotations

from datetime import date

import pytest

from consent.deadlines import (
    DeadlineError,
    add_business_days,
    add_months,
    days_left,
    extended_due,
    request_deadlines,
)


def test_business_days_skip_weekends_and_holidays():
    friday = date(2026, 1, 2)
    assert add_business_days(friday, 1) == date(2026, 1, 5)  # Monday
    assert add_business_days(friday, 10) == date(2026, 1, 16)
    assert add_business_days(friday, 10, holidays=[date(2026, 1, 6)]) == date(2026, 1, 19)


def test_add_months_clamps_to_the_last_day():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


def test_gdpr_one_month_from_receipt():
    assert request_deadlines(regime="gdpr", request_type="access", received=date(2026, 3, 10)) == (
        request_deadlines(regime="gdpr", request_type="erasure", received=date(2026, 3, 10))
    )
    due = request_deadlines(regime="gdpr", request_type="access", received=date(2026, 3, 10)).due
    assert due == date(2026, 4, 10)  # a Friday


def test_gdpr_deadline_on_a_weekend_moves_to_monday():
    # 2026-01-10 + 1 month = 2026-02-10 (Tue); 2026-01-14 + 1 month = 2026-02-14 (Sat)
    deadlines = request_deadlines(regime="gdpr", request_type="access", received=date(2026, 1, 14))
    assert deadlines.due == date(2026, 2, 16)
    assert deadlines.acknowledge_by is None


def test_gdpr_extension_by_two_months_within_the_first_month_only():
    received = date(2026, 3, 10)
    due = extended_due(
        regime="gdpr",
        request_type="access",
        received=received,
        today=date(2026, 4, 10),
        already_extended=False,
        reason="complex: 14 source systems",
    )
    assert due == date(2026, 6, 10)
    with pytest.raises(DeadlineError, match="within the first month"):
        extended_due(
            regime="gdpr",
            request_type="access",
            received=received,
            today=date(2026, 4, 11),
            already_extended=False,
            reason="too late",
        )
    with pytest.raises(DeadlineError, match="reason"):
        extended_due(
            regime="gdpr",
            request_type="access",
            received=received,
            today=date(2026, 3, 20),
            already_extended=False,
            reason="  ",
        )
    with pytest.raises(DeadlineError, match="already been extended"):
        extended_due(
            regime="gdpr",
            request_type="access",
            received=received,
            today=date(2026, 3, 20),
            already_extended=True,
            reason="again",
        )


def test_ccpa_acknowledge_in_10_business_days_respond_in_45_calendar_days():
    received = date(2026, 5, 1)  # a Friday
    deadlines = request_deadlines(regime="ccpa", request_type="access", received=received)
    assert deadlines.acknowledge_by == date(2026, 5, 15)
    assert deadlines.due == date(2026, 6, 15)  # 45 calendar days, weekends included


def test_ccpa_extension_once_by_45_days_noticed_within_the_first_45():
    received = date(2026, 5, 1)
    due = extended_due(
        regime="ccpa",
        request_type="erasure",
        received=received,
        today=date(2026, 6, 15),
        already_extended=False,
        reason="volume of data",
    )
    assert due == date(2026, 7, 30)
    with pytest.raises(DeadlineError, match="first 45 days"):
        extended_due(
            regime="ccpa",
            request_type="erasure",
            received=received,
            today=date(2026, 6, 16),
            already_extended=False,
            reason="late",
        )
    with pytest.raises(DeadlineError, match="already been extended"):
        extended_due(
            regime="ccpa",
            request_type="erasure",
            received=received,
            today=date(2026, 5, 20),
            already_extended=True,
            reason="a second time",
        )


def test_ccpa_opt_out_of_sale_within_15_business_days_and_not_extendable():
    received = date(2026, 5, 1)
    deadlines = request_deadlines(regime="ccpa", request_type="objection", received=received)
    assert deadlines.due == date(2026, 5, 22)
    with pytest.raises(DeadlineError, match="cannot be extended"):
        extended_due(
            regime="ccpa",
            request_type="objection",
            received=received,
            today=date(2026, 5, 4),
            already_extended=False,
            reason="x",
        )


def test_days_left_counts_down_and_goes_negative():
    assert days_left(date(2026, 5, 22), date(2026, 5, 15)) == 7
    assert days_left(date(2026, 5, 22), date(2026, 5, 22)) == 0
    assert days_left(date(2026, 5, 22), date(2026, 5, 25)) == -3
