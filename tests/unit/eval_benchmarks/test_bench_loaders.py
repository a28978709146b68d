"""Loaders on small synthetic fixtures in the original file formats, plus the file-error contract (V3)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import ConfigError, DatasetError, UnknownNameError
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Sample


def make(name: str, root: Path | None, **args: Any) -> Benchmark:
    return BENCHMARKS.get(name)(root, args)


def write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def write_jsonl(path: Path, objs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")


def roundtrip(bench: Benchmark, samples: list[Sample], styles: int = 8) -> None:
    for s in samples:
        for st in range(styles):
            good = bench.reference_output(s, st)  # type: ignore[attr-defined]
            bad = bench.wrong_output(s, st)  # type: ignore[attr-defined]
            assert bench.score(s, good).value == 1.0, (s.id, st, good)
            assert bench.score(s, bad).value == 0.0, (s.id, st, bad)


# --------------------------------------------------------------------------------------------- MMLU


@pytest.fixture
def mmlu_dir(tmp_path: Path) -> Path:
    base = tmp_path / "mmlu" / "data"
    write_csv(
        base / "test" / "abstract_algebra_test.csv",
        [
            ["Find the order of Z_4.", "1", "2", "3", "4", "D"],
            ["Is Z a field?", "Yes", "No", "Only mod p", "Sometimes", "B"],
            ["Is Z a field?", "Yes", "No", "Only mod p", "Sometimes", "B"],  # duplicate row: ids stay unique
        ],
    )
    write_csv(
        base / "test" / "philosophy_test.csv",
        [["Who wrote the Republic?", "Plato", "Kant", "Hume", "Mill", "A"]],
    )
    write_csv(
        base / "dev" / "abstract_algebra_dev.csv",
        [["Dev q1?", "a", "b", "c", "d", "C"], ["Dev q2?", "a", "b", "c", "d", "A"]],
    )
    write_csv(base / "dev" / "philosophy_dev.csv", [["Dev p?", "a", "b", "c", "d", "B"]])
    return tmp_path


def test_mmlu_loads_with_categories_and_shots(mmlu_dir: Path) -> None:
    b = make("mmlu", mmlu_dir, subset_list=["abstract_algebra", "philosophy"], few_shot_num=1)
    samples = b.load()
    assert [s.gold for s in samples] == ["D", "B", "B", "A"]
    assert len({s.id for s in samples}) == 4
    assert {s.category for s in samples} == {"STEM", "humanities"}
    content = samples[0].messages[0]["content"]
    assert "ANSWER: X" in content and "Dev q1?" in content and "Dev q2?" not in content
    assert content.index("Dev q1?") < content.index("Find the order of Z_4.")
    assert len(b.data_files()) == 4
    roundtrip(b, samples)
    # ids are stable across loads
    assert [s.id for s in samples] == [
        s.id for s in make("mmlu", mmlu_dir, subset_list=["abstract_algebra", "philosophy"]).load()
    ]


def test_mmlu_shots_as_turns(mmlu_dir: Path) -> None:
    b = make("mmlu", mmlu_dir, subset_list=["abstract_algebra"], few_shot_num=2, few_shot_format="turns")
    s = b.load()[0]
    assert [m["role"] for m in s.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert s.messages[1]["content"] == "ANSWER: C" and "Find the order" in s.messages[-1]["content"]
    with pytest.raises(ConfigError, match="few_shot_format"):
        make("mmlu", mmlu_dir, subset_list=["abstract_algebra"], few_shot_num=1, few_shot_format="x").load()


def test_mmlu_unknown_subject_suggests(mmlu_dir: Path) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: philosophy"):
        make("mmlu", mmlu_dir, subset_list=["philosphy"])


def test_mmlu_missing_subject_file_names_layout(mmlu_dir: Path) -> None:
    b = make("mmlu", mmlu_dir, subset_list=["anatomy"])
    with pytest.raises(DatasetError) as e:
        b.load()
    assert "anatomy_test.csv" in e.value.message and "--dataset-dir" in (e.value.hint or "")


def test_mmlu_bad_row(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "mmlu/data/test/anatomy_test.csv",
        [["q", "a", "b", "c", "d", "A"], ["q2", "a", "b", "c", "E"]],
    )
    with pytest.raises(DatasetError, match=r"anatomy_test.csv line 2: 5 columns"):
        make("mmlu", tmp_path, subset_list=["anatomy"]).load()
    write_csv(tmp_path / "mmlu/data/test/anatomy_test.csv", [["q", "a", "b", "c", "d", "Z"]])
    with pytest.raises(DatasetError, match=r"line 1: answer 'Z'"):
        make("mmlu", tmp_path, subset_list=["anatomy"]).load()


# --------------------------------------------------------------------------------------- errors (V3)


def test_no_dataset_dir_names_option() -> None:
    with pytest.raises(DatasetError) as e:
        make("gsm8k", None).load()
    assert "--dataset-dir" in e.value.one_line() and "gsm8k/test.jsonl" in e.value.one_line()


def test_missing_data_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as e:
        make("arc", tmp_path).load()
    assert "arc" in e.value.message and "--dataset-dir" in (e.value.hint or "")


def test_jsonl_bad_json_reports_line(tmp_path: Path) -> None:
    p = tmp_path / "gsm8k" / "test.jsonl"
    p.parent.mkdir()
    p.write_text('{"question": "q", "answer": "x\\n#### 3"}\n\n{"question": oops}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"test.jsonl line 3: bad JSON"):
        make("gsm8k", tmp_path).load()


def test_jsonl_missing_field_reports_line(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "gsm8k" / "test.jsonl", [{"question": "q", "answer": "#### 1"}, {"question": "q2"}]
    )
    with pytest.raises(DatasetError, match=r"line 2: missing field\(s\) answer"):
        make("gsm8k", tmp_path).load()


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "gsm8k" / "test.jsonl"
    p.parent.mkdir()
    p.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DatasetError, match="is empty"):
        make("gsm8k", tmp_path).load()


def test_wrong_encoding_reports_line(tmp_path: Path) -> None:
    p = tmp_path / "gsm8k" / "test.jsonl"
    p.parent.mkdir()
    p.write_bytes(b'{"question": "q", "answer": "#### 1"}\n{"question": "caf\xe9", "answer": "#### 2"}\n')
    with pytest.raises(DatasetError, match=r"line 2: not valid UTF-8"):
        make("gsm8k", tmp_path).load()


def test_gsm8k_without_final_answer(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [{"question": "q", "answer": "no final"}])
    with pytest.raises(DatasetError, match=r"line 1: 'answer' has no '#### <number>'"):
        make("gsm8k", tmp_path).load()


def test_csv_missing_column(tmp_path: Path) -> None:
    write_csv(tmp_path / "math/simple-evals/math_test.csv", [["", "Question"], ["0", "What?"]])
    with pytest.raises(DatasetError, match=r"math_test.csv line 1: header lacks column\(s\) Answer"):
        make("competition_math", tmp_path).load()


# ------------------------------------------------------------------------------------------ GSM8K


def test_gsm8k_shots_and_gold(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "gsm8k" / "test.jsonl",
        [{"question": "How many?", "answer": "2+2=<<2+2=4>>4\n#### 1,004"}],
    )
    write_jsonl(tmp_path / "gsm8k" / "train.jsonl", [{"question": "T?", "answer": "1+1=<<1+1=2>>2\n#### 2"}])
    b = make("gsm8k", tmp_path, few_shot_num=1)
    (s,) = b.load()
    assert s.gold == "1004"
    content = s.messages[0]["content"]
    assert "\\boxed{2}" in content and "<<" not in content and "\\boxed{}" in content
    roundtrip(b, [s])
    (t,) = make("gsm8k", tmp_path, few_shot_num=1, few_shot_format="turns").load()
    assert [m["role"] for m in t.messages] == ["user", "assistant", "user"]
    assert "\\boxed{2}" in t.messages[1]["content"]
    assert b.score(s, "The total is \\boxed{1,004}.").value == 1.0
    assert b.score(s, "The total is \\boxed{1004.0}.").value == 1.0
    assert b.score(s, "I computed 1004 then \\boxed{1005}").value == 0.0
    r = b.score(s, "no idea")
    assert r.value == 0.0 and not r.parsed


# ------------------------------------------------------------------------------------------ HellaSwag


def test_hellaswag(tmp_path: Path) -> None:
    rows = [
        {
            "ind": 24,
            "activity_label": "Roof shingle removal",
            "ctx_a": "A man is sitting on a roof.",
            "ctx_b": "he",
            "endings": [
                "is using wrap.",
                "starts pulling up roofing.",
                "is ripping level tiles.",
                "eats [title] cake.",
            ],
            "label": 1,
        },
        {
            "ind": 92,
            "activity_label": "Clean",
            "ctx_a": "Some text",
            "ctx_b": "",
            "endings": ["a", "b", "c", "d"],
            "label": "3",
        },
    ]
    write_jsonl(tmp_path / "hellaswag" / "hellaswag_val.jsonl", rows)
    b = make("hellaswag", tmp_path)
    samples = b.load()
    assert [s.id for s in samples] == ["24", "92"]
    assert [s.gold for s in samples] == ["B", "D"]
    content = samples[0].messages[0]["content"]
    assert "A man is sitting on a roof. He..." in content
    assert "D) eats. cake." in content
    roundtrip(b, samples)
    write_jsonl(tmp_path / "hellaswag" / "hellaswag_val.jsonl", [{**rows[0], "endings": ["a", "b"]}])
    with pytest.raises(DatasetError, match="line 1: 'endings' must be a list of 4"):
        make("hellaswag", tmp_path).load()
    with pytest.raises(DatasetError, match=r"hellaswag_train.jsonl"):
        write_jsonl(tmp_path / "hellaswag" / "hellaswag_val.jsonl", rows)
        make("hellaswag", tmp_path, few_shot_num=2).load()


# ------------------------------------------------------------------------------------------ GPQA

GPQA_HEADER = [
    "Pre-Revision Question",
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
    "Record ID",
    "High-level domain",
    "Subdomain",
]


def _gpqa_rows(n: int) -> list[list[str]]:
    return [
        [
            f"pre {i}",
            f"Question {i}?",
            f"right {i}",
            f"wrong1 {i}",
            f"wrong2 {i}",
            f"wrong3 {i}",
            f"rec{i:04d}",
            "Physics",
            "Optics",
        ]
        for i in range(n)
    ]


def test_gpqa_seeded_shuffle(tmp_path: Path) -> None:
    write_csv(tmp_path / "gpqa" / "gpqa_diamond.csv", [GPQA_HEADER, *_gpqa_rows(40)])
    b = make("gpqa", tmp_path)
    assert b.subset_list == ["diamond"]
    samples = b.load()
    assert len(samples) == 40 and samples[0].id == "diamond/rec0000"
    for s in samples:
        opts = s.meta["options"]
        assert opts["ABCD".index(s.gold)].startswith("right")
        assert sorted(o.split()[0] for o in opts) == ["right", "wrong1", "wrong2", "wrong3"]
    golds = [s.gold for s in samples]
    assert len(set(golds)) == 4  # the correct answer is not always in the same place
    again = make("gpqa", tmp_path).load()
    assert [s.gold for s in again] == golds and [s.meta["options"] for s in again] == [
        s.meta["options"] for s in samples
    ]
    assert samples[0].category == "Physics"
    roundtrip(b, samples[:5])


def test_gpqa_alias_and_missing(tmp_path: Path) -> None:
    write_csv(tmp_path / "gpqa" / "gpqa_main.csv", [GPQA_HEADER, *_gpqa_rows(2)])
    assert len(make("gpqa", tmp_path, subset_list=["gpqa_main"]).load()) == 2
    with pytest.raises(DatasetError, match=r"gpqa_diamond.csv"):
        make("gpqa", tmp_path).load()
    with pytest.raises(UnknownNameError, match="diamond"):
        make("gpqa", tmp_path, subset_list=["diamnd"])


# ------------------------------------------------------------------------------------------ ARC


def test_arc_numeric_labels(tmp_path: Path) -> None:
    rows = [
        {
            "id": "NY_1",
            "question": {
                "stem": "Pick?",
                "choices": [{"text": t, "label": str(i + 1)} for i, t in enumerate("wxyz")],
            },
            "answerKey": "3",
        },
        {
            "id": "M_2",
            "question": {
                "stem": "Three?",
                "choices": [{"text": t, "label": "ABC"[i]} for i, t in enumerate("abc")],
            },
            "answerKey": "B",
        },
    ]
    write_jsonl(tmp_path / "arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl", rows)
    b = make("arc", tmp_path, subset_list=["ARC-Easy"])
    samples = b.load()
    assert [(s.id, s.gold, s.meta["letters"]) for s in samples] == [
        ("NY_1", "C", "ABCD"),
        ("M_2", "B", "ABC"),
    ]
    roundtrip(b, samples)
    bad = [{**rows[0], "answerKey": "7"}]
    write_jsonl(tmp_path / "arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl", bad)
    with pytest.raises(DatasetError, match="line 1: answerKey '7'"):
        make("arc", tmp_path, subset_list=["ARC-Easy"]).load()


# --------------------------------------------------------------------------------- CMMLU / C-Eval


def test_cmmlu_and_ceval(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "cmmlu/test/agronomy.csv",
        [["", "Question", "A", "B", "C", "D", "Answer"], ["0", "问题？", "甲", "乙", "丙", "丁", "B"]],
    )
    b = make("cmmlu", tmp_path, subset_list=["agronomy"])
    (s,) = b.load()
    assert s.category == "Other" and "答案：X" in s.messages[0]["content"]
    roundtrip(b, [s])
    assert b.score(s, "分析……\n答案：B").value == 1.0
    assert b.score(s, "分析……\n答案:B").value == 1.0

    hdr = ["id", "question", "A", "B", "C", "D", "answer"]
    write_csv(tmp_path / "ceval/val/logic_val.csv", [hdr, ["7", "逻辑？", "a", "b", "c", "d", "C"]])
    write_csv(
        tmp_path / "ceval/dev/logic_dev.csv",
        [[*hdr, "explanation"], ["0", "示例？", "a", "b", "c", "d", "A", "因为……"]],
    )
    c = make("ceval", tmp_path, subset_list=["logic"], few_shot_num=1)
    (t,) = c.load()
    assert t.id == "logic/7" and t.category == "Humanities" and "因为……\n答案：A" in t.messages[0]["content"]
    roundtrip(c, [t])
    with pytest.raises(DatasetError, match="no public labels"):
        make("ceval", tmp_path, subset_list=["logic"], split="test").load()


# ------------------------------------------------------------------------------------ TruthfulQA / BBH


def test_truthful_qa_mc1_mc2(tmp_path: Path) -> None:
    data = [
        {
            "question": "Q?",
            "mc1_targets": {"true one": 1, "f1": 0, "f2": 0, "f3": 0},
            "mc2_targets": {"t1": 1, "t2": 1, "f1": 0, "f2": 0},
        }
    ]
    p = tmp_path / "truthfulqa/data/v1/mc_task.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(data), encoding="utf-8")
    b = make("truthful_qa", tmp_path)
    mc1, mc2 = b.load()
    assert mc1.meta["options"][" ABCD".index(mc1.gold) - 1] == "true one"
    true = sorted(mc2.gold)
    false = [c for c in "ABCD" if c not in true]
    assert {mc2.meta["options"]["ABCD".index(c)] for c in true} == {"t1", "t2"}
    assert b.score(mc2, f"ANSWER: {true[0]}, {true[1]}").value == 1.0
    assert b.score(mc2, f"ANSWER: {true[0]}").value == 1.0
    assert b.score(mc2, f"ANSWER: {true[0]}, {false[0]}").value == 0.5
    r = b.score(mc2, f"ANSWER: {true[0]}, {false[0]}")
    assert r.detail["recall"] == 0.5
    assert b.score(mc2, f"ANSWER: {false[0]}, {false[1]}").value == 0.0
    assert not b.score(mc2, "no marker").parsed
    roundtrip(b, [mc1, mc2])
    keep = make("truthful_qa", tmp_path, shuffle_options=False).load()
    assert keep[0].gold == "A" and keep[1].gold == ["A", "B"]


def test_bbh_synthetic(tmp_path: Path) -> None:
    (tmp_path / "bbh/bbh").mkdir(parents=True)
    (tmp_path / "bbh/cot-prompts").mkdir(parents=True)
    ex = {"examples": [{"input": "Pick one.\nOptions:\n(A) x\n(B) y", "target": "(B)"}]}
    (tmp_path / "bbh/bbh/snarks.json").write_text(json.dumps(ex), encoding="utf-8")
    prompt = "CANARY\n-----\nDetermine sarcasm.\n\nQ: one?\nA: Let's think step by step.\nSo the answer is (A).\n\nQ: two?\nA: Let's think step by step.\nSo the answer is (B)."
    (tmp_path / "bbh/cot-prompts/snarks.txt").write_text(prompt, encoding="utf-8")
    free = {"examples": [{"input": "True and False is", "target": "False"}]}
    (tmp_path / "bbh/bbh/boolean_expressions.json").write_text(json.dumps(free), encoding="utf-8")
    (tmp_path / "bbh/cot-prompts/boolean_expressions.txt").write_text(prompt, encoding="utf-8")
    b = make("bbh", tmp_path, subset_list=["snarks", "boolean_expressions"], few_shot_num=1)
    s_mc, s_free = b.load()
    c = s_mc.messages[0]["content"]
    assert (
        "CANARY" not in c
        and "Q: one?" in c
        and "Q: two?" not in c
        and c.endswith("A: Let's think step by step.")
    )
    assert b.score(s_mc, "A is wrong. So the answer is (B).").value == 1.0
    assert b.score(s_mc, "So the answer is B").value == 1.0
    assert b.score(s_mc, "So the answer is (B). Hmm, so the answer is (A).").value == 0.0
    assert b.score(s_free, "So the answer is False.").value == 1.0
    assert b.score(s_free, "So the answer is **false**").value == 1.0
    assert not b.score(s_free, "I give up").parsed
    roundtrip(b, [s_mc, s_free], styles=5)


# ------------------------------------------------------------------------------------------ general


def test_general_mcq_jsonl_and_csv(tmp_path: Path) -> None:
    d = tmp_path / "mine"
    write_jsonl(
        d / "bio_val.jsonl", [{"id": "q1", "question": "Cells?", "A": "x", "B": "y", "C": "z", "answer": "C"}]
    )
    write_jsonl(d / "bio_dev.jsonl", [{"question": "Dev?", "A": "x", "B": "y", "answer": "A"}])
    write_csv(
        d / "chem_val.csv", [["question", "A", "B", "C", "D", "answer"], ["Atoms?", "p", "q", "r", "", "b"]]
    )
    write_csv(d / "chem_dev.csv", [["question", "A", "B", "answer"], ["Dev chem?", "p", "q", "A"]])
    b = make("general_mcq", None, local_path=str(d), few_shot_num=1)
    samples = b.load()
    assert (samples[0].id, samples[0].gold, samples[0].meta["letters"]) == ("bio/q1", "C", "ABC")
    assert samples[1].subset == "chem" and samples[1].gold == "B" and samples[1].meta["letters"] == "ABC"
    assert "Dev?" in samples[0].messages[0]["content"]
    roundtrip(b, samples)
    zh = make("general_mcq", None, local_path=str(d), language="zh", subset_list=["chem"])
    (z,) = zh.load()
    assert "答案：X" in z.messages[0]["content"]
    write_jsonl(d / "bad_val.jsonl", [{"question": "Q", "A": "x", "B": "y", "answer": "D"}])
    with pytest.raises(DatasetError, match=r"bad_val.jsonl line 1: answer 'D'"):
        make("general_mcq", None, local_path=str(d), subset_list=["bad"]).load()


def test_general_qa(tmp_path: Path) -> None:
    d = tmp_path / "general_qa"
    write_jsonl(
        d / "faq.jsonl",
        [
            {
                "query": "Capital of France?",
                "response": "Paris is the capital of France.",
                "system": "Be brief.",
            },
            {"question": "2+2?", "answer": ["4", "four"]},
        ],
    )
    b = make("general_qa", tmp_path)
    s1, s2 = b.load()
    assert s1.messages[0] == {"role": "system", "content": "Be brief."}
    r = b.score(s1, "Paris is the capital of France.")
    assert (
        r.value == 1.0
        and r.detail["bleu"] == pytest.approx(1.0)
        and r.detail["rouge_l"] == pytest.approx(1.0)
    )
    r2 = b.score(s1, "The capital is Paris.")
    assert r2.value == 0.0 and 0 < r2.detail["rouge_l"] < 1
    assert b.score(s2, "Four").value == 1.0
    roundtrip(b, [s1, s2], styles=2)
    agg = b.aggregate([(s1, 0, r), (s1, 0, r2)])
    assert agg["metrics"]["exact_match"] == 0.5
    rb = make("general_qa", tmp_path, metric="rouge_l")
    assert rb.score(s1, "The capital is Paris.").value == r2.detail["rouge_l"]
    write_jsonl(d / "broken.jsonl", [{"question": "q"}])
    with pytest.raises(DatasetError, match=r"broken.jsonl line 1: needs a question field"):
        make("general_qa", tmp_path, subset_list=["broken"]).load()


def test_registry_lists_all_benchmarks() -> None:
    for n in (
        "mmlu",
        "cmmlu",
        "ceval",
        "gsm8k",
        "arc",
        "hellaswag",
        "truthful_qa",
        "competition_math",
        "math_500",
        "gpqa",
        "bbh",
        "general_mcq",
        "general_qa",
    ):
        cls = BENCHMARKS.get(n)
        assert cls.name == n and cls.version
    with pytest.raises(UnknownNameError, match="Did you mean: gsm8k"):
        BENCHMARKS.get("gsm8")
