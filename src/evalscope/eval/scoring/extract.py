"""Answer extraction from raw model outputs.

Multiple choice
    :func:`extract_choice` takes the **last** ``ANSWER: X`` / ``答案：X`` / ``答案:X`` marker whose answer is a valid
    option letter. The letter may be wrapped as ``(B)``, ``[B]``, ``**B**``, ``B.``, ``\\boxed{B}``, ``$B$``,
    ``\\text{B}`` or follow a short lead-in (``option B``, ``选项B``). Without any marker, a small set of
    unambiguous fall-back patterns is tried (see :func:`extract_choice_detailed`); reasoning that merely
    mentions letters ("A is wrong because ...") never matches.

Math
    :func:`extract_math_answer`: last balanced ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``), then
    "the answer is ...", then ``ANSWER: ...``, then the last number in the text.

Reasoning
    :func:`strip_reasoning` removes everything up to the last ``</think>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ChoiceExtraction",
    "extract_after_phrase",
    "extract_choice",
    "extract_choice_detailed",
    "extract_choices",
    "extract_math_answer",
    "last_boxed",
    "last_number",
    "strip_reasoning",
]

_THINK_END = re.compile(r"</think\s*>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """Drop a reasoning block: the text up to and including the last ``</think>`` (no-op without one)."""
    if not text:
        return ""
    parts = _THINK_END.split(text)
    return parts[-1] if len(parts) > 1 else text


# --------------------------------------------------------------------------------------------- choices

# ``ANSWER:`` (any case, optional markdown around the word), ``Final Answer:``, ``答案：`` / ``答案:``.
_MARKER = re.compile(
    r"(?:\*\*|__)?\b(?:final\s+)?answer(?:\*\*|__)?\s*(?:\*\*|__)?\s*[:：](?:\*\*|__)?"
    r"|(?:\*\*)?(?:最终)?答案(?:\*\*)?\s*[:：](?:\*\*)?"
    r"|(?:\*\*)?(?:最终)?答案(?:是|为)\s*[:：]?",
    re.IGNORECASE,
)

# Lead-ins tolerated between the marker and the letter.
_LEAD = r"(?i:(?:the\s+)?(?:correct\s+)?(?:answer\s+is|option|choice)\s*:?\s*|选项\s*|选\s*)?"
# Opening wrappers (any mix of markdown emphasis, brackets, LaTeX wrappers, quotes).
_OPEN = r"(?:[\s*_`\"'“‘(\[（【{]|\$+|\\boxed\s*\{|\\text(?:bf)?\s*\{|\\mathrm\s*\{|\\fbox\s*\{)*"
# An upper-case letter, or a lower-case one only when clearly delimited ("(b)", "b.", "b" at line end), so
# that the article "a" in prose is never read as option A.
# The pronoun "I" ("ANSWER: I think it is B") is not option I.
_LETTER = (
    r"((?!I\s+(?:think|believe|am|would|will|guess|choose|pick|select|can|do|don't|need|must)\b)"
    r"[A-Z](?![A-Za-z0-9'’])|[a-z](?=[)\]】）}*.:：]|\s*$))"
)
_LETTER_AT = re.compile(r"\s*" + _OPEN + _LEAD + _OPEN + _LETTER, re.MULTILINE)

# Fallbacks when no marker exists: explicit statements only, upper-case letters only.
_FALLBACKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "answer_is",
        re.compile(
            r"(?i:(?:correct|final|best|right)\s+)?(?i:answer|option|choice)\s+(?i:is|would\s+be|should\s+be)"
            r"\s*:?\s*(?i:option\s+|choice\s+)?" + _OPEN + r"([A-Z])(?![A-Za-z0-9])"
        ),
    ),
    (
        "zh_answer",
        re.compile(r"(?:正确)?(?:答案|选项)\s*(?:应该)?(?:是|为|选)\s*" + _OPEN + r"([A-Z])(?![A-Za-z0-9])"),
    ),
    ("boxed", re.compile(r"\\boxed\s*\{\s*(?:\\text(?:bf)?\{)?\s*\(?([A-Z])\)?\s*\}?\s*\}")),
)
# A reply that is nothing but a letter: "B", "(B)", "**B**", "B.", "B) blue".
_BARE = re.compile(
    r"^\s*" + _OPEN + r"([A-Z])(?:[)\]】）}*_`$.:：\s]*$|[)\]】）.:：][*_`]*\s+\S[^\n]*$)", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class ChoiceExtraction:
    """Result of a choice extraction: the letter (upper case) or None, and how it was found.

    ``method`` is ``marker`` (the house format), ``fallback:<pattern>`` or ``none``.
    """

    letter: str | None
    method: str

    @property
    def parsed(self) -> bool:
        return self.letter is not None


def _valid_set(valid: Iterable[str]) -> set[str]:
    return {v.upper() for v in valid}


def extract_choice_detailed(
    text: str,
    valid: Iterable[str] = "ABCD",
    *,
    fallback: bool = True,
) -> ChoiceExtraction:
    """Extract one option letter; see the module docstring for the accepted formats.

    Markers are examined from the last to the first; the first (i.e. latest) marker followed by a valid letter
    wins. If no marker yields a letter and ``fallback`` is true, these patterns are tried, the last match
    winning: "the (correct) answer is (B)" / "answer would be B", "答案是B" / "正确选项为B", a final
    ``\\boxed{B}``, and finally a reply that consists of a bare letter ("B", "(B)", "**B.**").
    """
    ok = _valid_set(valid)
    body = strip_reasoning(text or "")
    markers = list(_MARKER.finditer(body))
    for m in reversed(markers):
        hit = _LETTER_AT.match(body, m.end())
        if hit and hit.group(1).upper() in ok:
            return ChoiceExtraction(hit.group(1).upper(), "marker")
    if not fallback:
        return ChoiceExtraction(None, "none")
    for name, pat in _FALLBACKS:
        found = [g.group(1).upper() for g in pat.finditer(body)]
        found = [f for f in found if f in ok]
        if found:
            return ChoiceExtraction(found[-1], f"fallback:{name}")
    bare = _BARE.match(body)
    if bare and bare.group(1).upper() in ok and len(body.strip()) <= 200:
        return ChoiceExtraction(bare.group(1).upper(), "fallback:bare")
    return ChoiceExtraction(None, "none")


def extract_choice(text: str, valid: Iterable[str] = "ABCD", *, fallback: bool = True) -> str | None:
    """The chosen option letter (upper case) or None when unparsed. See :func:`extract_choice_detailed`."""
    return extract_choice_detailed(text, valid, fallback=fallback).letter


_SEP_LETTERS = re.compile(r"[A-Za-z]")


def extract_choices(text: str, valid: Iterable[str]) -> frozenset[str] | None:
    """Multi-select: the set of letters on the line after the last marker (``ANSWER: A, C, D``).

    The answer line may hold letters separated by commas, spaces, ``and``, ``&``, ``、`` or ``/`` with the
    same wrappers as :func:`extract_choice`. Any other word on the line (other than ``and``) makes it
    unparsable, so that prose does not contribute stray letters. Returns None when unparsed.
    """
    ok = _valid_set(valid)
    body = strip_reasoning(text or "")
    for m in reversed(list(_MARKER.finditer(body))):
        line = body[m.end() :].lstrip(" \t*_")
        line = line.split("\n", 1)[0] if line.strip() else ""
        cleaned = re.sub(r"\\boxed\s*\{|\\text(?:bf)?\s*\{|\\mathrm\s*\{", " ", line)
        cleaned = re.sub(
            r"\band\b|[,，、;；/&+*_`$()\[\]{}（）【】.。'\"]", " ", cleaned, flags=re.IGNORECASE
        )
        tokens = cleaned.split()
        if not tokens:
            continue
        if all(len(t) == 1 and t.upper() in ok for t in tokens):
            return frozenset(t.upper() for t in tokens)
    return None


# ------------------------------------------------------------------------------------------------ math

_BOX_CMD = re.compile(r"\\(?:boxed|fbox)\b")


def _boxed_spans(text: str) -> list[str]:
    out: list[str] = []
    for m in _BOX_CMD.finditer(text):
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                c = text[j]
                if c == "{" and (j == 0 or text[j - 1] != "\\"):
                    depth += 1
                elif c == "}" and text[j - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        out.append(text[i + 1 : j])
                        break
            # unbalanced: ignore this box
        elif i > m.end():
            # "\boxed 5": the next token up to whitespace or a dollar sign.
            tok = re.match(r"[^\s$]+", text[i:])
            if tok:
                out.append(tok.group(0).rstrip(".,;"))
    return out


def last_boxed(text: str) -> str | None:
    """Content of the last balanced ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``); None if none."""
    spans = _boxed_spans(text or "")
    return spans[-1].strip() if spans else None


_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_ANSWER_IS = re.compile(r"(?:final\s+)?answer\s+is\s*:?\s*", re.IGNORECASE)
_ANSWER_COLON = re.compile(r"\banswer\s*[:：]|答案\s*[:：]", re.IGNORECASE)


def last_number(text: str) -> str | None:
    """The last number in ``text`` with thousands separators removed (``1,000`` -> ``1000``); None if none."""
    nums = _NUMBER.findall(text or "")
    if not nums:
        return None
    n = str(nums[-1]).replace("$", "").rstrip(",")
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", n):
        n = n.replace(",", "")
    return n


def _clean_tail(s: str) -> str:
    lines = s.strip().split("\n")
    s = lines[0]
    for nxt in lines[1:]:  # an answer whose braces span lines ("\text{ square\nunits}")
        if s.count("{") <= s.count("}"):
            break
        s += "\n" + nxt
    s = s.strip()
    s = s.strip("*_` ")
    if s.startswith("$"):
        close = re.search(r"(?<!\\)\$", s[1:].lstrip("$"))
        inner = s[1:].lstrip("$")
        if close:
            s = inner[: close.start()]
    s = s.strip().rstrip(".。").strip()
    if s.startswith("\\(") and s.endswith("\\)"):
        s = s[2:-2].strip()
    return s


def extract_math_answer(text: str) -> str | None:
    """The final answer of a math solution, as a string (not normalised); None when nothing is found.

    Order: last balanced ``\\boxed{}``/``\\fbox{}``, then the last "the answer is ...", then the last
    ``ANSWER: ...`` line, then the last number.
    """
    body = strip_reasoning(text or "")
    boxed = last_boxed(body)
    if boxed:
        return boxed
    for pat in (_ANSWER_IS, _ANSWER_COLON):
        ms = list(pat.finditer(body))
        if ms:
            tail = _clean_tail(body[ms[-1].end() :])
            if tail:
                return tail
    return last_number(body)


def extract_after_phrase(text: str, phrase: str = "So the answer is") -> str | None:
    """The text after the last ``phrase`` (case-insensitive) up to the end of its line/sentence.

    Markdown emphasis, a trailing period and surrounding whitespace are removed. None when the phrase is absent.
    """
    body = strip_reasoning(text or "")
    idx = body.lower().rfind(phrase.lower())
    if idx < 0:
        return None
    tail = body[idx + len(phrase) :].split("\n", 1)[0].strip()
    prev = None
    while prev != tail:
        prev = tail
        tail = tail.strip("*_` ").lstrip(":").strip()
        if tail.endswith("."):
            tail = tail[:-1].rstrip()
    return tail
