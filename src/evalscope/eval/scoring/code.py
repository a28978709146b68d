"""Code extraction from model output and program assembly for HumanEval and MBPP.

Extraction: reasoning up to ``</think>`` is dropped; among fenced code blocks, Python ones are preferred and the
last block that defines the entry point wins, else the first Python block; MBPP's ``[BEGIN] ... [DONE]`` markers
are honoured; otherwise the text is taken as bare code. A truncated output whose last fence never closes still
yields its code.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from evalscope.eval.scoring.extract import strip_reasoning

_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.MULTILINE | re.DOTALL
)
_PY_LANGS = {"", "python", "py", "python3", "py3", "pycon", "ipython"}
_BEGIN_DONE = re.compile(r"\[BEGIN\]\s*(.*?)\s*(?:\[DONE\]|\Z)", re.DOTALL)
_THINK_OPEN = re.compile(r"^\s*<think\s*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CodeExtraction:
    """The code taken from an output and how it was found (``fenced`` / ``begin_done`` / ``bare`` / ``empty``)."""

    code: str
    method: str


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def extract_code(text: str, entry_point: str | None = None) -> CodeExtraction:
    """The program text in a model reply (see the module docstring for the rules)."""
    text = strip_reasoning(text or "")
    if _THINK_OPEN.match(text):  # an unfinished reasoning block: there is no answer
        return CodeExtraction("", "empty")
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    if blocks:
        py = [code for lang, code in blocks if lang in _PY_LANGS] or [code for _, code in blocks]
        chosen = py[0]
        if entry_point:
            defining = [code for code in py if _defines(code, entry_point)]
            if defining:
                chosen = defining[-1]
        return CodeExtraction(chosen.rstrip() + "\n", "fenced")
    m = _BEGIN_DONE.search(text)
    if m:
        return CodeExtraction(m.group(1).rstrip() + "\n", "begin_done")
    if not text.strip():
        return CodeExtraction("", "empty")
    return CodeExtraction(text.rstrip() + "\n", "bare")


def _parses(src: str) -> bool:
    try:
        ast.parse(src)
    except (SyntaxError, ValueError):
        return False
    return True


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """``prompt + completion + test + check(entry_point)``.

    When the completion repeats the whole function (its own ``def entry_point(``), it replaces the prompt's
    function instead of being appended into its body; the prompt still comes first (it may hold imports and
    helper functions the solution relies on; a function consisting of its docstring is valid Python).
    """
    if re.search(rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", completion, re.MULTILINE):
        head = prompt if _parses(prompt) else prompt.rstrip() + "\n    pass\n"
        body = head.rstrip() + "\n\n\n" + completion.strip("\n") + "\n"
    else:
        body = prompt + completion
        if not body.endswith("\n"):
            body += "\n"
    return f"{body}\n\n{test.rstrip()}\n\n\ncheck({entry_point})\n"


def mbpp_program(
    code: str, tests: list[str], setup_code: str = "", test_imports: list[str] | None = None
) -> str:
    """``test imports + code + setup code + the asserts``."""
    parts: list[str] = []
    if test_imports:
        parts.append("\n".join(test_imports))
    parts.append(code.replace("\r\n", "\n").rstrip())
    if setup_code.strip():
        # After the code: MBPP's setup code builds test fixtures from the solution's own classes (task 367).
        parts.append(setup_code.replace("\r\n", "\n"))
    parts.append("\n".join(t.replace("\r\n", "\n") for t in tests))
    return "\n\n".join(parts) + "\n"
