"""Exact match by hand; BLEU and ROUGE-L must equal sacrebleu's and rouge-score's own outputs (issue 11 item 11)."""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

from evalscope.eval.scoring.text_metrics import (
    bleu,
    corpus_bleu,
    exact_match,
    normalize_text,
    rouge_l,
    tokenize,
)

PAIRS: list[tuple[str, list[str]]] = [
    ("the cat sat on a mat", ["the cat sat on the red mat"]),
    ("The Eiffel Tower is in Paris, France.", ["The Eiffel Tower is located in Paris.", "It is in Paris."]),
    ("It's 3.5 km long -- isn't it?", ["It is 3.5 kilometres long, is it not?"]),
    ("a b c d", ["x y", "a b c d"]),
    ("the the the the", ["the cat"]),
    ("Completely unrelated words here", ["the quick brown fox jumps over the lazy dog"]),
    ("short", ["a much longer reference sentence than the hypothesis"]),
    ("GPT-4 scored 86.4% on MMLU in 2023", ["In 2023 GPT-4 scored 86.4 % on MMLU"]),
]


def test_tokenize() -> None:
    assert tokenize("Hello, World!") == ["hello", ",", "world", "!"]
    assert tokenize("北京是首都") == ["北", "京", "是", "首", "都"]
    assert tokenize("GPT-4 好") == ["gpt", "-", "4", "好"]


def test_exact_match() -> None:
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Paris", ["London", "paris"]) == 1.0
    assert exact_match("Paris France", "Paris") == 0.0
    assert normalize_text("  A  cat,  the DOG! ") == "cat dog"


@pytest.mark.parametrize(("hyp", "refs"), PAIRS)
def test_bleu_equals_sacrebleu(hyp: str, refs: list[str]) -> None:
    expected = BLEU(effective_order=True).sentence_score(hyp, refs).score / 100
    assert bleu(hyp, refs) == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= bleu(hyp, refs) <= 1.0


def test_bleu_known_values() -> None:
    assert bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    # sacrebleu's published value for this pair (exp smoothing, effective order): 45.48
    assert bleu("the cat sat on a mat", "the cat sat on the red mat") == pytest.approx(0.4548019, abs=1e-6)
    assert bleu("xyz qqq", "the cat sat on the mat") == 0.0


def test_bleu_chinese_uses_the_zh_tokenizer() -> None:
    hyp, ref = "北京是首都", "北京是中国的首都"
    expected = BLEU(effective_order=True, tokenize="zh").sentence_score(hyp, [ref]).score / 100
    assert bleu(hyp, ref) == pytest.approx(expected) and 0 < expected < 1


def test_corpus_bleu_equals_sacrebleu() -> None:
    hyps = [h for h, _ in PAIRS]
    refs = [r for _, r in PAIRS]
    width = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else r[0] for r in refs] for i in range(width)]
    assert corpus_bleu(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score / 100)
    # repeating a reference does not change sacrebleu's BLEU: the padding above is neutral
    single = [[r[0] for r in refs]]
    assert sacrebleu.corpus_bleu(hyps, single).score == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [single[0], single[0]]).score
    )
    assert corpus_bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(1.0)


@pytest.mark.parametrize(("hyp", "refs"), PAIRS)
def test_rouge_l_equals_rouge_score(hyp: str, refs: list[str]) -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    expected = max(scorer.score(r, hyp)["rougeL"].fmeasure for r in refs)
    assert rouge_l(hyp, refs) == pytest.approx(expected, abs=1e-12)


def test_rouge_l_known_values() -> None:
    # LCS("a b c d", "a c d e") = 3 -> P = R = 3/4 -> F = 0.75
    assert rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    assert rouge_l("a d", ["zzz", "a b c d"]) == pytest.approx(2 / 3)
    assert rouge_l("x", "y") == 0.0


def test_rouge_l_chinese_counts_characters() -> None:
    # rouge-score's own tokenizer drops CJK text entirely; ours keeps one token per character.
    assert rouge_scorer.RougeScorer(["rougeL"]).score("北京是首都", "北京是首都")["rougeL"].fmeasure == 0.0
    # LCS(北京是首都, 北京是中国的首都) = 5 -> P = 1, R = 5/8
    assert rouge_l("北京是首都", "北京是中国的首都") == pytest.approx(2 * (5 / 8) / (1 + 5 / 8))
