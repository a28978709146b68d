"""ToolBench-static scoring: one agent step (plan, action, arguments, answer) against its reference step.

The rules are the ToolBench-static ones (Qin et al. 2023; EvalScope's ``third_party/toolbench_static``), here
written from their definitions:

* a step is read from ReAct text: the text after the last ``Action:`` (up to ``Action Input:``) is the action,
  the text after the last ``Action Input:`` its JSON arguments. ``Finish`` with ``return_type: give_answer`` is
  the plan ``finish`` (its ``final_answer`` the answer); ``Finish`` with anything else, or unreadable, is
  ``give up``; any other action is the plan ``call``;
* a step is left out when its reference action is ``invalid_hallucination_function_name``, or when the
  reference calls a function that is not among the step's tools (while the prediction named an action);
* **Plan.EM**: plans equal, over the steps kept; **Act.EM**: action names equal, over the reference ``call``
  steps; **HalluRate**: the prediction names a function that is not among the tools, counted on the kept
  steps and divided by every step, as the original does; **Avg.F1**: over the reference ``call`` steps, 0
  when the action differs, else an argument F1 where a key with an equal value counts 1 and a key present with
  another value 0.5 (recall over the reference's keys, precision over the prediction's; empty reference
  arguments score 1 only against empty ones); **R-L**: ROUGE-L F of the answer over the reference ``finish``
  steps (a missing answer is ``none``). Easy/Hard F1 split Avg.F1 by empty/non-empty reference arguments (a wrong action's 0 counts in both).

ROUGE-L comes from ``rouge-score`` (our :func:`~evalscope.eval.scoring.text_metrics.rouge_l`); the original's
standalone script used the ``rouge`` package, whose tokenisation differs slightly on punctuation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from evalscope.eval.scoring.text_metrics import rouge_l

HALLU_REF = "invalid_hallucination_function_name"
METRICS = ("Plan.EM", "Act.EM", "HalluRate", "Avg.F1", "R-L", "Easy.F1", "Hard.F1")


@dataclass(frozen=True, slots=True)
class Step:
    """One parsed agent step: ``plan`` is ``call``, ``finish`` or ``give up``."""

    plan: str
    action: str | None
    arguments: str | None
    answer: str | None


def parse_action(text: str) -> tuple[str, str]:
    """(action, arguments text) from ReAct text; ``none`` / ``{}`` when absent."""
    arguments = "{}"
    if "Action Input:" in text:
        arguments = text[text.rindex("Action Input:") + len("Action Input:") :].strip()
    action = "none"
    if "Action:" in text:
        action = text[text.rindex("Action:") + len("Action:") :].strip()
        if "Action Input:" in action:
            action = action[: action.index("Action Input:")].strip()
    return action, arguments


def parse_step(text: str) -> Step:
    """The plan of one ReAct step (see the module docstring)."""
    action, arguments = parse_action(text)
    if action != "Finish":
        return Step("call", action, arguments, None)
    try:
        args = json.loads(arguments)
        if args.get("return_type") != "give_answer":
            return Step("give up", None, None, None)
    except (ValueError, AttributeError):
        return Step("give up", None, None, None)
    answer = str(args["final_answer"]) if "final_answer" in args else "None"
    if answer.strip() in ("", ".", ","):
        answer = "None"
    return Step("finish", action, arguments, answer)


def arguments_f1(pred: str, ref: str) -> tuple[float | None, bool]:
    """(F1, reference arguments are empty) for two JSON argument texts; F1 None when the reference is not
    JSON (such a step is left out of the F1 means)."""
    try:
        ref_obj = json.loads(ref)
    except ValueError:
        return None, False
    easy = ref_obj == {}
    try:
        pred_obj = json.loads(pred)
    except ValueError:
        return 0.0, easy
    if easy:
        return (1.0 if pred_obj == {} else 0.0), True
    if not isinstance(ref_obj, dict) or not isinstance(pred_obj, dict):
        return 0.0, False
    full = sum(1 for k, v in ref_obj.items() if k in pred_obj and pred_obj[k] == v)
    half = sum(1 for k, v in ref_obj.items() if k in pred_obj and pred_obj[k] != v)
    hit = full + 0.5 * half
    if hit == 0:
        return 0.0, False
    recall, precision = hit / len(ref_obj), hit / len(pred_obj)
    return 2 * recall * precision / (recall + precision), False


@dataclass(slots=True)
class StepScore:
    """What one step contributes; None: the metric does not apply to this step."""

    kept: bool
    hallucinated: bool
    plan_em: float | None = None
    act_em: float | None = None
    f1: float | None = None
    easy: bool = False  # F1 counts in Easy.F1 (empty reference arguments), else Hard.F1
    both: bool = False  # a wrong action: its 0 counts in Easy.F1 and Hard.F1 alike, as the original does
    rouge_l: float | None = None
    ref_plan: str = ""
    pred_plan: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "hallucinated": self.hallucinated,
            "plan_em": self.plan_em,
            "act_em": self.act_em,
            "f1": self.f1,
            "f1_kind": None
            if self.f1 is None
            else ("both" if self.both else "easy" if self.easy else "hard"),
            "rouge_l": self.rouge_l,
            "ref_plan": self.ref_plan,
            "pred_plan": self.pred_plan,
        }


def score_step(prediction: str, target: str, tool_names: list[str]) -> StepScore:
    """Score one predicted step against its reference (``tool_names``: the functions the step offered)."""
    ref = parse_step(target)
    pred = parse_step(prediction)
    hallu = pred.action is not None and pred.action != "none" and pred.action not in tool_names
    if ref.action == HALLU_REF or (
        pred.action is not None and ref.action != "none" and ref.action not in tool_names
    ):
        return StepScore(kept=False, hallucinated=False, ref_plan=ref.plan, pred_plan=pred.plan)
    s = StepScore(kept=True, hallucinated=hallu, ref_plan=ref.plan, pred_plan=pred.plan)
    s.plan_em = 1.0 if pred.plan == ref.plan else 0.0
    if ref.plan == "finish":
        s.rouge_l = rouge_l(pred.answer if pred.answer is not None else "none", ref.answer or "")
    elif ref.plan == "call":
        pred_action = pred.action if pred.action is not None else "none"
        s.act_em = 1.0 if pred_action == ref.action else 0.0
        if pred_action != ref.action:
            s.f1, s.both = 0.0, True
        else:
            pred_args = pred.arguments if pred.arguments is not None else "{}"
            s.f1, s.easy = arguments_f1(pred_args, ref.arguments or "{}")
    return s


def _mean(xs: list[float]) -> float | None:
    return math.fsum(xs) / len(xs) if xs else None


@dataclass(slots=True)
class Aggregate:
    """The five headline metrics (and the easy/hard F1 split) over a list of step scores."""

    steps: int = 0
    kept: int = 0
    metrics: dict[str, float | None] = field(default_factory=dict)


def aggregate(scores: list[StepScore]) -> Aggregate:
    """Means as the module docstring defines them (HalluRate over every step, the rest over kept steps)."""
    kept = [s for s in scores if s.kept]
    f1s = [s for s in kept if s.f1 is not None]
    metrics: dict[str, float | None] = {
        "Plan.EM": _mean([s.plan_em for s in kept if s.plan_em is not None]),
        "Act.EM": _mean([s.act_em for s in kept if s.act_em is not None]),
        "HalluRate": (sum(1 for s in scores if s.hallucinated) / len(scores)) if scores else None,
        "Avg.F1": _mean([s.f1 for s in f1s if s.f1 is not None]),
        "R-L": _mean([s.rouge_l for s in kept if s.rouge_l is not None]),
        "Easy.F1": _mean([s.f1 for s in f1s if (s.easy or s.both) and s.f1 is not None]),
        "Hard.F1": _mean([s.f1 for s in f1s if (not s.easy or s.both) and s.f1 is not None]),
    }
    return Aggregate(steps=len(scores), kept=len(kept), metrics=metrics)
