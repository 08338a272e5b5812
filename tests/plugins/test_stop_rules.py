"""The built-in stop rules, driven the way the decode loop drives them."""

from __future__ import annotations

import random
import time

import pytest

from superlinear.core.ports import StopRule
from superlinear.core.values import RepetitionParams, SamplingParams
from superlinear.plugins.builtin.stop_rules import (
    RepetitionRule,
    StopStringsRule,
    ends_with_loop,
    repetition_rule,
    stop_strings_rule,
)


def stream(rule: StopRule, pieces: list[str]) -> tuple[str, str | None]:
    """Feed text pieces one token at a time and return (what the client saw, finish reason).

    Mimics the engine: show everything except the held suffix; on stop, drop the trimmed suffix and
    flush the rest; at the natural end, flush whatever is still held.
    """
    text, shown = "", 0
    seen: list[str] = []
    for token_id, piece in enumerate(pieces):
        text += piece
        verdict = rule.observe(token_id, text)
        if verdict.stop:
            seen.append(text[shown : len(text) - verdict.trim])
            return "".join(seen), verdict.reason
        visible = len(text) - verdict.hold
        if visible > shown:
            seen.append(text[shown:visible])
            shown = visible
        assert "".join(seen) == text[:shown]
    seen.append(text[shown:])
    return "".join(seen), None


def test_a_stop_string_split_across_tokens_never_reaches_the_client():
    rule = StopStringsRule(("</answer>",))
    pieces = ["The result", " is 42", "</", "ans", "wer", "> and more"]
    shown, reason = stream(rule, pieces)
    assert (shown, reason) == ("The result is 42", "stop")


def test_every_split_of_the_stop_string_is_caught():
    text = "abc<|end|>xyz"
    for cut1 in range(1, len(text)):
        for cut2 in range(cut1 + 1, len(text)):
            pieces = [text[:cut1], text[cut1:cut2], text[cut2:]]
            assert stream(StopStringsRule(("<|end|>",)), pieces) == ("abc", "stop"), pieces


def test_held_text_is_released_when_it_turns_out_not_to_be_a_stop_string():
    rule = StopStringsRule(("STOP",))
    text = ""
    holds = []
    for token_id, piece in enumerate(["go ", "ST", "O", "p", "!"]):
        text += piece
        holds.append(rule.observe(token_id, text))
    assert [v.hold for v in holds] == [0, 2, 3, 0, 0]
    assert not any(v.stop for v in holds)
    assert stream(StopStringsRule(("STOP",)), ["go ", "ST", "O", "p", "!"]) == ("go STOp!", None)


def test_the_earliest_of_several_stop_strings_wins_and_text_after_it_is_trimmed():
    rule = StopStringsRule(("World", "lo W"))
    assert stream(rule, ["Hel", "lo World tail"]) == ("Hel", "stop")


def test_a_stop_string_inside_one_token_with_text_after_it():
    assert stream(StopStringsRule(("\n\n",)), ["line one\n\nline two"]) == ("line one", "stop")


def test_text_without_stop_strings_passes_through_unchanged():
    pieces = [random.choice(["a", "b", "<", "/", "s", ">", " "]) for _ in range(500)]
    shown, reason = stream(StopStringsRule(("</stop>",)), pieces)
    joined = "".join(pieces)
    if "</stop>" in joined:
        assert (shown, reason) == (joined[: joined.index("</stop>")], "stop")
    else:
        assert (shown, reason) == (joined, None)


def test_the_stop_strings_factory_returns_none_without_stop_strings():
    assert stop_strings_rule(SamplingParams()) is None
    assert stop_strings_rule(SamplingParams(stop=("",))) is None
    assert isinstance(stop_strings_rule(SamplingParams(stop=("x",))), StopRule)


def fresh_non_periodic(count: int, rng: random.Random) -> list[int]:
    """Ids with no immediate repeat of any unit: a random walk over a large vocabulary, no id reused."""
    return rng.sample(range(10_000, 200_000), count)


def run_rule(rule: StopRule, ids: list[int]) -> int | None:
    """Return the index of the token that stopped the rule, or None."""
    for index, token_id in enumerate(ids):
        verdict = rule.observe(token_id, "")
        if verdict.stop:
            assert verdict.reason == "repetition"
            return index
    return None


def test_a_loop_after_300_non_repeating_tokens_is_caught_promptly():
    rng = random.Random(time.time_ns())
    params = RepetitionParams(enabled=True, tail_len=512, min_repeats=3, max_period=64, min_unique_tokens=2)
    unit = rng.sample(range(1, 9000), 17)
    ids = fresh_non_periodic(300, rng) + unit * 10
    # It fires on the token that completes the third unit.
    assert run_rule(RepetitionRule(params), ids) == 300 + 17 * 3 - 1


def test_non_periodic_text_never_fires():
    rng = random.Random(time.time_ns())
    rule = RepetitionRule(RepetitionParams(enabled=True, tail_len=256, min_repeats=2, max_period=100))
    assert run_rule(rule, fresh_non_periodic(3000, rng)) is None


def test_a_loop_longer_than_max_period_does_not_fire():
    rng = random.Random(time.time_ns())
    unit = fresh_non_periodic(40, rng)
    params = RepetitionParams(enabled=True, tail_len=1024, min_repeats=3, max_period=39)
    assert run_rule(RepetitionRule(params), unit * 10) is None
    caught = RepetitionParams(enabled=True, tail_len=1024, min_repeats=3, max_period=40)
    assert run_rule(RepetitionRule(caught), unit * 10) == 40 * 3 - 1


def test_loops_with_too_few_distinct_ids_are_ignored():
    rng = random.Random(time.time_ns())
    prefix = fresh_non_periodic(50, rng)
    one_id, two_ids = [7] * 60, [7, 8] * 30
    strict = RepetitionParams(enabled=True, tail_len=256, min_repeats=3, max_period=10, min_unique_tokens=3)
    assert run_rule(RepetitionRule(strict), prefix + one_id) is None
    assert run_rule(RepetitionRule(strict), prefix + two_ids) is None
    assert run_rule(RepetitionRule(strict), prefix + [7, 8, 9] * 5) == 50 + 8
    loose = RepetitionParams(enabled=True, tail_len=256, min_repeats=3, max_period=10, min_unique_tokens=1)
    assert run_rule(RepetitionRule(loose), prefix + one_id) == 50 + 2


def test_check_every_only_looks_on_schedule():
    params = RepetitionParams(enabled=True, tail_len=64, min_repeats=3, max_period=4, check_every=5)
    # Tokens 4 and 9 (the 5th and 10th) are checked; the loop is present from token 3 on.
    assert run_rule(RepetitionRule(params), [9, 1, 1, 1, 1, 4, 5, 6]) == 4
    # This loop is complete at token 2 and broken by token 4, so no check ever sees it.
    assert run_rule(RepetitionRule(params), [1, 1, 1, 2, 3, 4, 5, 6, 7, 8]) is None


def test_a_loop_longer_than_the_tail_cannot_be_seen():
    params = RepetitionParams(enabled=True, tail_len=20, min_repeats=3, max_period=50)
    assert run_rule(RepetitionRule(params), list(range(10)) * 5) is None


@pytest.mark.parametrize("period", [1, 2, 5, 13])
def test_ends_with_loop_reports_the_shortest_period(period):
    rng = random.Random(time.time_ns())
    unit = fresh_non_periodic(period, rng)
    tail = fresh_non_periodic(30, rng) + unit * 4
    assert ends_with_loop(tail, max_period=20, min_repeats=4, min_unique=1) == period
    assert ends_with_loop(tail[:-1], max_period=20, min_repeats=4, min_unique=1) == 0


def test_the_repetition_factory_returns_none_when_disabled():
    assert repetition_rule(SamplingParams()) is None
    enabled = SamplingParams(repetition=RepetitionParams(enabled=True))
    assert isinstance(repetition_rule(enabled), StopRule)


def test_a_check_at_full_size_is_cheap():
    rng = random.Random(time.time_ns())
    rule = RepetitionRule(RepetitionParams(enabled=True, tail_len=1024, min_repeats=3, max_period=512))
    ids = fresh_non_periodic(2000, rng)
    started = time.perf_counter()
    assert run_rule(rule, ids) is None
    per_token = (time.perf_counter() - started) / len(ids)
    assert per_token < 0.005, f"{per_token * 1e3:.2f} ms per token"


def reference_verdict(stops: tuple[str, ...], text: str, checked: int) -> tuple[bool, int, int]:
    """The plain definition: (stopped, trim, hold) from every prefix of every stop string."""
    longest = max(map(len, stops))
    start = max(0, checked - longest + 1)
    found = [p for p in (text.find(s, start) for s in stops) if p >= 0]
    if found:
        return True, len(text) - min(found), 0
    prefixes = {s[:n] for s in stops for n in range(1, len(s))}
    hold = max((n for n in range(1, min(len(text), longest - 1) + 1) if text[-n:] in prefixes), default=0)
    return False, 0, hold


def test_the_matcher_agrees_with_the_plain_definition_on_random_streams():
    rng = random.Random(time.time_ns())
    for _ in range(400):
        stops = tuple("".join(rng.choice("ab") for _ in range(rng.randint(1, 7))) for _ in range(rng.randint(1, 3)))
        rule, text = StopStringsRule(stops), ""
        for token_id in range(40):
            checked = len(text)
            text += "".join(rng.choice("abc") for _ in range(rng.randint(0, 4)))
            verdict = rule.observe(token_id, text)
            assert (verdict.stop, verdict.trim, verdict.hold) == reference_verdict(stops, text, checked), (stops, text)
            if verdict.stop:
                break


def test_a_long_stop_string_costs_memory_linear_in_its_length():
    import tracemalloc

    stop = "x" * 20_000
    tracemalloc.start()
    try:
        rule = StopStringsRule((stop,))
        verdict = rule.observe(0, "x" * 19_999)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.hold == 19_999 and not verdict.stop
    assert rule.observe(1, "x" * 20_000 + "y").trim == 20_001
    # Every prefix as a string would be 200 MB here; the automaton needs a table of 20,000 ints.
    assert peak < 5_000_000, peak
