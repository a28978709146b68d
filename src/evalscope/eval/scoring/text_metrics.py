"""Free-text metrics: exact match here; BLEU from ``sacrebleu`` and ROUGE-L from ``rouge-score``, so that the
numbers are comparable with published ones.

* :func:`exact_match`: 1.0 when the SQuAD-normalised strings are equal (lower case, punctuation and the
  articles a/an/the removed, whitespace collapsed), else 0.0.
* :func:`bleu`: sacrebleu's sentence BLEU (``BLEU(effective_order=True).sentence_score``: exponential
  smoothing, tokenizer ``13a``, case-sensitive), divided by 100 (and clamped, against float rounding) to lie in [0, 1]. Text with CJK characters is
  tokenised with sacrebleu's ``zh`` tokenizer (one token per Chinese character), as published Chinese BLEU is.
  :func:`corpus_bleu` is sacrebleu's ``corpus_bleu`` (pooled counts); items with fewer references than others
  repeat their first reference, which leaves BLEU unchanged.
* :func:`rouge_l`: rouge-score's ``rougeL`` F-measure (no stemming, its default tokenizer: lower case, runs of
  ``[a-z0-9]``), the maximum over references (``score_multi``). For text with CJK characters every CJK character
  is a token (rouge-score's default tokenizer would drop them and score 0).

Both libraries are imported on first use (they are slow to import; ``evalscope --help`` must stay fast).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

__all__ = ["bleu", "corpus_bleu", "exact_match", "normalize_text", "rouge_l", "tokenize"]

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(rf"[{_CJK}]")
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_]+|[^\s{_CJK}]", re.UNICODE)
_ROUGE_CJK_TOKEN = re.compile(rf"[{_CJK}]|[a-z0-9]+")
_ZH_PUNCT = "，。、；：？！“”‘’（）【】《》…—·「」『』"


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split text into tokens: every CJK character, runs of letters/digits, other single characters (used for
    length statistics; the metrics use their libraries' own tokenizers)."""
    t = text.lower() if lowercase else text
    return _TOKEN.findall(t)


def normalize_text(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    t = text.lower()
    t = "".join(" " if c in string.punctuation or c in _ZH_PUNCT else c for c in t)
    t = re.sub(r"\b(a|an|the)\b", " ", t)
    return " ".join(t.split())


def exact_match(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised reference."""
    refs = _refs(references)
    p = normalize_text(prediction)
    return 1.0 if any(p == normalize_text(r) for r in refs) else 0.0


def _refs(references: str | Sequence[str]) -> list[str]:
    return [references] if isinstance(references, str) else [str(r) for r in references]


def _has_cjk(*texts: str) -> bool:
    return any(_CJK_RE.search(t) for t in texts)


@lru_cache(maxsize=4)
def _sentence_bleu(tokenizer: str) -> Any:
    from sacrebleu.metrics.bleu import BLEU

    return BLEU(effective_order=True, tokenize=tokenizer)


def bleu(prediction: str, references: str | Sequence[str]) -> float:
    """Sentence BLEU in [0, 1] (sacrebleu; see the module docstring)."""
    refs = _refs(references)
    if not refs:
        return 0.0
    tok = "zh" if _has_cjk(prediction, *refs) else "13a"
    return min(1.0, float(_sentence_bleu(tok).sentence_score(prediction, refs).score) / 100.0)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """Corpus BLEU in [0, 1] (sacrebleu's ``corpus_bleu``, pooled counts)."""
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference sets")
    per_item = [_refs(r) or [""] for r in references]
    width = max((len(r) for r in per_item), default=1)
    streams = [[r[i] if i < len(r) else r[0] for r in per_item] for i in range(width)]
    tok = "zh" if _has_cjk(*predictions, *(x for r in per_item for x in r)) else "13a"
    return min(1.0, float(sacrebleu.corpus_bleu(list(predictions), streams, tokenize=tok).score) / 100.0)


class _CJKTokenizer:
    """rouge-score tokenizer for text with CJK characters: each CJK character is a token, plus lower-cased runs
    of ``[a-z0-9]`` (what rouge-score's default tokenizer keeps)."""

    def tokenize(self, text: str) -> list[str]:
        return _ROUGE_CJK_TOKEN.findall(text.lower())


@lru_cache(maxsize=2)
def _rouge_scorer(cjk: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_CJKTokenizer() if cjk else None)


def rouge_l(prediction: str, references: str | Sequence[str]) -> float:
    """ROUGE-L F1 in [0, 1], the maximum over references (rouge-score; see the module docstring)."""
    refs = _refs(references)
    if not refs:
        return 0.0
    scorer = _rouge_scorer(_has_cjk(prediction, *refs))
    return float(scorer.score_multi(refs, prediction)["rougeL"].fmeasure)
