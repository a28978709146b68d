"""Arena inputs: the question set (a JSONL file or the built-in one) and candidate answer files.

The built-in set is sixteen questions in MT-Bench's eight categories, written for evalscope, so that
``evalscope arena`` runs with no file at all. A question file is JSONL with ``question_id``, ``question`` and
optional ``category`` and ``reference`` (``turns: [...]`` is read too: the first turn is the question).
An answer file is JSONL with ``question_id``, ``answer`` (or ``text`` / ``output``) and ``model``; a file
without ``model`` names its model after the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from evalscope.errors import ConfigError, DatasetError


@dataclass(frozen=True, slots=True)
class Question:
    """One arena question."""

    question_id: str
    question: str
    category: str = "general"
    reference: str | None = None


_BUILTIN: list[tuple[str, str, str | None]] = [
    (
        "writing",
        "Write a short, friendly note to a neighbour asking them to water your plants for a week.",
        None,
    ),
    (
        "writing",
        "Draft a three-sentence product description for a reusable water bottle aimed at hikers.",
        None,
    ),
    (
        "roleplay",
        "You are a museum guide. Introduce a fossil of a trilobite to a group of ten-year-olds.",
        None,
    ),
    (
        "roleplay",
        "Act as a ship's captain announcing a two-hour delay to passengers. Keep it calm and brief.",
        None,
    ),
    (
        "reasoning",
        "A train leaves at 14:10 and arrives at 16:55. It stopped twice for 10 minutes each. How long was it "
        "actually moving?",
        "2 hours 25 minutes.",
    ),
    (
        "reasoning",
        "Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may take one fruit "
        "from one box. How do you relabel all three?",
        "Take a fruit from the box labelled mixed; it holds only that fruit; the rest follows.",
    ),
    (
        "math",
        "What is the sum of the interior angles of a hexagon? Show the formula you use.",
        "720 degrees.",
    ),
    ("math", "Solve for x: 3x + 7 = 2x - 5.", "x = -12."),
    (
        "coding",
        "Write a Python function that returns True when a string is a palindrome, ignoring case and spaces.",
        None,
    ),
    ("coding", "Explain what a race condition is and show a minimal example in any language.", None),
    (
        "extraction",
        "From the text 'Order 4417 shipped on 2024-03-02 to Oslo, 3 items, total 129.50 EUR', extract the "
        "order number, date, city and total as JSON.",
        '{"order": 4417, "date": "2024-03-02", "city": "Oslo", "total": "129.50 EUR"}',
    ),
    (
        "extraction",
        "List every person named in: 'Ada met Grace at the conference; later Alan joined them for dinner.'",
        "Ada, Grace, Alan.",
    ),
    ("stem", "Why does ice float on water? Answer in two or three sentences.", None),
    ("stem", "Explain the difference between latency and throughput for a web service.", None),
    (
        "humanities",
        "Summarise the main causes of the fall of the Western Roman Empire in one paragraph.",
        None,
    ),
    ("humanities", "What is the difference between a republic and a direct democracy?", None),
]


def builtin_questions() -> list[Question]:
    """The built-in MT-Bench-style question set (ids ``q01`` .. ``q16``)."""
    return [Question(f"q{i + 1:02d}", q, cat, ref) for i, (cat, q, ref) in enumerate(_BUILTIN)]


def _jsonl(path: Path, what: str) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{what} {str(path)!r}: cannot read ({exc.strerror or exc})") from None
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise DatasetError(f"{what} {str(path)!r} line {n}: not valid JSON") from None
        if not isinstance(obj, dict):
            raise DatasetError(f"{what} {str(path)!r} line {n}: expected a JSON object")
        out.append(obj)
    if not out:
        raise DatasetError(f"{what} {str(path)!r} is empty")
    return out


def load_questions(path: str | None, limit: int | None = None) -> list[Question]:
    """The questions of ``path`` (JSONL), or the built-in set; ``limit`` keeps the first ``limit``."""
    if not path:
        qs = builtin_questions()
    else:
        qs = []
        seen: set[str] = set()
        for n, obj in enumerate(_jsonl(Path(path), "--questions"), 1):
            qid = obj.get("question_id", obj.get("id"))
            text = obj.get("question")
            if text is None and isinstance(obj.get("turns"), list) and obj["turns"]:
                text = obj["turns"][0]
            if qid is None or not isinstance(text, str) or not text.strip():
                raise DatasetError(
                    f"--questions {path!r} line {n}: needs question_id and a non-empty question",
                    'each line: {"question_id": ..., "question": ..., "category": ...}',
                )
            qid = str(qid)
            if qid in seen:
                raise DatasetError(f"--questions {path!r} line {n}: question_id {qid!r} repeated")
            seen.add(qid)
            ref = obj.get("reference")
            if isinstance(ref, list):
                ref = ref[0] if ref else None
            qs.append(
                Question(qid, text, str(obj.get("category") or "general"), None if ref is None else str(ref))
            )
    return qs[:limit] if limit else qs


def load_answers(paths: list[str]) -> dict[str, dict[str, str]]:
    """``{model: {question_id: answer}}`` from one JSONL file per model."""
    out: dict[str, dict[str, str]] = {}
    for path in paths:
        p = Path(path)
        rows = _jsonl(p, "--answers")
        for n, obj in enumerate(rows, 1):
            qid = obj.get("question_id")
            ans = obj.get("answer", obj.get("text", obj.get("output")))
            if qid is None or not isinstance(ans, str):
                raise DatasetError(
                    f"--answers {path!r} line {n}: needs question_id and answer",
                    'each line: {"question_id": ..., "model": ..., "answer": ...}',
                )
            model = str(obj.get("model") or p.stem)
            out.setdefault(model, {})[str(qid)] = ans
    return out


def parse_model_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``NAME=URL[,key=K][,model=SERVED]`` -> (name, url, options); URL ``sim`` is the built-in simulator."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise ConfigError(
            f"--models {spec.split(',')[0]!r}: expected NAME=URL[,key=...]", "e.g. gpt=http://host:8000"
        )
    url, *opts = rest.split(",")
    options: dict[str, str] = {}
    for o in opts:
        k, eq, v = o.partition("=")
        if not eq or k.strip() not in ("key", "model"):
            raise ConfigError(
                f"--models {name}: unknown option {k.strip()!r}", "options are key=... and model=..."
            )
        options[k.strip()] = v.strip()
    return name.strip(), url.strip(), options


def redact_spec(spec: str) -> str:
    """The spec without its key (saved configs and reports never hold secrets)."""
    name, url, opts = parse_model_spec(spec)
    tail = "".join(f",{k}={v}" for k, v in opts.items() if k != "key")
    return f"{name}={url}{tail}"
