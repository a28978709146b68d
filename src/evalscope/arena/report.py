"""The arena report: statistics over journaled judgments (a pure function of them) and the console board.

Everything is computed in the planned order of the judgments (question, pair, game), never in the order the
verdicts arrived, so a resumed run reports exactly what an uninterrupted one does. The schema is documented
in docs/arena.md.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalscope.arena import stats
from evalscope.arena.questions import Question
from evalscope.arena.verdict import PAIRWISE_VERDICTS

SCHEMA = "evalscope.arena/1"


@dataclass(slots=True)
class Planned:
    """One judgment to make: who is shown first (``a``) and second (``b``), or one model in single mode."""

    key: str
    question: Question
    a: str
    b: str | None
    game: int  # 0: planned order, 1: the swapped replay of game 0
    prompt: str
    answer_a: str
    answer_b: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _r(x: float | None, nd: int = 4) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), nd)


@dataclass(slots=True)
class _Game:
    q: int
    cat: str
    a: int
    b: int
    s: float  # score of a (shown first)
    w: float


def _wtl(games: list[_Game], k: int) -> np.ndarray:
    """Per model: wins, ties, losses (unweighted counts of games)."""
    out = np.zeros((k, 3), dtype=np.int64)
    for g in games:
        if g.s == 1.0:
            out[g.a, 0] += 1
            out[g.b, 2] += 1
        elif g.s == 0.0:
            out[g.a, 2] += 1
            out[g.b, 0] += 1
        else:
            out[g.a, 1] += 1
            out[g.b, 1] += 1
    return out


def _by_rating(row: dict[str, Any]) -> float:
    r = row["rating"]
    return -float(r) if r is not None else math.inf


def _ratings_block(
    games: list[_Game],
    models: list[str],
    anchor: int,
    position: bool,
    rounds: int,
    level: float,
    seed: int,
    n_questions: int,
) -> tuple[list[dict[str, Any]], float]:
    k = len(models)
    w_q = np.zeros((n_questions, k, k))
    s_q = np.zeros((n_questions, k, k))
    for g in games:
        w_q[g.q, g.a, g.b] += g.w
        s_q[g.q, g.a, g.b] += g.w * g.s
    fit = stats.fit_bt(w_q.sum(axis=0), s_q.sum(axis=0), anchor=anchor, position=position)
    lo = hi = None
    if rounds > 0 and games:
        used = np.flatnonzero(w_q.sum(axis=(1, 2)) > 0)
        boot = stats.bootstrap_bt(w_q[used], s_q[used], rounds, seed, anchor=anchor, position=position)
        lo, hi = stats.percentile_ci(boot, level)
    elo = stats.online_elo([(g.a, g.b, g.s) for g in games], k)
    wtl = _wtl(games, k)
    rows = []
    for i, m in enumerate(models):
        w, t, loss = (int(x) for x in wtl[i])
        n = w + t + loss
        rows.append(
            {
                "model": m,
                "rating": _r(fit.ratings[i], 2),
                "ci_low": None if lo is None else _r(lo[i], 2),
                "ci_high": None if hi is None else _r(hi[i], 2),
                "elo": _r(elo[i], 2),
                "wins": w,
                "ties": t,
                "losses": loss,
                "games": n,
                "win_rate": _r((w + 0.5 * t) / n) if n else None,
            }
        )
    rows.sort(key=_by_rating)
    return rows, fit.position


def build_report(
    mode: str,
    planned: list[Planned],
    entries: dict[str, dict[str, Any]],
    models: list[str],
    answers: dict[str, dict[str, str]],
    *,
    anchor: str,
    position_bias: str,
    strong_weight: float,
    rounds: int,
    level: float,
    seed: int,
    judge: dict[str, Any],
    lengths: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """The report dict of a run: ``planned`` judgments, their journal ``entries`` by key."""
    idx = {m: i for i, m in enumerate(models)}
    qindex: dict[str, int] = {}
    for p in planned:
        qindex.setdefault(p.question.question_id, len(qindex))
    n_q = len(qindex)
    cats = sorted({p.question.category for p in planned})
    done = [(p, entries[p.key]) for p in planned if p.key in entries]
    nulls = sum(1 for _, e in done if e.get("verdict") is None and e.get("score") is None)
    retried = sum(1 for _, e in done if int(e.get("attempts", 1)) > 1)
    usage = {
        "requests": sum(int(e.get("attempts", 1)) for _, e in done),
        "prompt_tokens": sum(int(e.get("prompt_tokens") or 0) for _, e in done),
        "completion_tokens": sum(int(e.get("completion_tokens") or 0) for _, e in done),
    }
    mean_len = {
        m: _r(float(np.mean(list(lengths.get(m, {}).values()))), 1) if lengths.get(m) else None
        for m in models
    }
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": mode,
        "judge": judge,
        "models": models,
        "anchor": anchor,
        "position_bias": position_bias,
        "strong_weight": strong_weight,
        "bootstrap": {"rounds": rounds, "level": level, "unit": "question", "method": "percentile"},
        "questions": n_q,
        "judgments": {"planned": len(planned), "done": len(done), "missing": len(planned) - len(done)},
        "null_judgments": {
            "count": nulls,
            "total": len(done),
            "rate": _r(nulls / len(done)) if done else None,
            "retried": retried,
        },
        "judge_usage": usage,
        "mean_answer_length": mean_len,
    }
    if mode == "single":
        report.update(_single(done, models, idx, qindex, cats, rounds, level, seed))
        return report

    games: list[_Game] = []
    for p, e in done:
        v = e.get("verdict")
        if v is None or p.b is None:
            continue
        s, strong = PAIRWISE_VERDICTS[v]
        games.append(
            _Game(
                qindex[p.question.question_id],
                p.question.category,
                idx[p.a],
                idx[p.b],
                s,
                strong_weight if strong else 1.0,
            )
        )
    position = position_bias != "none"
    a_i = idx[anchor]
    rows, beta = _ratings_block(games, models, a_i, position, rounds, level, seed, n_q)
    report["ratings"] = rows
    report["position_effect"] = (
        {"logit": _r(beta), "elo": _r(beta * stats.ELO_PER_LOGIT, 2)} if position else None
    )
    report["categories"] = {}
    for c in cats:
        sub = [g for g in games if g.cat == c]
        crow, _ = _ratings_block(sub, models, a_i, position, rounds, level, seed + 1, n_q)
        report["categories"][c] = {"ratings": crow}
    report["matrix"] = _matrix(games, models)
    report["consistency"] = _consistency(done, games)
    if mode == "pairwise-baseline":
        report["length_controlled"] = _lc(games, models, a_i, lengths, planned, done, idx, position)
    return report


def _matrix(games: list[_Game], models: list[str]) -> dict[str, Any]:
    k = len(models)
    score = np.zeros((k, k))
    n = np.zeros((k, k))
    for g in games:
        score[g.a, g.b] += g.s
        score[g.b, g.a] += 1.0 - g.s
        n[g.a, g.b] += 1
        n[g.b, g.a] += 1
    rate = [[_r(score[i, j] / n[i, j]) if n[i, j] else None for j in range(k)] for i in range(k)]
    return {"models": models, "win_rate": rate, "games": n.astype(int).tolist()}


def _consistency(done: list[tuple[Planned, dict[str, Any]]], games: list[_Game]) -> dict[str, Any]:
    by_pair: dict[tuple[str, frozenset[str]], dict[int, tuple[str, float]]] = defaultdict(dict)
    for p, e in done:
        v = e.get("verdict")
        if v is None or p.b is None:
            continue
        by_pair[(p.question.question_id, frozenset((p.a, p.b)))][p.game] = (p.a, PAIRWISE_VERDICTS[v][0])
    pairs = consistent = 0
    for g in by_pair.values():
        if 0 in g and 1 in g:
            (m0, s0), (m1, s1) = g[0], g[1]
            s1_for_m0 = s1 if m1 == m0 else 1.0 - s1
            pairs += 1
            consistent += s0 == s1_for_m0
    first = [g.s for g in games]
    decisive = [g.s for g in games if g.s != 0.5]
    return {
        "swapped_pairs": pairs,
        "consistent": consistent,
        "rate": _r(consistent / pairs) if pairs else None,
        "first_position_win_rate": _r(float(np.mean(first))) if first else None,
        "first_position_decisive_win_rate": _r(float(np.mean(decisive))) if decisive else None,
        "games": len(first),
    }


def _lc(
    games: list[_Game],
    models: list[str],
    base: int,
    lengths: dict[str, dict[str, int]],
    planned: list[Planned],
    done: list[tuple[Planned, dict[str, Any]]],
    idx: dict[str, int],
    position: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bname = models[base]
    for m in models:
        if m == bname:
            continue
        sc: list[float] = []
        dl: list[float] = []
        pos: list[float] = []
        for p, e in done:
            v = e.get("verdict")
            if v is None or p.b is None or {p.a, p.b} != {m, bname}:
                continue
            s = PAIRWISE_VERDICTS[v][0]
            first = p.a == m
            sc.append(s if first else 1.0 - s)
            qid = p.question.question_id
            dl.append(float(lengths.get(m, {}).get(qid, 0) - lengths.get(bname, {}).get(qid, 0)))
            pos.append(1.0 if first else -1.0)
        res = stats.length_controlled(np.array(sc), np.array(dl), np.array(pos) if position else None)
        out[m] = {k: (_r(v) if isinstance(v, float) else v) for k, v in res.items()}
    return out


def _single(
    done: list[tuple[Planned, dict[str, Any]]],
    models: list[str],
    idx: dict[str, int],
    qindex: dict[str, int],
    cats: list[str],
    rounds: int,
    level: float,
    seed: int,
) -> dict[str, Any]:
    scores: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    for p, e in done:
        if e.get("score") is not None:
            scores[p.a][p.question.question_id] = (p.question.category, int(e["score"]))
    per: dict[str, Any] = {}
    for m in models:
        vals = np.array([s for _, s in scores[m].values()], dtype=np.float64)
        mean, lo, hi = stats.mean_ci(vals, max(rounds, 1), seed, level)
        cat_out = {}
        for c in cats:
            cv = np.array([s for cc, s in scores[m].values() if cc == c], dtype=np.float64)
            cm, cl, ch = stats.mean_ci(cv, max(rounds, 1), seed, level)
            cat_out[c] = {"mean": _r(cm, 3), "ci_low": _r(cl, 3), "ci_high": _r(ch, 3), "n": len(cv)}
        per[m] = {
            "mean": _r(mean, 3),
            "ci_low": _r(lo, 3),
            "ci_high": _r(hi, 3),
            "n": len(vals),
            "categories": cat_out,
        }
    # implied games: on each question, the higher grade wins (for W/T/L and the online Elo)
    games = []
    k = len(models)
    for qid in sorted(qindex, key=qindex.__getitem__):
        for i in range(k):
            for j in range(i + 1, k):
                si = scores[models[i]].get(qid)
                sj = scores[models[j]].get(qid)
                if si is None or sj is None:
                    continue
                games.append(
                    _Game(
                        qindex[qid],
                        si[0],
                        i,
                        j,
                        1.0 if si[1] > sj[1] else 0.5 if si[1] == sj[1] else 0.0,
                        1.0,
                    )
                )
    wtl = _wtl(games, k)
    elo = stats.online_elo([(g.a, g.b, g.s) for g in games], k)
    rows = []
    for i, m in enumerate(models):
        w, t, loss = (int(x) for x in wtl[i])
        n = w + t + loss
        rows.append(
            {
                "model": m,
                "rating": per[m]["mean"],
                "ci_low": per[m]["ci_low"],
                "ci_high": per[m]["ci_high"],
                "elo": _r(elo[i], 2),
                "wins": w,
                "ties": t,
                "losses": loss,
                "games": n,
                "win_rate": _r((w + 0.5 * t) / n) if n else None,
            }
        )
    rows.sort(key=_by_rating)
    return {
        "ratings": rows,
        "rating_scale": "mean judge score (1-10)",
        "single": per,
        "matrix": _matrix(games, models),
        "consistency": None,
    }


def render_console(report: dict[str, Any], console: Any) -> None:
    """The leaderboard as a rich table, with the biases beneath it."""
    from rich.table import Table

    single = report["mode"] == "single"
    b = report["bootstrap"]
    title = (
        f"Arena ({report['mode']}, judge {report['judge'].get('model')}"
        + (" - SIMULATED" if report["judge"].get("simulated") else "")
        + f"; {report['questions']} questions)"
    )
    t = Table(title=title, caption=None if single else f"rating: Bradley-Terry, {report['anchor']} = 1000")
    t.add_column("#", justify="right")
    t.add_column("model")
    t.add_column("mean score" if single else "rating", justify="right")
    t.add_column(f"{round(b['level'] * 100)}% CI ({b['rounds']}x)", justify="right", no_wrap=True)
    t.add_column("elo", justify="right")
    t.add_column("W/T/L", justify="right", no_wrap=True)
    t.add_column("win rate", justify="right")
    t.add_column("mean len", justify="right")
    for n, r in enumerate(report["ratings"], 1):
        ci = "-" if r["ci_low"] is None else f"{r['ci_low']:.0f}..{r['ci_high']:.0f}"
        if single and r["ci_low"] is not None:
            ci = f"{r['ci_low']:.2f}..{r['ci_high']:.2f}"
        wr = "-" if r["win_rate"] is None else f"{100 * r['win_rate']:.1f}%"
        ml = report["mean_answer_length"].get(r["model"])
        t.add_row(
            str(n),
            r["model"],
            "-" if r["rating"] is None else f"{r['rating']:.1f}" if not single else f"{r['rating']:.2f}",
            ci,
            "-" if r["elo"] is None else f"{r['elo']:.0f}",
            f"{r['wins']}/{r['ties']}/{r['losses']}",
            wr,
            "-" if ml is None else f"{ml:.0f}",
        )
    console.print(t)
    c = report.get("consistency")
    lines = []
    if c:
        if c.get("rate") is not None:
            lines.append(f"swap consistency {100 * c['rate']:.1f}% of {c['swapped_pairs']} pairs")
        if c.get("first_position_win_rate") is not None:
            lines.append(f"first-position win rate {100 * c['first_position_win_rate']:.1f}% (50% = no bias)")
    pe = report.get("position_effect")
    if pe:
        lines.append(f"position effect {pe['elo']:+.1f} Elo (fitted out of the ratings)")
    nj = report["null_judgments"]
    lines.append(f"null judgments {nj['count']} of {nj['total']}")
    lc = report.get("length_controlled")
    if lc:
        for m, v in lc.items():
            if v.get("lc_win_rate") is not None:
                lines.append(
                    f"{m} vs {report['anchor']}: win rate {100 * v['win_rate']:.1f}%, length-controlled "
                    f"{100 * v['lc_win_rate']:.1f}%"
                )
    console.print("; ".join(lines))
