"""Code that workbench writes for people to run (`to_code`, `to_script`): user strings only as literals.

Class names, run names, folder names and settings come from users, datasets and checkpoints. In
written code they only ever become Python literals, built as AST nodes (`literal`: ast.Constant,
written by `ast.unparse`, i.e. `repr`), or comment text with every line break removed (`comment`).
`render` turns statements into text and parses the text back: the tree must be exactly the one
that was built, and every call in it one the caller allowed. A value that cannot be a literal
(numpy scalars are converted first, NaN is refused) is refused before any code is written.
"""

from __future__ import annotations

import ast
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError


def plain(value: Any, where: str = "value") -> Any:
    """`value` as plain Python data (None, bool, int, finite float, str, lists, dicts with str keys):
    numpy scalars and arrays become Python numbers and lists, tuples lists. ConfigError otherwise."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) > 2**63:
            raise ConfigError(f"{where} is {value}; code and checkpoints hold whole numbers up to 2**63 only.")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} is {value!r}; code and checkpoints hold finite numbers only.")
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), where)
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            key = plain(k, f"a key of {where}")
            if not isinstance(key, str):
                raise ConfigError(f"{where} has the key {key!r}; its keys must be strings.")
            out[key] = plain(v, f"{where}[{key!r}]")
        return out
    raise ConfigError(f"{where} is a {type(value).__name__} ({str(value)[:60]!r}), which cannot be written as code "
                      "or saved; pass a number, a string, or a list or dict of them.")


@dataclass(frozen=True)
class Ref:
    """A name the code refers to (`data.num_classes`, `wb.last`), never a user string."""

    dotted: str

    def node(self) -> ast.expr:
        first, *rest = self.dotted.split(".")
        node: ast.expr = ast.Name(first, ast.Load())
        for attr in rest:
            node = ast.Attribute(node, attr, ast.Load())
        return node


def literal(value: Any) -> ast.expr:
    """The AST of a literal for plain data (`plain`); a Ref or an AST node passes as it is."""
    if isinstance(value, Ref):
        return value.node()
    if isinstance(value, ast.expr):
        return value
    value = plain(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (value < 0 or math.copysign(1, value) < 0):
        return ast.UnaryOp(ast.USub(), ast.Constant(-value))  # how `-1` parses back
    if isinstance(value, list):
        return ast.List([literal(v) for v in value], ast.Load())
    if isinstance(value, dict):
        return ast.Dict([ast.Constant(k) for k in value], [literal(v) for v in value.values()])
    return ast.Constant(value)


def call(func: str | ast.expr, *args: Any, **kwargs: Any) -> ast.Call:
    """`func(*args, **kwargs)` with every argument a literal (or a Ref / a nested call)."""
    for k in kwargs:
        if not k.isidentifier() or k in KEYWORDS:
            raise ConfigError(f"{k!r} cannot be a keyword argument in code.")
    target = Ref(func).node() if isinstance(func, str) else func
    return ast.Call(target, [literal(a) for a in args], [ast.keyword(k, literal(v)) for k, v in kwargs.items()])


def method(receiver: ast.expr, name: str, *args: Any, **kwargs: Any) -> ast.Call:
    """`receiver.name(...)`: a call chained on another (`wb.load_data(...).subset(...)`)."""
    return call(ast.Attribute(receiver, name, ast.Load()), *args, **kwargs)


def assign(name: str, value: ast.expr) -> ast.stmt:
    return ast.Assign([ast.Name(name, ast.Store())], value)


def expr(value: ast.expr) -> ast.stmt:
    return ast.Expr(value)


KEYWORDS = frozenset(__import__("keyword").kwlist) | frozenset(__import__("keyword").softkwlist)


def comment(text: str) -> str:
    """Comment text with no way out of its line: line breaks and other control characters become
    spaces (Python ends a comment only at a line break; a NUL would stop the parser)."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in str(text)).rstrip()


@dataclass(frozen=True)
class Line:
    """One line of written code: a statement, a comment after it, or a comment (or nothing) alone."""

    stmt: ast.stmt | None = None
    note: str | None = None

    def text(self) -> str:
        code = ast.unparse(ast.fix_missing_locations(ast.Module([self.stmt], []))) if self.stmt is not None else ""
        if self.note:
            return f"{code}  # {comment(self.note)}" if code else f"# {comment(self.note)}"
        return code


def call_names(tree: ast.AST) -> list[str]:
    """The dotted name of every call in `tree` in source order; a call on a call's result is
    written `().name` (`wb.load_data(...).subset(...)` gives 'wb.load_data' and '().subset')."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            out.append(_dotted(node.func))
    return out


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return "()"
    return f"<{type(node).__name__}>"


def check_tree(text: str, expected: Sequence[ast.stmt], allowed_calls: Iterable[str], what: str) -> ast.Module:
    """Parse `text` back: it must be exactly the statements `expected` (comments aside), and call
    only `allowed_calls`. ConfigError (with the reason) when not: the code is not handed out."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ConfigError(f"The {what} workbench wrote does not parse ({exc.msg}, line {exc.lineno}); it was not "
                          "handed out. Please report this with the names and settings of the run.") from exc
    built = ast.fix_missing_locations(ast.Module(list(expected), []))
    if ast.dump(tree) != ast.dump(built):
        raise ConfigError(f"The {what} workbench wrote parses to other statements than it built; it was not handed "
                          "out. Please report this with the names and settings of the run.")
    allowed = set(allowed_calls)
    extra = [name for name in call_names(tree) if name not in allowed]
    if extra:
        raise ConfigError(f"The {what} workbench wrote calls {extra[:3]}, which its recording does not name; it was "
                          "not handed out. Please report this.")
    return tree


def render(lines: Sequence[Line], allowed_calls: Iterable[str], what: str = "code") -> str:
    """The text of `lines`, checked by parsing it back (check_tree)."""
    text = "\n".join(line.text() for line in lines) + "\n"
    check_tree(text, [line.stmt for line in lines if line.stmt is not None], allowed_calls, what)
    return text
