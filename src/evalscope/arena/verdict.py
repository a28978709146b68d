"""Judge prompt templates and strict verdict parsing.

The templates are ours, in the spirit of MT-Bench's: the judge sees the question (and a reference when there
is one), the answers between ``[The Start of ...]`` / ``[The End of ...]`` markers, and must end with a verdict
in double brackets. Parsing is strict: exactly one of the five pairwise verdicts (``A>>B``, ``A>B``, ``A=B``,
``B>A``, ``B>>A``) or a 1-10 grade must appear in ``[[...]]``; the last bracketed verdict wins when the
judge thinks aloud first. Anything else is unparseable (retried once, then a null judgment).

``PROMPT_VERSION`` is part of every judgment's cache key: a changed template is a different judgment.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from evalscope.errors import ConfigError

PAIRWISE_TEMPLATE = """Please act as an impartial judge and evaluate the two answers given by AI assistants to \
the user question below. Choose the answer that follows the user's instructions and answers the question \
better, considering helpfulness, relevance, accuracy, depth and level of detail. Do not let the order of the \
answers, their length or the assistants' names influence you. Explain your comparison briefly, then give your \
final verdict in exactly this format: [[A>>B]] if A is much better, [[A>B]] if A is better, [[A=B]] for a tie, \
[[B>A]] if B is better, [[B>>A]] if B is much better.

[User Question]
{question}
{reference_block}
[The Start of Assistant A's Answer]
{answer_a}
[The End of Assistant A's Answer]

[The Start of Assistant B's Answer]
{answer_b}
[The End of Assistant B's Answer]
"""

SINGLE_TEMPLATE = """Please act as an impartial judge and evaluate the quality of the answer given by an AI \
assistant to the user question below, considering helpfulness, relevance, accuracy, depth and level of \
detail. Explain your evaluation briefly, then rate the answer from 1 to 10 in exactly this format: [[7]].

[User Question]
{question}
{reference_block}
[The Start of Assistant's Answer]
{answer}
[The End of Assistant's Answer]
"""

PAIRWISE_VERDICTS: dict[str, tuple[float, bool]] = {
    # verdict -> (score of the answer shown first, strong?)
    "A>>B": (1.0, True),
    "A>B": (1.0, False),
    "A=B": (0.5, False),
    "B>A": (0.0, False),
    "B>>A": (0.0, True),
}

_BRACKETS = re.compile(r"\[\[\s*([^\[\]]{1,12}?)\s*\]\]")
_GRADE = re.compile(r"(10|[1-9])(?:\.0+)?")


@dataclass(frozen=True, slots=True)
class Templates:
    """The pairwise and single templates in use, and their version (a digest of both)."""

    pairwise: str
    single: str

    @property
    def version(self) -> str:
        h = hashlib.sha256((self.pairwise + "\x00" + self.single).encode()).hexdigest()
        return h[:12]


DEFAULT_TEMPLATES = Templates(PAIRWISE_TEMPLATE, SINGLE_TEMPLATE)


def load_templates(path: str | None) -> Templates:
    """The built-in templates, or a ``--judge-prompt`` file's.

    The file is one template used for the mode at hand: pairwise placeholders ``{question}``,
    ``{answer_a}``, ``{answer_b}``; single ``{question}``, ``{answer}``; ``{reference_block}`` optional.
    """
    if not path:
        return DEFAULT_TEMPLATES
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--judge-prompt {path!r}: cannot read ({exc.strerror or exc})") from None
    if "{question}" not in text:
        raise ConfigError(f"--judge-prompt {path!r} has no {{question}} placeholder", "see docs/arena.md")
    pairwise = text if "{answer_a}" in text and "{answer_b}" in text else PAIRWISE_TEMPLATE
    single = text if "{answer}" in text else SINGLE_TEMPLATE
    if pairwise is PAIRWISE_TEMPLATE and single is SINGLE_TEMPLATE:
        raise ConfigError(
            f"--judge-prompt {path!r} has neither {{answer_a}}/{{answer_b}} nor {{answer}}",
            "see docs/arena.md",
        )
    return Templates(pairwise, single)


_PLACEHOLDER = re.compile(r"\{(question|reference_block|answer_a|answer_b|answer)\}")


def _fill(template: str, **values: str) -> str:
    """One pass over the template: text inserted for one placeholder is never scanned for another."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _reference_block(reference: str | None) -> str:
    if not reference:
        return ""
    return f"\n[Reference Answer]\n{reference}\n"


def pairwise_prompt(t: Templates, question: str, reference: str | None, answer_a: str, answer_b: str) -> str:
    """The pairwise judge prompt (placeholders filled literally, so braces in answers are safe)."""
    return _fill(
        t.pairwise,
        question=question,
        reference_block=_reference_block(reference),
        answer_a=answer_a,
        answer_b=answer_b,
    )


def single_prompt(t: Templates, question: str, reference: str | None, answer: str) -> str:
    """The single-grading judge prompt."""
    return _fill(t.single, question=question, reference_block=_reference_block(reference), answer=answer)


def parse_pairwise(text: str) -> str | None:
    """The last ``[[verdict]]`` of the five, normalised (``[[ A > B ]]`` -> ``A>B``); None when there is none
    or when the judge's bracketed verdicts disagree."""
    found = [str(m).replace(" ", "").upper() for m in _BRACKETS.findall(text or "")]
    valid = [v for v in found if v in PAIRWISE_VERDICTS]
    if not valid or len(set(valid)) > 1:
        return None
    return valid[-1]


def parse_single(text: str) -> int | None:
    """The ``[[n]]`` grade, 1..10; None when absent, out of range or contradictory."""
    grades = set()
    for m in _BRACKETS.findall(text or ""):
        g = _GRADE.fullmatch(m.strip())
        if g:
            grades.add(int(g.group(1)))
    if len(grades) != 1:
        return None
    return grades.pop()
