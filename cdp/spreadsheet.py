"""CSV files people open in a spreadsheet: a cell must never run as a formula.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and some read a leading tab
or carriage return the same way), so a value like ``=HYPERLINK("http://evil", "click")`` in a
customer's name would become a live link or worse (OWASP "CSV injection"). Files meant for
people (the rejected rows of an import, a data-subject access export) pass every text cell
through ``spreadsheet_safe``; files meant for other systems (activation exports) keep values
exactly as they are.
"""

from __future__ import annotations

import re

# A signed number or phone number is data, not a formula: "+49 30 1234567", "-12.5", "+1 (555) 010".
_SIGNED_NUMBER = re.compile(r"[+-][\d\s().,/-]*\Z")


def spreadsheet_safe(value):
    """``value`` with a leading apostrophe if a spreadsheet would read it as a formula."""
    if not isinstance(value, str) or not value:
        return value
    first = value[0]
    if first in "=@\t\r" or (first in "+-" and not _SIGNED_NUMBER.match(value)):
        return "'" + value
    return value
