"""Untrusted strings leaving workbench: cells for spreadsheets (CSV injection) and Unicode forms.

Class names, texts and file names come from datasets. A CSV cell that starts with = + - @ (or a
tab or carriage return) runs as a formula when the file is opened in a spreadsheet; OWASP's advice
is to prefix such cells with a single quote, which spreadsheets show and do not run. Spreadsheets
also skip leading spaces, quotes and line breaks before reading a formula, and some locales read
the full-width signs (＝ ＋ － ＠) as the ASCII ones: those cells are quoted too.

A spreadsheet set to another separator (`;` in much of Europe) splits a comma-separated file at
characters inside a cell: `x;=1+1;` would become the cells `x`, `=1+1`. So every text cell is
written quoted (`write_csv`), and a formula sign that follows a separator or a line break inside a
cell gets the same leading quote: whichever separator a spreadsheet splits at, no piece of a
cell starts a formula.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

FORMULA_SIGNS = "=+-@\uff1d\uff0b\uff0d\uff20"
FORMULA_PREFIXES = (*FORMULA_SIGNS, "\t", "\r", "\n")
SEPARATORS = ",;\t|\r\n"
# a separator or line break, then spaces or quotes, then a formula sign: the quote goes before the sign
_LEAD = re.compile(r'[\s"]*')
_INSIDE = re.compile(f"([{re.escape(SEPARATORS)}][\\s\"]*)(?=[{re.escape(FORMULA_SIGNS)}])")


def spreadsheet_safe(value: Any) -> Any:
    """`value` for a CSV cell: strings that a spreadsheet would run as a formula, whole or split at a
    separator inside them, get a single quote before the formula sign; numbers and everything else
    pass unchanged."""
    if not isinstance(value, str):
        return value
    lead = len(_LEAD.match(value).group())  # what a spreadsheet skips before reading a formula
    dangerous = value.startswith(FORMULA_PREFIXES) or value[lead:].startswith(FORMULA_PREFIXES)
    value = _INSIDE.sub(r"\1'", value)
    return "'" + value if dangerous else value


def write_csv(path: str | Path, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV file for spreadsheets: every cell through `spreadsheet_safe`, every text cell quoted
    (numbers are not), UTF-8."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow([spreadsheet_safe(c) for c in header])
        writer.writerows([spreadsheet_safe(v) for v in row] for row in rows)
    return path


def same_form(text: str) -> str:
    """NFC form: names that differ only in how an accent is encoded ("é" as one code point or as
    "e" + a combining accent) become one name, as a person reads them."""
    return unicodedata.normalize("NFC", text)
