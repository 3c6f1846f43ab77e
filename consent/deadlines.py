"""Legal deadlines of data-subject requests: pure functions over dates (no ORM).

- GDPR (Art. 12(3)): one month from receipt; extendable once by two further months when the
  extension and its reason are recorded within the first month. A period ending on a Saturday
  or Sunday (or a configured holiday) ends on the next working day (Regulation 1182/71 Art.
  3(4)).
- CCPA / CPRA (Cal. Code Regs. tit. 11 §7021, §7026): acknowledge within 10 business days;
  respond within 45 calendar days; extendable once by another 45 with notice within the first
  45. An opt-out of sale or sharing is honoured within 15 business days.

Business days are Monday to Friday, minus the holidays given.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

GDPR = "gdpr"
CCPA = "ccpa"
OBJECTION = "objection"

CCPA_ACK_BUSINESS_DAYS = 10
CCPA_RESPONSE_DAYS = 45
CCPA_EXTENSION_DAYS = 45
CCPA_OPT_OUT_BUSINESS_DAYS = 15
GDPR_MONTHS = 1
GDPR_EXTENSION_MONTHS = 2


class DeadlineError(ValueError):
    """An extension that the law does not allow (too late, twice); the message says why."""


@dataclass(frozen=True)
class Deadlines:
    """When a request must be answered, and for CCPA when it must be acknowledged."""

    due: date
    acknowledge_by: date | None = None


def is_business_day(day: date, holidays: Iterable[date] = ()) -> bool:
    return day.weekday() < 5 and day not in set(holidays)


def add_business_days(start: date, days: int, holidays: Iterable[date] = ()) -> date:
    """The date ``days`` business days after ``start`` (``start`` itself does not count)."""
    holidays = set(holidays)
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_business_day(current, holidays):
            remaining -= 1
    return current


def add_months(start: date, months: int) -> date:
    """Same day ``months`` later; the last day of the month when that day does not exist."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def next_working_day(day: date, holidays: Iterable[date] = ()) -> date:
    holidays = set(holidays)
    while not is_business_day(day, holidays):
        day += timedelta(days=1)
    return day


def request_deadlines(
    *, regime: str, request_type: str, received: date, holidays: Iterable[date] = ()
) -> Deadlines:
    """The deadlines of a request received on ``received`` (a date in the workspace zone)."""
    holidays = set(holidays)
    if regime == GDPR:
        return Deadlines(due=next_working_day(add_months(received, GDPR_MONTHS), holidays))
    if regime == CCPA:
        acknowledge = add_business_days(received, CCPA_ACK_BUSINESS_DAYS, holidays)
        if request_type == OBJECTION:
            return Deadlines(due=add_business_days(received, CCPA_OPT_OUT_BUSINESS_DAYS, holidays))
        return Deadlines(
            due=received + timedelta(days=CCPA_RESPONSE_DAYS), acknowledge_by=acknowledge
        )
    raise ValueError(f"unknown regime {regime!r}")


def extended_due(
    *,
    regime: str,
    request_type: str,
    received: date,
    today: date,
    already_extended: bool,
    reason: str,
    holidays: Iterable[date] = (),
) -> date:
    """The new due date of an extension recorded on ``today``, or DeadlineError."""
    if already_extended:
        raise DeadlineError("This request has already been extended; the law allows it once.")
    if not reason.strip():
        raise DeadlineError("An extension needs a reason that is given to the person.")
    holidays = set(holidays)
    if regime == GDPR:
        first_period_end = next_working_day(add_months(received, GDPR_MONTHS), holidays)
        if today > first_period_end:
            raise DeadlineError(
                f"A GDPR extension must be recorded within the first month "
                f"(by {first_period_end.isoformat()})."
            )
        months = GDPR_MONTHS + GDPR_EXTENSION_MONTHS
        return next_working_day(add_months(received, months), holidays)
    if regime == CCPA:
        if request_type == OBJECTION:
            raise DeadlineError("An opt-out of sale or sharing cannot be extended.")
        first_period_end = received + timedelta(days=CCPA_RESPONSE_DAYS)
        if today > first_period_end:
            raise DeadlineError(
                f"A CCPA extension must be noticed within the first 45 days "
                f"(by {first_period_end.isoformat()})."
            )
        return first_period_end + timedelta(days=CCPA_EXTENSION_DAYS)
    raise ValueError(f"unknown regime {regime!r}")


def days_left(due: date, today: date) -> int:
    """Calendar days until the due date: 0 on the day, negative when overdue."""
    return (due - today).days
