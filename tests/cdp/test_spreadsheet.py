"""A CSV cell a spreadsheet would run as a formula gets a leading apostrophe; data stays data."""

from __future__ import annotations

import pytest

from cdp.spreadsheet import spreadsheet_safe


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '=HYPERLINK("http://evil.example","click")',
            '\'=HYPERLINK("http://evil.example","click")',
        ),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("+49 30 1234567", "+49 30 1234567"),
        ("+1 (555) 010-0100", "+1 (555) 010-0100"),
        ("-12.5", "-12.5"),
        ("Lena = Müller", "Lena = Müller"),
        ("", ""),
        (42, 42),
        (None, None),
    ],
)
def test_spreadsheet_safe(value, expected):
    assert spreadsheet_safe(value) == expected
