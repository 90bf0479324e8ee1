"""workbench.safety: which CSV cells a spreadsheet would run as formulas, and the NFC form."""

from __future__ import annotations

import pytest

from workbench.safety import same_form, spreadsheet_safe


@pytest.mark.parametrize("cell", [
    "=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tx", "\r=1", "\n=1",
    " =1+1", "  @x", "\u3000=1", "\uff1dcmd", "\uff0b1", "\uff0d1", "\uff20x",
])
def test_cells_a_spreadsheet_would_run_get_a_leading_quote(cell: str) -> None:
    safe = spreadsheet_safe(cell)
    assert safe[0] == "'" and safe.replace("'", "") == cell.replace("'", "")  # quotes added, nothing else changed
    if not any(c in cell for c in "\t\r\n"):
        assert safe == "'" + cell


@pytest.mark.parametrize("value", ["cat", "a=b", "3", "", "x-ray", "e-mail@x", 3, 2.5, None])
def test_plain_cells_and_non_strings_pass_unchanged(value) -> None:
    assert spreadsheet_safe(value) == value


def test_accents_written_two_ways_become_one_name() -> None:
    assert same_form("cafe\u0301") == same_form("caf\u00e9") == "caf\u00e9"


# ---- CSV files: every text cell quoted, no piece of a cell starts a formula at any separator ----
import csv  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from workbench.safety import FORMULA_SIGNS, write_csv  # noqa: E402

PIECES = ["=1+1", "+1", "-2", "@SUM(A1)", "\uff1dx", ";", ",", "\t", "|", "\n", "\r", '"', "'", " ", "x", "cmd|' /C calc'!A0"]
cell = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=6).map("".join)


def test_a_semicolon_spreadsheet_cannot_split_a_cell_into_a_formula(tmp_path) -> None:
    path = write_csv(tmp_path / "t.csv", ["id", "note"], [[1, "x;=1+1;"], [2, "a, -b"]])
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[1] == "1,\"x;'=1+1;\""  # quoted, and the formula after ';' neutralised
    assert [piece.strip('" ') for piece in text.splitlines()[1].split(";")] == ["1,\"x", "'=1+1", ""]
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    assert rows == [["id", "note"], ["1", "x;'=1+1;"], ["2", "a, '-b"]]


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(cell, min_size=1, max_size=3), min_size=1, max_size=4))
def test_no_piece_of_any_cell_starts_a_formula_whatever_the_separator(tmp_path_factory, rows) -> None:
    path = write_csv(tmp_path_factory.mktemp("csv") / "t.csv", ["a", "b", "c"][:len(rows[0])], rows)
    text = path.read_text(encoding="utf-8")
    for separator in (",", ";", "\t", "|"):
        for line in text.replace("\r", "\n").split("\n"):
            for piece in line.split(separator):
                assert not piece.lstrip(' \t"').startswith(tuple(FORMULA_SIGNS)), (separator, line)
    back = list(csv.reader(path.open(newline="", encoding="utf-8")))[1:]
    assert back == [[spreadsheet_safe(v) for v in row] for row in rows]  # each cell is read back whole
    quoted = list(csv.reader(path.open(newline="", encoding="utf-8"), quoting=csv.QUOTE_NONNUMERIC))
    assert all(isinstance(v, str) for row in quoted for v in row)  # an unquoted cell would be read as a number
