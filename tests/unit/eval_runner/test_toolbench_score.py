"""ToolBench-static scoring rules, each checked against a hand-computed value, and the message/reply mapping."""

from __future__ import annotations

import json

import pytest

from evalscope.eval.backends.toolbench_job import openai_messages, prediction_text
from evalscope.eval.backends.toolbench_score import aggregate, arguments_f1, parse_step, score_step

TOOLS = ["get_weather", "Finish"]


def call(name: str, args: dict[str, object]) -> str:
    return f"Thought: x\nAction: {name}\nAction Input: {json.dumps(args)}"


def fin(answer: str) -> str:
    return call("Finish", {"return_type": "give_answer", "final_answer": answer})


def test_parse_step_plans() -> None:
    assert parse_step(call("get_weather", {"city": "Rome"})).plan == "call"
    s = parse_step(fin("It is sunny."))
    assert (s.plan, s.answer) == ("finish", "It is sunny.")
    assert parse_step(call("Finish", {"return_type": "give_up_and_restart"})).plan == "give up"
    assert parse_step("Action: Finish\nAction Input: {broken").plan == "give up"
    assert parse_step(fin(" . ")).answer == "None"
    # the last Action / Action Input win
    s = parse_step('Action: a\nAction Input: {}\nThought: no\nAction: b\nAction Input: {"k": 1}')
    assert (s.action, s.arguments) == ("b", '{"k": 1}')
    assert parse_step("plain words").action == "none"


@pytest.mark.parametrize(
    "pred, ref, f1, easy",
    [
        ({"a": 1, "b": 2}, {"a": 1, "b": 2}, 1.0, False),
        ({"a": 1, "b": 3}, {"a": 1, "b": 2}, 0.75, False),  # 1 full + 1 half = 1.5; R = P = 0.75
        ({"a": 1}, {"a": 1, "b": 2}, 2 / 3, False),  # R = 0.5, P = 1 -> F1 = 2/3
        ({"a": 1, "b": 2, "c": 3}, {"a": 1}, 0.5, False),  # R = 1, P = 1/3 -> 0.5
        ({"z": 1}, {"a": 1}, 0.0, False),
        ({}, {}, 1.0, True),
        ({"a": 1}, {}, 0.0, True),
    ],
)
def test_arguments_f1(pred: dict[str, int], ref: dict[str, int], f1: float, easy: bool) -> None:
    got, got_easy = arguments_f1(json.dumps(pred), json.dumps(ref))
    assert got == pytest.approx(f1) and got_easy is easy


def test_arguments_f1_bad_json() -> None:
    assert arguments_f1("{nope", '{"a": 1}') == (0.0, False)
    assert arguments_f1("{nope", "{}") == (0.0, True)
    assert arguments_f1("{}", "not json") == (None, False)  # the reference is unreadable: left out


def test_step_rules_and_aggregate() -> None:
    ref_call = call("get_weather", {"city": "Rome", "days": 2})
    steps = [
        score_step(call("get_weather", {"city": "Rome", "days": 3}), ref_call, TOOLS),  # F1 0.75
        score_step(call("made_up", {}), ref_call, TOOLS),  # hallucinated, wrong action
        score_step(fin("sunny in Rome"), fin("It is sunny in Rome"), TOOLS),  # finish, R-L
        score_step(
            call("get_weather", {}), call("invalid_hallucination_function_name", {}), TOOLS
        ),  # left out
        score_step(call("get_weather", {}), call("not_offered", {}), TOOLS),  # ref not among tools: left out
        score_step(fin("x"), ref_call, TOOLS),  # plan wrong
    ]
    assert [s.kept for s in steps] == [True, True, True, False, False, True]
    agg = aggregate(steps)
    m = agg.metrics
    assert (agg.steps, agg.kept) == (6, 4)
    assert m["Plan.EM"] == pytest.approx(3 / 4)  # call/call, call/call, finish/finish, finish/call
    assert m["Act.EM"] == pytest.approx(1 / 3)  # over the three reference calls
    assert m["Avg.F1"] == pytest.approx(0.75 / 3)
    assert m["HalluRate"] == pytest.approx(1 / 6)  # counted on kept steps, divided by all
    # rouge-score: LCS "sunny in rome" = 3; P = 3/3, R = 3/5 -> F = 0.75
    assert m["R-L"] == pytest.approx(0.75)
    assert m["Easy.F1"] == pytest.approx(0.0)  # only the two wrong-action zeros count there
    assert m["Hard.F1"] == pytest.approx(0.75 / 3)


def test_openai_messages_and_prediction_text() -> None:
    msgs = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": 'Thought: look\nAction: get_weather\nAction Input: {"city": "Rome"}',
        },
        {"role": "function", "name": "get_weather", "content": '{"t": 20}'},
    ]
    out = openai_messages(msgs)
    assert out[2] == {
        "role": "assistant",
        "content": "look",
        "tool_calls": [
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            }
        ],
    }
    assert out[3] == {"role": "tool", "tool_call_id": "call_2", "content": '{"t": 20}'}
    tc = [{"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    assert prediction_text("", tc) == 'Action: get_weather\nAction Input: {"city": "Oslo"}'
    assert parse_step(prediction_text("Cloudy.", None)).answer == "Cloudy."
    assert prediction_text("Thought: t\nAction: x\nAction Input: {}", None).startswith("Thought")
    assert prediction_text("  ", None) == "none"
