"""Shared helpers for benchmark modules: file reading with precise errors, ids, shots, MCQ prompts and scoring.

Every reader raises :class:`~evalscope.errors.DatasetError` naming the file (and the line for row-level
problems): missing file or folder (with the ``--dataset-dir`` layout expected), empty file, undecodable bytes,
bad JSON, missing fields.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from evalscope.errors import DatasetError, UnknownNameError
from evalscope.eval.benchmarks.base import (
    Benchmark,
    JudgeScorer,
    PromptTemplate,
    Record,
    Sample,
    Scorer,
    ScoreResult,
)
from evalscope.eval.scoring.extract import extract_choice_detailed

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# ------------------------------------------------------------------------------------------- paths


def data_root(bench: Benchmark, expected: str) -> Path:
    """``dataset_dir / data_subdir``; DatasetError naming ``--dataset-dir`` and the layout when absent."""
    layout = (
        f"<dataset-dir>/{bench.data_subdir}/{expected}" if bench.data_subdir else f"<dataset-dir>/{expected}"
    )
    if bench.dataset_dir is None:
        raise DatasetError(
            f"benchmark {bench.name!r} needs local data files but no dataset directory was given",
            f"pass --dataset-dir pointing at a folder laid out as {layout}",
        )
    root = Path(bench.dataset_dir) / bench.data_subdir if bench.data_subdir else Path(bench.dataset_dir)
    if not root.is_dir():
        raise DatasetError(
            f"benchmark {bench.name!r}: data folder {root} not found",
            f"--dataset-dir must contain {layout}",
        )
    return root


def require_file(path: Path, layout_hint: str) -> Path:
    """``path`` if it is a file, else DatasetError naming the expected path and layout."""
    if not path.is_file():
        raise DatasetError(f"data file not found: {path}", f"--dataset-dir must contain {layout_hint}")
    return path


# ------------------------------------------------------------------------------------------- reading


def read_text(path: Path) -> str:
    """UTF-8 text (BOM tolerated); DatasetError for a missing/empty file or bad encoding (with line)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise DatasetError(f"data file not found: {path}", "check --dataset-dir and the file layout") from e
    except OSError as e:
        raise DatasetError(f"cannot read data file {path}: {e}") from e
    if not raw.strip():
        raise DatasetError(f"data file {path} is empty", "re-download or regenerate the file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DatasetError(
            f"data file {path} line {line}: not valid UTF-8 (byte offset {e.start})",
            "save the file as UTF-8",
        ) from e


def read_jsonl(path: Path, required: Sequence[str] = ()) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) pairs of a JSONL file; blank lines skipped; objects must hold ``required``."""
    out: list[tuple[int, dict[str, Any]]] = []
    for no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(
                f"data file {path} line {no}: bad JSON ({e.msg})", "each line must be one JSON object"
            ) from e
        if not isinstance(obj, dict):
            raise DatasetError(
                f"data file {path} line {no}: expected a JSON object, got {type(obj).__name__}"
            )
        missing = [k for k in required if k not in obj]
        if missing:
            raise DatasetError(f"data file {path} line {no}: missing field(s) {', '.join(missing)}")
        out.append((no, obj))
    if not out:
        raise DatasetError(f"data file {path} has no records")
    return out


def read_json(path: Path) -> Any:
    """A whole JSON document; DatasetError with line/column on bad JSON."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"data file {path} line {e.lineno} column {e.colno}: bad JSON ({e.msg})") from e


def read_csv_dicts(path: Path, required: Sequence[str] = ()) -> list[tuple[int, dict[str, str]]]:
    """(line number, row dict) pairs of a CSV file with a header row holding ``required`` columns."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = next(reader)
    except StopIteration as e:  # pragma: no cover - read_text already rejects empty files
        raise DatasetError(f"data file {path} is empty") from e
    except csv.Error as e:
        raise DatasetError(f"data file {path} line 1: malformed CSV ({e})") from e
    header = [h.strip() for h in header]
    missing = [k for k in required if k not in header]
    if missing:
        raise DatasetError(
            f"data file {path} line 1: header lacks column(s) {', '.join(missing)}",
            f"expected columns: {', '.join(required)}",
        )
    out: list[tuple[int, dict[str, str]]] = []
    try:
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if len(row) < len(header):
                raise DatasetError(
                    f"data file {path} line {reader.line_num}: {len(row)} columns, header has {len(header)}"
                )
            out.append((reader.line_num, dict(zip(header, row, strict=False))))
    except csv.Error as e:
        raise DatasetError(f"data file {path} line {reader.line_num}: malformed CSV ({e})") from e
    if not out:
        raise DatasetError(f"data file {path} has a header but no rows")
    return out


def read_csv_rows(path: Path, ncols: int) -> list[tuple[int, list[str]]]:
    """(line number, row) pairs of a header-less CSV whose rows have exactly ``ncols`` columns."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    out: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if len(row) != ncols:
                raise DatasetError(
                    f"data file {path} line {reader.line_num}: {len(row)} columns, expected {ncols}"
                )
            out.append((reader.line_num, row))
    except csv.Error as e:
        raise DatasetError(f"data file {path} line {reader.line_num}: malformed CSV ({e})") from e
    if not out:
        raise DatasetError(f"data file {path} has no rows")
    return out


def field_str(path: Path, line: int, obj: dict[str, Any], key: str) -> str:
    """``obj[key]`` as a non-empty string, else DatasetError with file and line."""
    v = obj.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        raise DatasetError(f"data file {path} line {line}: field {key!r} is missing or empty")
    return str(v)


# ------------------------------------------------------------------------------------------- ids, rng


def content_id(*parts: object) -> str:
    """A stable 16-hex-digit id from content (used when the dataset has no id)."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return h[:16]


def seeded_rng(key: str, salt: str = "") -> random.Random:
    """A random generator seeded from the sha256 of ``salt:key`` (stable across runs and machines)."""
    return random.Random(int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:16], 16))


def select_shots(pool: Sequence[Any], k: int, args: dict[str, Any], key: str = "") -> list[Any]:
    """First-k by default; ``few_shot_random: true`` draws k with a seed (``few_shot_seed``, default 0)."""
    if k <= 0 or not pool:
        return []
    if args.get("few_shot_random"):
        rng = seeded_rng(key, str(args.get("few_shot_seed", 0)))
        return rng.sample(list(pool), min(k, len(pool)))
    return list(pool[:k])


class IdMaker:
    """Makes ids unique within one load: a repeated base id gets ``~2``, ``~3`` ... in file order."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        n = self._seen.get(base, 0) + 1
        self._seen[base] = n
        return base if n == 1 else f"{base}~{n}"


def user(content: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


# ------------------------------------------------------------------------------------------- MCQ

EN_INSTRUCTION = (
    "Answer the following multiple choice question. The last line of your response should be of the form "
    '"ANSWER: X" (without quotes) where X is one of {letters}. Think step by step before answering.'
)
ZH_INSTRUCTION = "回答下面的单项选择题。你的回答的最后一行应该是这样的格式：“答案：X”（不带引号），其中 X 是 {letters} 中的一个。请先逐步思考再回答。"


def format_options(options: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}) {o}" for i, o in enumerate(options))


def letter_list(n: int, zh: bool = False) -> str:
    ls = list(LETTERS[:n])
    if zh:
        return "、".join(ls)
    return ", ".join(ls[:-1]) + f" or {ls[-1]}" if n > 1 else ls[0]


def mcq_prompt(
    question: str,
    options: Sequence[str],
    shots: Iterable[tuple[str, Sequence[str], str, str | None]] = (),
    zh: bool = False,
    preamble: str | None = None,
) -> str:
    """One user message: instruction, inlined solved examples, then the question and its options.

    ``shots`` are (question, options, answer letter, optional explanation).
    """
    instr = (ZH_INSTRUCTION if zh else EN_INSTRUCTION).format(letters=letter_list(len(options), zh))
    parts = [preamble + "\n\n" + instr if preamble else instr]
    shot_list = list(shots)
    marker = "答案：" if zh else "ANSWER: "
    if shot_list:
        parts.append("以下是一些示例：" if zh else "Here are some solved examples:")
        for q, opts, ans, expl in shot_list:
            sol = f"{expl.strip()}\n{marker}{ans}" if expl else f"{marker}{ans}"
            parts.append(f"{q.strip()}\n\n{format_options(opts)}\n\n{sol}")
        parts.append("现在回答下面的问题：" if zh else "Now answer this question:")
    parts.append(f"{question.strip()}\n\n{format_options(options)}")
    return "\n\n".join(parts)


def mcq_sample(
    sample_id: str,
    question: str,
    options: Sequence[str],
    gold: str,
    *,
    subset: str = "default",
    category: str | None = None,
    shots: Iterable[tuple[str, Sequence[str], str, str | None]] = (),
    zh: bool = False,
    preamble: str | None = None,
    meta: dict[str, Any] | None = None,
    turns: bool = False,
) -> Sample:
    """An MCQ sample; with ``turns`` the shots become alternating user/assistant messages instead of being
    inlined in one user message."""
    m: dict[str, Any] = {"letters": LETTERS[: len(options)], "options": list(options)}
    m.update(meta or {})
    shot_list = list(shots)
    if turns and shot_list:
        marker = "答案：" if zh else "ANSWER: "
        messages: list[dict[str, Any]] = []
        for q, opts, ans, expl in shot_list:
            messages += user(mcq_prompt(q, opts, zh=zh, preamble=preamble))
            sol = f"{expl.strip()}\n{marker}{ans}" if expl else f"{marker}{ans}"
            messages.append({"role": "assistant", "content": sol})
        messages += user(mcq_prompt(question, options, zh=zh, preamble=preamble))
    else:
        messages = user(mcq_prompt(question, options, shot_list, zh=zh, preamble=preamble))
    return Sample(
        id=sample_id,
        messages=messages,
        gold=gold,
        subset=subset,
        category=category,
        meta=m,
    )


N_MCQ_STYLES = 8


def render_letter(letter: str, others: Sequence[str], style: int, zh: bool = False) -> str:
    """An output choosing ``letter`` in one of several real-model styles; ``others`` are distractor letters."""
    o1 = others[0] if others else letter
    o2 = others[-1] if others else letter
    marker = "答案：" if zh else "ANSWER: "
    s = style % N_MCQ_STYLES
    if s == 0:
        return f"Let me think step by step.\nThe evidence points to {letter}.\n\n{marker}{letter}"
    if s == 1:
        return (
            f"## Analysis\n\n- **Option {o1}**: tempting, but incorrect.\n- **Option {letter}**: consistent with "
            f"the facts.\n\n**{marker.strip()} {letter}**"
        )
    if s == 2:
        return (
            f"Option ({o1}) looks plausible at first and ({o2}) is a common distractor; "
            f"one might say the answer is {o1}, but checking carefully, it is not.\n\n{marker}({letter})"
        )
    if s == 3:
        return f"Reasoning: A quick check rules out {o1}.\n{marker}**{letter}**"
    if s == 4:
        return f"<think>Maybe {o1}? ANSWER: {o1}. Hmm, no.</think>\nAfter reflection:\n\n{marker}{letter}"
    if s == 5:
        return f"Eliminating {o1} and {o2} leaves one choice.\n\n{marker}$\\boxed{{{letter}}}$"
    if s == 6:
        return f"{marker}{o1}\n\nWait, that was a slip; correcting myself.\n\n{marker}[{letter}]"
    return f"The answer is not {o1}.\n\n{marker}{letter}. (final)"


class BaseBenchmark(Benchmark):
    """Validates ``subset_list`` against ``subsets`` (unknown names get a did-you-mean); ``subset_aliases``
    maps alternative spellings; ``default_subsets`` (when set) is used instead of all subsets."""

    subset_aliases: ClassVar[dict[str, str]] = {}
    default_subsets: ClassVar[Sequence[str] | None] = None
    #: User-data benchmarks take any subset name (their files define the subsets).
    open_subsets: ClassVar[bool] = False

    def __init__(self, dataset_dir: Path | None = None, args: dict[str, Any] | None = None) -> None:
        super().__init__(dataset_dir, args)
        if not self.args.get("subset_list") and self.default_subsets is not None:
            self.subset_list = list(self.default_subsets)
        if self.open_subsets:
            return
        resolved: list[str] = []
        for s in self.subset_list:
            s = self.subset_aliases.get(s, s)
            if s not in self.subsets:
                import difflib

                close = difflib.get_close_matches(s, list(self.subsets), n=3, cutoff=0.5)
                msg = f"Unknown subset {s!r} for benchmark {self.name!r}."
                if close:
                    msg += f" Did you mean: {', '.join(close)}?"
                raise UnknownNameError(msg + f" Available: {', '.join(self.subsets)}")
            if s not in resolved:
                resolved.append(s)
        self.subset_list = resolved

    @property
    def shots_as_turns(self) -> bool:
        """``few_shot_format: turns`` puts shots in alternating user/assistant messages (default ``inline``)."""
        fmt = str(self.args.get("few_shot_format", "inline"))
        if fmt not in ("inline", "turns"):
            from evalscope.errors import ConfigError

            raise ConfigError(f"few_shot_format {fmt!r} is not supported", "use 'inline' or 'turns'")
        return fmt == "turns"


class ChoiceScorer(Scorer):
    """Single-answer MCQ: the extracted letter (among ``meta['letters']``) equals the gold letter."""

    name = "choice"
    version = "1"

    def score(self, sample: Sample, output: str) -> ScoreResult:
        letters = str(sample.meta.get("letters", "ABCD"))
        ext = extract_choice_detailed(output, letters)
        return ScoreResult(
            value=1.0 if ext.letter is not None and ext.letter == sample.gold else 0.0,
            extracted=ext.letter,
            parsed=ext.parsed,
            detail={"extraction": ext.method},
        )


class McqPrompt(PromptTemplate):
    """The MCQ prompt of :func:`mcq_sample`: ``ANSWER: X`` (``答案：X`` for Chinese benchmarks), shots inline or
    as turns (``few_shot_format``)."""

    name = "mcq"
    version = "1"

    def render(self, record: Record, bench: Benchmark) -> Sample:
        assert isinstance(bench, MultipleChoiceBenchmark)
        return mcq_sample(
            record.id,
            record.question,
            record.choices or [],
            str(record.gold),
            subset=record.subset,
            category=record.category,
            shots=record.shots,
            zh=bench.chinese(),
            preamble=record.preamble,
            meta=record.meta or None,
            turns=bench.shots_as_turns,
        )


class MultipleChoiceBenchmark(BaseBenchmark):
    """Base for single-answer MCQ benchmarks: gold is a letter, ``meta['letters']`` the valid letters."""

    zh: ClassVar[bool] = False
    prompt: ClassVar[PromptTemplate | None] = McqPrompt()
    scorer: ClassVar[Scorer | JudgeScorer | None] = ChoiceScorer()

    def chinese(self) -> bool:
        """Whether prompts and reference outputs use ``答案：`` (class default ``zh``)."""
        return self.zh

    def _others(self, sample: Sample, exclude: str) -> list[str]:
        return [c for c in str(sample.meta.get("letters", "ABCD")) if c != exclude]

    def reference_output(self, sample: Sample, style: int = 0) -> str:
        """A correct reply in one of several styles (style is taken modulo the number of styles)."""
        return render_letter(str(sample.gold), self._others(sample, str(sample.gold)), style, self.chinese())

    def wrong_output(self, sample: Sample, style: int = 0) -> str:
        """A wrong reply (a valid but wrong letter) in the same styles."""
        others = self._others(sample, str(sample.gold))
        wrong = others[style % len(others)]
        distract = [str(sample.gold), *[c for c in others if c != wrong]]
        return render_letter(wrong, distract, style, self.chinese())


def mcq_record(
    record_id: str,
    question: str,
    options: Sequence[str],
    gold: str,
    *,
    subset: str = "default",
    category: str | None = None,
    shots: Iterable[tuple[str, Sequence[str], str, str | None]] = (),
    preamble: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Record:
    """What an MCQ loader reads for one item (rendered by :class:`McqPrompt`); ``shots`` as in :func:`mcq_prompt`."""
    return Record(
        record_id,
        question,
        gold,
        subset=subset,
        category=category,
        choices=list(options),
        shots=list(shots),
        meta=dict(meta or {}),
        preamble=preamble,
    )
