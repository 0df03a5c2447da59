"""Planner and judge output parsing: JSON, lists, fences, junk."""
from __future__ import annotations

import pytest

from aigw_agent.agents.common import json_in, prompt, question_of
from aigw_agent.agents.consensus import agreement_line, parse_verdict
from aigw_agent.agents.deliberate import parse_plan
from aigw_agent.errors import BadRequest

pytestmark = pytest.mark.timeout(20)
Q = "Why is the sky blue?"


@pytest.mark.parametrize("text,expected", [
    ('["What is Rayleigh scattering?", "Which wavelengths scatter most?"]',
     ["What is Rayleigh scattering?", "Which wavelengths scatter most?"]),
    ('Sure! Here is the plan:\n```json\n["A?", "B?"]\n```\nGood luck.', ["A?", "B?"]),
    ('{"questions": ["A?", "B?"]}', ["A?", "B?"]),
    ('{"sub_questions": [{"question": "A?"}, {"q": "B?"}, 3]}', ["A?", "B?"]),
    ("Sub-questions:\n1. A?\n2) B?\n3: C?\n", ["A?", "B?", "C?"]),
    ("- A?\n* **B?**\n\u2022 C?\nnot an item\n", ["A?", "B?", "C?"]),
    ("Q1: A?\nQ2. B?\n", ["A?", "B?"]),
    ("1. A?\n2. a?\n3. B?", ["A?", "B?"]),                    # deduplicated, case-insensitive
    ('["  spaced   out  ", ""]', ["spaced out"]),
])
def test_plan_formats(text: str, expected: list[str]) -> None:
    assert parse_plan(text, Q) == expected


@pytest.mark.parametrize("text", ["", "Hello from fast-sim: a quick simulated answer.",
                                  "[1, 2, 3]", "{\"plan\": \"just answer\"}", "[unclosed",
                                  '{"questions": []}'])
def test_plan_falls_back_to_the_question(text: str) -> None:
    assert parse_plan(text, Q) == [Q]


def test_plan_caps_items_and_length() -> None:
    items = parse_plan("\n".join(f"{i}. question {i}" for i in range(1, 10)), Q, max_items=3)
    assert items == ["question 1", "question 2", "question 3"]
    assert len(parse_plan(f'["{"x" * 2000}"]', Q)[0]) == 500


def test_json_in() -> None:
    assert json_in('noise {"a": [1, {"b": 2}]} tail') == {"a": [1, {"b": 2}]}
    assert json_in("{broken [1, 2]") == [1, 2]
    assert json_in("nothing here") is None


def test_verdict_json_and_text_and_fallback() -> None:
    answers = [("fast-sim", "Blue light scatters more."), ("slow-sim", "Rayleigh scattering."),
               ("flaky-sim", "blue light scatters MORE")]
    v = parse_verdict('```json\n{"agree": [1, "3", 9], "answer": "Rayleigh."}\n```', answers)
    assert v == {"answer": "Rayleigh.", "agreed": ["fast-sim", "flaky-sim"], "method": "judge-json"}
    v = parse_verdict('{"agreed": ["slow-sim"], "answer": "R."}', answers)
    assert v["agreed"] == ["slow-sim"]
    v = parse_verdict("AGREE: 1, 2\nANSWER: It is Rayleigh scattering.", answers)
    assert v == {"answer": "It is Rayleigh scattering.", "agreed": ["fast-sim", "slow-sim"],
                 "method": "judge-text"}
    v = parse_verdict("I think it is scattering.", answers)      # no structure: compare texts
    assert v == {"answer": "I think it is scattering.", "agreed": ["fast-sim", "flaky-sim"],
                 "method": "exact-match"}
    v = parse_verdict("", [("a", "x"), ("b", "y")])
    assert v == {"answer": "x", "agreed": [], "method": "exact-match"}


def test_agreement_line() -> None:
    assert "a, b agreed" in agreement_line(["a", "b"], ["a", "b", "c"], "j")
    assert "no two models agreed" in agreement_line([], ["a", "b"], None)


def test_prompts_and_question() -> None:
    text = prompt("deliberate_plan", question=Q, max_items="3")
    assert Q in text and "at most 3" in text and "$" not in text
    assert "$" not in prompt("consensus_judge", question=Q, answers="A", count="2")
    req = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "first"},
                        {"role": "assistant", "content": "x"},
                        {"role": "user", "content": [{"type": "text", "text": "last"}]}]}
    assert question_of(req) == "last"
    with pytest.raises(BadRequest):
        question_of({"messages": [{"role": "system", "content": "s"}]})
    with pytest.raises(BadRequest):
        question_of({"messages": "nope"})
