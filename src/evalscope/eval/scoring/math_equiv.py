"""Equivalence of math answers (GSM8K numbers, MATH expressions), decided by ``math-verify``.

:func:`math_equiv` first takes two cheap, unambiguous shortcuts, then asks HuggingFace's ``math-verify`` grader:

1. both answers are plain numbers (:func:`parse_number`: ``1,000``, ``5.0``, ``$18``, ``50%``, ``18 dollars``,
   ``10\\text{ cm}``): compared exactly when both are integers, else with a relative tolerance of 1e-9;
2. equal strings after LaTeX normalisation (:func:`normalize_math`) are equal;
3. otherwise (unless an answer is over 400 characters or holds a power such as ``10^{10^{10}}``, which are
   refused) ``math_verify.verify(parse(gold), parse(pred))`` on the normalised strings, both wrapped as ``$...$`` so that math-verify's
   LaTeX and plain-expression extraction both apply. math-verify handles fractions, roots, sets, intervals,
   tuples, equations (``x = 3``), units and symbolic equality.

math-verify's own timeouts use SIGALRM, which must never run on our event-loop thread. So the grader runs in a
separate, long-lived process (spawned on first use), where SIGALRM is safe; the caller waits at most
``timeout`` + 2 s and, past that, kills the process (a fresh one is spawned on the next call) and answers False.
"""

from __future__ import annotations

import atexit
import cmath
import contextlib
import json
import re
import select
import subprocess
import sys
import threading

__all__ = ["math_equiv", "math_verify_equiv", "normalize_math", "parse_number", "split_elements"]

_MAX_LEN = 400
# Powers that no grader should expand: 10^{10^{10}}, 2^{99999}.
_HUGE_POWER = re.compile(r"\^\s*\{?\s*[-+]?\d{5,}|\^\s*\{[^{}]*\^")


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


def _num_close(a: complex, b: complex) -> bool:
    if cmath.isinf(a) or cmath.isinf(b):
        return a == b
    if a.imag == 0 and b.imag == 0 and a.real.is_integer() and b.real.is_integer():
        return a == b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


# ----------------------------------------------------------------------------------------- math-verify worker


def _serve_stdio() -> None:  # pragma: no cover - runs in the worker process
    """Worker loop: JSON ``[gold, pred, timeout]`` lines in, ``1``/``0`` lines out; EOF ends it."""
    import json
    import logging

    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    logging.disable(logging.CRITICAL)  # math-verify logs every parse failure
    config = [LatexExtractionConfig(), ExprExtractionConfig()]
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            gold, pred, timeout = json.loads(line)
            t = max(1, int(timeout))
            g = parse(_dollars(gold), extraction_config=config, parsing_timeout=t)
            p = parse(_dollars(pred), extraction_config=config, parsing_timeout=t)
            ok = bool(g) and bool(p) and bool(verify(g, p, timeout_seconds=t))
        except Exception:  # noqa: BLE001 - any failure of the grader means "not shown equal"
            ok = False
        sys.stdout.write("1\n" if ok else "0\n")
        sys.stdout.flush()


def _dollars(s: str) -> str:
    s = s.strip()
    if s.startswith("$") or s.startswith("\\(") or s.startswith("\\["):
        return s
    return f"${s}$"


_WORKER_CMD = "from evalscope.eval.scoring.math_equiv import _serve_stdio; _serve_stdio()"


class _Grader:
    """One worker process (``python -c``, so nothing depends on how our own process was started); calls are
    serialised (a lock), so any thread may call :meth:`equal`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self, wait_s: float) -> subprocess.Popen[bytes] | None:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CMD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._proc = proc
        if self._readline(wait_s) != b"ready":  # importing sympy and math-verify
            self._stop()
            return None
        return proc

    def _readline(self, wait_s: float) -> bytes | None:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        if not select.select([out], [], [], wait_s)[0]:
            return None
        line = out.readline()
        return line.strip() if line else None

    def _stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
            with contextlib.suppress(Exception):
                self._proc.wait(5)
            for f in (self._proc.stdin, self._proc.stdout):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        self._proc = None

    def equal(self, gold: str, pred: str, timeout: float) -> bool:
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else None
            if proc is None:
                self._stop()
                proc = self._start(60.0)
                if proc is None:
                    return False
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps([gold, pred, timeout]).encode() + b"\n")
                proc.stdin.flush()
                answer = self._readline(timeout + 2.0)
            except (OSError, ValueError):
                answer = None
            if answer is None:
                self._stop()  # hung or dead: a fresh worker next time
                return False
            return answer == b"1"

    def close(self) -> None:
        """Stop the worker, by its PID (registered at exit: in its own session it would outlive this process
        until it read EOF). A call still running gets a few seconds first."""
        if self._lock.acquire(timeout=5.0):
            try:
                self._stop()
            finally:
                self._lock.release()


_GRADER = _Grader()
atexit.register(_GRADER.close)
_WORD = re.compile(r"[A-Za-z]{2,}")


def math_verify_equiv(pred: str, gold: str, *, timeout: float = 3.0) -> bool:
    """math-verify alone (no shortcuts): ``verify(parse(gold), parse(pred))`` in the worker process."""
    if len(pred) > _MAX_LEN or len(gold) > _MAX_LEN or _HUGE_POWER.search(pred) or _HUGE_POWER.search(gold):
        return False  # refused (see _MAX_LEN, _HUGE_POWER): never sent to the grader
    return _GRADER.equal(gold, pred, timeout)


# ----------------------------------------------------------------------------------------- public


def math_equiv(pred: str | None, gold: str, *, timeout: float = 3.0) -> bool:
    """True when ``pred`` is equivalent to ``gold``; see the module docstring for the steps."""
    if pred is None:
        return False
    pred, gold = str(pred), str(gold)
    if not pred.strip():
        return False
    np_, ng = parse_number(pred), parse_number(gold)
    if np_ is not None and ng is not None:
        return _num_close(complex(np_), complex(ng))
    a, b = normalize_math(pred), normalize_math(gold)
    if not a:
        return False
    if a == b or a.lower() == b.lower():
        return True
    if any(_WORD.fullmatch(x) and x not in ("pi", "oo") for x in (a, b)):
        return False  # words ("no" vs "on") are not products of symbols
    # math-verify sees our normalised forms: it misreads some raw spellings (``\\frac \\pi4 + 2`` and
    # ``\\frac \\pi4 + 2 + 1`` parse alike), not the normalised ones.
    return math_verify_equiv(a, b, timeout=timeout)
