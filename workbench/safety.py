"""Untrusted strings leaving workbench: cells for spreadsheets (CSV injection) and Unicode forms.

Class names, texts and file names come from datasets. A CSV cell that starts with = + - @ (or a
tab or carriage return) runs as a formula when the file is opened in a spreadsheet; OWASP's advice
is to prefix such cells with a single quote, which spreadsheets show and do not run. Spreadsheets
also skip leading spaces and line breaks before reading a formula, and some locales read the
full-width signs (＝ ＋ － ＠) as the ASCII ones: those cells are quoted too.
"""

from __future__ import annotations

import unicodedata
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_safe(value: Any) -> Any:
    """`value` for a CSV cell: strings that a spreadsheet would run as a formula get a leading
    quote; numbers and everything else pass unchanged."""
    if isinstance(value, str) and (value.startswith(FORMULA_PREFIXES) or value.lstrip().startswith(FORMULA_PREFIXES)):
        return "'" + value
    return value


def same_form(text: str) -> str:
    """NFC form: names that differ only in how an accent is encoded ("é" as one code point or as
    "e" + a combining accent) become one name, as a person reads them."""
    return unicodedata.normalize("NFC", text)
