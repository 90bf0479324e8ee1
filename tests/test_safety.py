"""workbench.safety: which CSV cells a spreadsheet would run as formulas, and the NFC form."""

from __future__ import annotations

import pytest

from workbench.safety import same_form, spreadsheet_safe


@pytest.mark.parametrize("cell", [
    "=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tx", "\r=1", "\n=1",
    " =1+1", "  @x", "\u3000=1", "\uff1dcmd", "\uff0b1", "\uff0d1", "\uff20x",
])
def test_cells_a_spreadsheet_would_run_get_a_leading_quote(cell: str) -> None:
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("value", ["cat", "a=b", "3", "", "x-ray", "e-mail@x", 3, 2.5, None])
def test_plain_cells_and_non_strings_pass_unchanged(value) -> None:
    assert spreadsheet_safe(value) == value


def test_accents_written_two_ways_become_one_name() -> None:
    assert same_form("cafe\u0301") == same_form("caf\u00e9") == "caf\u00e9"
