"""Free-text metrics: exact match, BLEU and ROUGE-L, implemented here (no external dependency).

Tokenisation (:func:`tokenize`): lower-cased; every CJK character is a token; runs of letters/digits are tokens;
other non-space characters are single tokens.

* :func:`exact_match`: 1.0 when the SQuAD-normalised strings are equal (lower case, punctuation and the
  articles a/an/the removed, whitespace collapsed), else 0.0.
* :func:`bleu`: sentence BLEU-4 (Papineni et al. 2002) with clipped n-gram precisions, uniform weights, the
  brevity penalty against the reference closest in length, and add-one smoothing of the 2..4-gram precisions
  (Lin & Och 2004) so that short answers do not collapse to 0; identical strings score 1.0.
  :func:`corpus_bleu` pools the counts over a corpus (no smoothing), as in the original definition.
* :func:`rouge_l`: ROUGE-L F1 from the longest common subsequence (Lin 2004), maximum over references.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = ["bleu", "corpus_bleu", "exact_match", "normalize_text", "rouge_l", "tokenize"]

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_]+|[^\s{_CJK}]", re.UNICODE)
_ZH_PUNCT = "，。、；：？！“”‘’（）【】《》…—·「」『』"


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split text into tokens (see the module docstring)."""
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
    refs = [references] if isinstance(references, str) else list(references)
    p = normalize_text(prediction)
    return 1.0 if any(p == normalize_text(r) for r in refs) else 0.0


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _bleu_stats(hyp: list[str], refs: list[list[str]], max_n: int) -> tuple[list[int], list[int], int, int]:
    """Clipped matches and totals per order, hypothesis length, closest reference length."""
    matches, totals = [], []
    for n in range(1, max_n + 1):
        h = _ngrams(hyp, n)
        max_ref: Counter[tuple[str, ...]] = Counter()
        for r in refs:
            for g, c in _ngrams(r, n).items():
                if c > max_ref[g]:
                    max_ref[g] = c
        matches.append(sum(min(c, max_ref[g]) for g, c in h.items()))
        totals.append(max(len(hyp) - n + 1, 0))
    ref_len = min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1] if refs else 0
    return matches, totals, len(hyp), ref_len


def _combine(matches: list[int], totals: list[int], hyp_len: int, ref_len: int, smooth: bool) -> float:
    if hyp_len == 0:
        return 0.0
    log_p = 0.0
    for n, (m, t) in enumerate(zip(matches, totals, strict=True), start=1):
        if smooth and n > 1:
            m, t = m + 1, t + 1
        if m == 0 or t == 0:
            return 0.0
        log_p += math.log(m / t)
    log_p /= len(matches)
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return min(1.0, bp * math.exp(log_p))


def bleu(prediction: str, references: str | Sequence[str], max_n: int = 4, smooth: bool = True) -> float:
    """Sentence BLEU in [0, 1] (see the module docstring)."""
    refs = [references] if isinstance(references, str) else list(references)
    hyp = tokenize(prediction)
    rt = [tokenize(r) for r in refs]
    if not hyp or not any(rt):
        return 1.0 if not hyp and not any(rt) else 0.0
    return _combine(*_bleu_stats(hyp, rt, max_n), smooth=smooth)


def corpus_bleu(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]], max_n: int = 4
) -> float:
    """Corpus BLEU in [0, 1]: n-gram counts and lengths pooled over all pairs, no smoothing."""
    tm = [0] * max_n
    tt = [0] * max_n
    hl = rl = 0
    for p, r in zip(predictions, references, strict=True):
        refs = [r] if isinstance(r, str) else list(r)
        m, t, h, rr = _bleu_stats(tokenize(p), [tokenize(x) for x in refs], max_n)
        tm = [a + b for a, b in zip(tm, m, strict=True)]
        tt = [a + b for a, b in zip(tt, t, strict=True)]
        hl += h
        rl += rr
    return _combine(tm, tt, hl, rl, smooth=False)


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, references: str | Sequence[str]) -> float:
    """ROUGE-L F1 in [0, 1], the maximum over references."""
    refs = [references] if isinstance(references, str) else list(references)
    hyp = tokenize(prediction)
    best = 0.0
    for r in refs:
        ref = tokenize(r)
        if not hyp or not ref:
            best = max(best, 1.0 if not hyp and not ref else 0.0)
            continue
        lcs = _lcs(hyp, ref)
        if lcs == 0:
            continue
        p, rc = lcs / len(hyp), lcs / len(ref)
        best = max(best, 2 * p * rc / (p + rc))
    return best
