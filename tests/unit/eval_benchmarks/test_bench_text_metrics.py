"""BLEU, ROUGE-L and exact match against hand-computed values."""

from __future__ import annotations

import math

import pytest

from evalscope.eval.scoring.text_metrics import (
    bleu,
    corpus_bleu,
    exact_match,
    normalize_text,
    rouge_l,
    tokenize,
)


def test_tokenize() -> None:
    assert tokenize("Hello, World!") == ["hello", ",", "world", "!"]
    assert tokenize("北京是首都") == ["北", "京", "是", "首", "都"]
    assert tokenize("GPT-4 好") == ["gpt", "-", "4", "好"]


def test_exact_match() -> None:
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Paris", ["London", "paris"]) == 1.0
    assert exact_match("Paris France", "Paris") == 0.0
    assert normalize_text("  A  cat,  the DOG! ") == "cat dog"


def test_bleu_identical_and_disjoint() -> None:
    assert bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert bleu("xyz qqq", "the cat sat on the mat") == 0.0
    assert bleu("", "something") == 0.0


def test_bleu_hand_computed() -> None:
    # hyp 6 tokens, ref 7 tokens; unigram 5/6, bigram 3/5, trigram 2/4, 4-gram 1/3
    hyp = "the cat sat on a mat"
    ref = "the cat sat on the red mat"
    p = [5 / 6, (3 + 1) / (5 + 1), (2 + 1) / (4 + 1), (1 + 1) / (3 + 1)]  # add-one smoothing for n > 1
    bp = math.exp(1 - 7 / 6)
    expected = bp * math.exp(sum(math.log(x) for x in p) / 4)
    assert bleu(hyp, ref) == pytest.approx(expected)
    raw = [5 / 6, 3 / 5, 2 / 4, 1 / 3]
    assert bleu(hyp, ref, smooth=False) == pytest.approx(bp * math.exp(sum(math.log(x) for x in raw) / 4))
    # without smoothing a missing 4-gram match gives 0
    assert bleu("the cat sat", "the cat sat on", smooth=False) == 0.0


def test_bleu_clipping_and_multiple_refs() -> None:
    # "the the the" against "the cat": unigram clipped to 1/3
    assert bleu("the the the", "the cat", max_n=1) == pytest.approx(1 / 3)
    assert bleu("a b c d", ["x y", "a b c d"]) == pytest.approx(1.0)


def test_corpus_bleu() -> None:
    assert corpus_bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(1.0)
    assert 0 < corpus_bleu(["a b c d e", "f g h i"], ["a b c d e", "f g h j"]) < 1


def test_rouge_l() -> None:
    # LCS("a b c d", "a c d e") = 3 -> P = R = 3/4 -> F = 0.75
    assert rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    # LCS = 2, P = 2/2, R = 2/4 -> F = 2/3
    assert rouge_l("a d", "a b c d") == pytest.approx(2 / 3)
    assert rouge_l("x", "y") == 0.0
    assert rouge_l("same words", "same words") == pytest.approx(1.0)
    assert rouge_l("a d", ["zzz", "a b c d"]) == pytest.approx(2 / 3)
