"""Equivalence of math answers (GSM8K numbers, MATH expressions).

:func:`math_equiv` decides whether an extracted answer equals the gold answer, in this order:

1. string equality after LaTeX normalisation (:func:`normalize_math`: ``$``, ``\\left``/``\\right``, spacing
   commands, ``\\dfrac``/``\\tfrac`` -> ``\\frac``, ``\\frac12`` -> ``\\frac{1}{2}``, ``\\sqrt2`` ->
   ``\\sqrt{2}``, ``^\\circ``, ``\\%``, ``\\text{...}`` unwrapped, a leading ``x =`` dropped, thousands commas
   removed, whitespace removed);
2. numbers (:func:`parse_number`: ``1,000``, ``5.0``, ``$18``, ``50%``, ``18 dollars``, ``10\\text{ cm}``)
   compared exactly when both are integers, else with a relative tolerance of 1e-9;
3. tuples, intervals and comma lists compared elementwise (brackets must agree, so ``[1,2)`` is not
   ``(1,2)``; bare comma lists and ``\\{...\\}`` sets ignore order);
4. symbolic equivalence with sympy: the LaTeX is translated to a small whitelisted expression language
   (``\\frac``, ``\\sqrt``, ``^``, ``\\pi``, ``\\infty``, trig/log functions, implicit multiplication, ``i``),
   parsed with ``parse_expr`` and compared numerically (constants) or at fixed random points (expressions with
   variables). Inputs longer than 300 characters or with huge exponents are refused, and on the main thread a
   timer aborts sympy after ``timeout`` seconds.
"""

from __future__ import annotations

import cmath
import math
import random
import re
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["math_equiv", "normalize_math", "parse_number", "split_elements"]

T = TypeVar("T")

_MAX_LEN = 300


# ----------------------------------------------------------------------------------------- normalisation


def _brace_arg(s: str, i: int) -> tuple[str, int] | None:
    """The balanced ``{...}`` group starting at ``s[i]`` (content, index after it), else None."""
    if i >= len(s) or s[i] != "{":
        return None
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
    return None


def _unwrap_commands(s: str, names: tuple[str, ...], keep: bool) -> str:
    """Replace ``\\name{X}`` by ``X`` (keep) or by nothing."""
    pat = re.compile(r"\\(?:" + "|".join(names) + r")\s*(?=\{)")
    while True:
        m = pat.search(s)
        if not m:
            return s
        arg = _brace_arg(s, m.end())
        if arg is None:
            return s[: m.start()] + s[m.end() :]
        s = s[: m.start()] + (arg[0] if keep else "") + s[arg[1] :]


_TEXT_CMDS = ("text", "textbf", "textit", "textnormal", "mathrm", "mathbf", "mbox", "operatorname")


def _strip_outer(s: str) -> str:
    s = s.strip()
    changed = True
    while changed:
        changed = False
        for a, b in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(a) and s.endswith(b) and len(s) >= len(a) + len(b):
                s = s[len(a) : len(s) - len(b)].strip()
                changed = True
    return s


def _light(s: str) -> str:
    """Normalisation that keeps spaces and ``\\text`` (used before unit stripping)."""
    s = _strip_outer(str(s))
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[!,;:> ]|~|\\quad|\\qquad|\\displaystyle", " ", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    return s.strip().rstrip(".").strip()


def normalize_math(s: str) -> str:
    """Canonical string form of an answer (see the module docstring); comparing these is step 1."""
    s = _light(s)
    s = _unwrap_commands(s, _TEXT_CMDS, keep=True)
    s = s.replace("\\{", "{").replace("\\}", "}")
    # \frac12 -> \frac{1}{2}, \frac1{2} -> \frac{1}{2}, \frac{1}2 -> \frac{1}{2}, \sqrt2 -> \sqrt{2}
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*(\d)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt\s*(\d+|[a-zA-Z])", r"\\sqrt{\1}", s)
    s = re.sub(r"\s+", "", s)
    # a single leading "x=" / "k =" (not an equation with more "=")
    m = re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?=(.+)", s)
    if m and "=" not in m.group(1):
        s = m.group(1)
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    s = re.sub(r"(?<![\d])\.(\d)", r"0.\1", s)
    return s.rstrip(".")


_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?|[-+]?\.\d+"
_NUM_WITH_UNIT = re.compile(
    r"(?P<num>" + _NUM + r")\s*(?:\\(?:text|mbox|mathrm)\s*\{[^{}]*\}|\s[a-zA-Z]{2,}[a-zA-Z\s^0-9.]*)?"
)


def parse_number(s: str) -> float | None:
    """A plain number (thousands commas, ``$``, ``%``, trailing units allowed) or a simple fraction; else None."""
    if s is None:
        return None
    t = _light(s)
    m = _NUM_WITH_UNIT.fullmatch(t)
    if m:
        try:
            return float(m.group("num").replace(",", ""))
        except ValueError:
            return None
    t = re.sub(r"\s+", "", t)
    m2 = re.fullmatch(r"([-+]?)(?:\\frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))", t)
    if m2:
        num = m2.group(2) or m2.group(4)
        den = m2.group(3) or m2.group(5)
        if int(den) == 0:
            return None
        v = int(num) / int(den)
        return -v if m2.group(1) == "-" else v
    return None


# ----------------------------------------------------------------------------------------- tuples


_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _top_level_split(s: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _encloses(s: str) -> bool:
    """True when the first char's bracket closes at the last char (any bracket kind, for intervals)."""
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return False
    return depth == 0


def split_elements(s: str) -> tuple[str, str, list[str]] | None:
    """``(open, close, elements)`` for a normalised tuple/interval/set/comma list, else None.

    ``(1,2)`` -> ``("(", ")", ["1", "2"])``; ``1,-2`` -> ``("", "", ["1", "-2"])``.
    """
    if len(s) >= 2 and s[0] in _PAIRS and s[-1] in ")]}" and _encloses(s):
        inner = _top_level_split(s[1:-1])
        if len(inner) >= 2:
            return s[0], s[-1], inner
        return None
    parts = _top_level_split(s)
    if len(parts) >= 2 and all(p for p in parts):
        return "", "", parts
    return None


# ----------------------------------------------------------------------------------------- sympy


class _Timeout(Exception):
    pass


def _with_timeout(fn: Callable[[], T], seconds: float) -> T:
    """Run ``fn`` with a SIGALRM timer when on the main thread of a Unix process (otherwise unguarded)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return fn()
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:  # someone else owns the timer
        return fn()

    def _raise(signum: int, frame: Any) -> None:
        raise _Timeout

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_FUNCS = {
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "arcsin",
    "arccos",
    "arctan",
    "sinh",
    "cosh",
    "tanh",
    "log",
    "ln",
    "exp",
}
_ALLOWED_NAMES = {"sqrt", "pi", "oo", "I", "E", "binomial", "root", "asin", "acos", "atan", "Abs"} | _FUNCS


def _replace_cmd_args(s: str, cmd: str, nargs: int, fmt: Callable[[list[str]], str]) -> str | None:
    pat = re.compile(r"\\" + cmd + r"(?![a-zA-Z])\s*")
    while True:
        m = pat.search(s)
        if not m:
            return s
        i = m.end()
        args: list[str] = []
        opt: str | None = None
        if cmd == "sqrt" and i < len(s) and s[i] == "[":
            j = s.find("]", i)
            if j < 0:
                return None
            opt = s[i + 1 : j]
            i = j + 1
        for _ in range(nargs):
            while i < len(s) and s[i] == " ":
                i += 1
            got = _brace_arg(s, i)
            if got is None:
                if i < len(s) and (s[i].isalnum()):
                    got = (s[i], i + 1)
                else:
                    return None
            args.append(got[0])
            i = got[1]
        if opt is not None:
            args.append(opt)
        s = s[: m.start()] + fmt(args) + s[i:]


_CMD_RULES: tuple[tuple[str, int, Callable[[list[str]], str]], ...] = (
    ("frac", 2, lambda a: f"(({a[0]})/({a[1]}))"),
    ("binom", 2, lambda a: f"binomial(({a[0]}),({a[1]}))"),
    ("sqrt", 1, lambda a: f"(({a[0]})**(1/({a[1]})))" if len(a) == 2 else f"sqrt({a[0]})"),
)


def _latex_to_expr_str(s: str) -> str | None:
    """Translate normalised LaTeX to a whitelisted sympy expression string; None when out of scope."""
    if len(s) > _MAX_LEN or "_" in s or "=" in s or "!" in s:
        return None
    t = s
    for cmd, nargs, fmt in _CMD_RULES:
        got = _replace_cmd_args(t, cmd, nargs, fmt)
        if got is None:
            return None
        t = got
    t = re.sub(r"\\(?:cdot|times)", "*", t)
    t = t.replace("\\div", "/").replace("\\pi", " pi ").replace("\\infty", " oo ").replace("π", " pi ")
    t = re.sub(r"\\(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|ln|log|exp)", r" \1 ", t)
    t = t.replace("^", "**").replace("{", "(").replace("}", ")")
    if "\\" in t or re.search(r"[^0-9a-zA-Z+\-*/(). ,]", t):
        return None
    for name in re.findall(r"[A-Za-z]+", t):
        if name not in _ALLOWED_NAMES and len(name) > 3:
            return None
    # guard against huge powers such as 10**10**10 or 2**99999
    if re.search(r"\*\*\s*\(?\s*\d{4,}", t) or t.count("**") > 6:
        return None
    for m in re.finditer(r"\*\*\s*\(", t):  # no power inside a parenthesised exponent
        depth, j = 0, m.end() - 1
        while j < len(t):
            depth += {"(": 1, ")": -1}.get(t[j], 0)
            if depth == 0:
                break
            j += 1
        if "**" in t[m.end() : j]:
            return None
    return t


def _to_sympy(s: str) -> Any:
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    t = _latex_to_expr_str(s)
    if t is None:
        return None
    local = {
        "i": sympy.I,
        "e": sympy.E,
        "pi": sympy.pi,
        "oo": sympy.oo,
        "ln": sympy.log,
        "arcsin": sympy.asin,
        "arccos": sympy.acos,
        "arctan": sympy.atan,
    }
    trans = (*standard_transformations, implicit_multiplication_application, convert_xor)
    return parse_expr(t, local_dict=local, transformations=trans, evaluate=True)


def _num_close(a: complex, b: complex) -> bool:
    if cmath.isinf(a) or cmath.isinf(b):
        return a == b
    if a.imag == 0 and b.imag == 0 and a.real.is_integer() and b.real.is_integer():
        return a == b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _sympy_equal(a: str, b: str, timeout: float) -> bool:
    import sympy

    def run() -> bool:
        ea, eb = _to_sympy(a), _to_sympy(b)
        if ea is None or eb is None:
            return False
        if isinstance(ea, tuple) or isinstance(eb, tuple):
            return False
        syms = sorted((ea.free_symbols | eb.free_symbols), key=str)
        if not syms:
            va, vb = complex(sympy.N(ea, 30)), complex(sympy.N(eb, 30))
            return _num_close(va, vb)
        rng = random.Random(1234)
        for _ in range(4):
            point = {x: sympy.Float(rng.uniform(0.5, 2.5)) for x in syms}
            va = complex(sympy.N(ea.subs(point), 30))
            vb = complex(sympy.N(eb.subs(point), 30))
            if math.isnan(va.real) or math.isnan(vb.real) or not _num_close(va, vb):
                return False
        return True

    try:
        return _with_timeout(run, timeout)
    except _Timeout:
        return False
    except Exception:  # noqa: BLE001 - any parse/eval failure means "not shown equal"
        return False


# ----------------------------------------------------------------------------------------- public


_WORD = re.compile(r"[A-Za-z]{2,}")


def _atom_equiv(a: str, b: str, timeout: float) -> bool:
    if a == b or a.lower() == b.lower():
        return True
    na, nb = parse_number(a), parse_number(b)
    if na is not None and nb is not None:
        return _num_close(complex(na), complex(nb))
    if any(
        _WORD.fullmatch(x) and x not in ("pi", "oo") for x in (a, b)
    ):  # words ("no" vs "on") are not products of symbols
        return False
    return _sympy_equal(a, b, timeout)


def _norm_equiv(a: str, b: str, timeout: float) -> bool:
    if a == b or a.lower() == b.lower():
        return True
    ea, eb = split_elements(a), split_elements(b)
    if ea is not None or eb is not None:
        if ea is None or eb is None:
            return False
        (oa, ca, xa), (ob, cb, xb) = ea, eb
        if len(xa) != len(xb) or oa != ob or ca != cb:
            return False
        if oa in ("", "{"):  # bare comma lists and sets: order does not matter
            remaining = list(xb)
            for x in xa:
                for k, y in enumerate(remaining):
                    if _norm_equiv(x, y, timeout):
                        del remaining[k]
                        break
                else:
                    return False
            return True
        return all(_norm_equiv(x, y, timeout) for x, y in zip(xa, xb, strict=True))
    return _atom_equiv(a, b, timeout)


def math_equiv(pred: str | None, gold: str, *, timeout: float = 3.0) -> bool:
    """True when ``pred`` is equivalent to ``gold``; see the module docstring for the steps."""
    if pred is None:
        return False
    pred, gold = str(pred), str(gold)
    if not pred.strip():
        return False
    # numbers first, on the lightly normalised strings (units, commas, $ and % allowed)
    np_, ng = parse_number(pred), parse_number(gold)
    if np_ is not None and ng is not None:
        return _num_close(complex(np_), complex(ng))
    a, b = normalize_math(pred), normalize_math(gold)
    if not a:
        return False
    return _norm_equiv(a, b, timeout)
