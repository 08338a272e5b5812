"""Built-in stop rules: stop strings and repetition detection."""

from __future__ import annotations

from collections import deque

from superlinear.core.ports import CONTINUE, StopRule, Verdict
from superlinear.core.values import RepetitionParams, SamplingParams

from ..hookspecs import RegisterStopRule, hookimpl

__all__ = [
    "StopStringsRule",
    "RepetitionRule",
    "stop_strings_rule",
    "repetition_rule",
    "ends_with_loop",
    "superlinear_stop_rules",
]


class StopStringsRule:
    """Stop when the text contains a stop string; hold back a suffix that may be one starting.

    The stop string and anything after it are trimmed, so it never reaches the client, even when it
    arrives split over several tokens. Each stop string is matched by a Knuth-Morris-Pratt automaton fed
    only the new text: memory is linear in the stop strings' length, time linear in the text's.
    """

    def __init__(self, stops: tuple[str, ...]):
        self._stops = tuple(dict.fromkeys(stop for stop in stops if stop))
        if not self._stops:
            raise ValueError("StopStringsRule needs at least one non-empty stop string")
        self._fail = [_failure(stop) for stop in self._stops]
        # Per stop: how many of its first characters the text ends with (always less than its length).
        self._state = [0] * len(self._stops)
        self._checked = 0

    def observe(self, token_id: int, text: str) -> Verdict:
        """Stop at the earliest stop string; otherwise hold the longest suffix that may start one."""
        if len(text) < self._checked:
            # The text was cut (not grown): read it again from the start.
            self._state, self._checked = [0] * len(self._stops), 0
        new, offset = text[self._checked:], self._checked
        self._checked = len(text)
        starts = []
        for i, stop in enumerate(self._stops):
            state, end = _advance(stop, self._fail[i], self._state[i], new)
            self._state[i] = state
            if end >= 0:
                starts.append(offset + end + 1 - len(stop))
        if starts:
            return Verdict(stop=True, reason="stop", trim=len(text) - min(starts))
        held = max(self._state)
        return Verdict(hold=held) if held else CONTINUE


def _failure(pattern: str) -> list[int]:
    """KMP failure table: fail[i] = length of the longest proper border of pattern[:i + 1]."""
    fail = [0] * len(pattern)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = fail[k - 1]
        if pattern[i] == pattern[k]:
            k += 1
        fail[i] = k
    return fail


def _advance(pattern: str, fail: list[int], state: int, text: str) -> tuple[int, int]:
    """Feed `text` to the automaton in `state`; return (new state, index in `text` where the first full
    match ends, or -1). After a match the state restarts at 0: the caller stops there anyway.
    """
    for index, char in enumerate(text):
        while state and char != pattern[state]:
            state = fail[state - 1]
        if char == pattern[state]:
            state += 1
        if state == len(pattern):
            return 0, index
    return state, -1


def ends_with_loop(tail: list[int], max_period: int, min_repeats: int, min_unique: int) -> int:
    """Return the shortest period p <= max_period such that `tail` ends with its last p ids repeated at
    least `min_repeats` times in a row and those p ids hold at least `min_unique` distinct values; else 0.
    """
    window = min(len(tail), max_period * min_repeats)
    rev = tail[: -window - 1 : -1]  # the last `window` ids, newest first
    z = _z_function(rev)
    distinct: set[int] = set()
    for period in range(1, min(max_period, window // min_repeats) + 1):
        distinct.add(rev[period - 1])
        # z[p] >= p * (repeats - 1) means rev[:p * repeats] has period p: the unit repeats that often.
        if z[period] >= period * (min_repeats - 1) and len(distinct) >= min_unique:
            return period
    return 0


def _z_function(seq: list[int]) -> list[int]:
    """z[i] = length of the longest common prefix of seq and seq[i:] (z[0] = len(seq)); O(len(seq))."""
    n = len(seq)
    z = [0] * (n + 1)
    z[0] = n
    left = right = 0
    for i in range(1, n):
        k = min(right - i, z[i - left]) if i < right else 0
        while i + k < n and seq[k] == seq[i + k]:
            k += 1
        z[i] = k
        if i + k > right:
            left, right = i, i + k
    return z


class RepetitionRule:
    """Stop when the generation ends in a loop: a short unit of tokens repeated back to back.

    Only the end of the recent tail has to be periodic, so a loop is caught after any amount of
    non-repeating text.
    """

    def __init__(self, params: RepetitionParams):
        # A unit seen once is no loop; fewer than two repeats would stop every generation.
        self._repeats = max(2, params.min_repeats)
        self._max_period = max(1, params.max_period)
        self._min_unique = max(1, params.min_unique_tokens)
        self._every = max(1, params.check_every)
        self._tail: deque[int] = deque(maxlen=max(1, params.tail_len))
        self._seen = 0

    def observe(self, token_id: int, text: str) -> Verdict:
        """Record the token; every `check_every` tokens, stop with reason "repetition" on a loop."""
        self._tail.append(token_id)
        self._seen += 1
        if self._seen % self._every:
            return CONTINUE
        window = min(len(self._tail), self._max_period * self._repeats)
        recent = list(self._tail)[-window:]
        if ends_with_loop(recent, self._max_period, self._repeats, self._min_unique):
            return Verdict(stop=True, reason="repetition")
        return CONTINUE


def stop_strings_rule(params: SamplingParams) -> StopRule | None:
    """Make a stop-strings rule, or None when the request has no (non-empty) stop strings."""
    stops = tuple(stop for stop in params.stop if stop)
    return StopStringsRule(stops) if stops else None


def repetition_rule(params: SamplingParams) -> StopRule | None:
    """Make a repetition rule, or None when repetition detection is off."""
    settings = params.repetition
    if not settings.enabled or settings.max_period < 1 or settings.tail_len < 2:
        return None
    return RepetitionRule(settings)


@hookimpl
def superlinear_stop_rules(register: RegisterStopRule) -> None:
    """Register the built-in stop rules."""
    register("stop_strings", stop_strings_rule)
    register("repetition", repetition_rule)
