"""The parameters of Superlinear attention, as one frozen value: built and validated once, fingerprinted.

Three ways in: the constructor (unchecked, the published API's), ``SuperlinearParams.create`` (keyword
arguments, validated) and ``SuperlinearParams.from_config`` (a model config's ``span_attention_*`` keys,
validated with the key names). ``fingerprint`` names the computation: snapshots store it and refuse to
mix states made under other parameters.
"""

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from ..common.powers import exact_fraction, stripe_exponent, window_size
from ..common.validation import require, require_int, require_real

# The prefix of the parameters' keys in a model config.
CONFIG_PREFIX = "span_attention_"


@dataclass(frozen=True)
class SuperlinearParams:
    """Superlinear attention parameters (docs/attention.md, "Inputs").

    Exactly one of ``search_power`` / ``inv_search_power_int`` governs the stripe power ``p``:
    ``search_power`` when given, else ``p = 1 / inv_search_power_int``. A ``search_power`` whose inverse is
    an integer ``n`` (after reading it as a rational, see ``common.powers``) gives the same ``P(j) = j ** n``
    as ``inv_search_power_int = n``.
    """

    sw_index: int
    num_spans: int
    backward_factor: float
    forward_factor: float
    search_power: float | None = None
    span_power: float = 0.5
    inv_search_power_int: int | None = 2

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The field names, in declaration order."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def create(cls, **values: Any) -> "SuperlinearParams":
        """The validated parameters from keyword arguments (defaults for the optional fields).

        An unknown name raises TypeError; an invalid value raises ValueError naming its field.
        """
        unknown = sorted(set(values) - set(cls.fields()))
        if unknown:
            raise TypeError(f"unknown SuperlinearParams fields {unknown}; known: {list(cls.fields())}")
        return cls(**values).validate()

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], prefix: str = CONFIG_PREFIX) -> "SuperlinearParams":
        """The validated parameters from a model config's ``{prefix}*`` keys; ValueError naming the key.

        ``search_power`` is stored as ``inv_search_power_int = n`` whenever it equals ``1/n`` (n in 2..6),
        the exact integer stripe power.
        """
        # Checked in this order, so that the first bad key is the one named.
        sw_index = _config_int(raw, prefix, "sw_index", minimum=0)
        num_spans = _config_int(raw, prefix, "num_spans", minimum=1)
        backward = _config_float(raw, prefix, "backward_factor", low=0.0, high=math.inf, closed=True)
        forward = _config_float(raw, prefix, "forward_factor", low=0.0, high=math.inf, closed=True)
        span_power = _config_float(raw, prefix, "span_power", low=0.0, high=1.0, default=0.5)
        search_power, inv_int = _config_search_power(raw, prefix)
        params = cls(
            sw_index=sw_index,
            num_spans=num_spans,
            backward_factor=backward,
            forward_factor=forward,
            search_power=search_power,
            span_power=span_power,
            inv_search_power_int=inv_int,
        )
        try:
            # The kernel's own checks (e.g. powers must read as exact rationals) come on top of the keys'.
            return params.validate()
        except ValueError as exc:
            raise ValueError(f"{prefix}* config keys are invalid: {exc}") from exc

    @property
    def fingerprint(self) -> str:
        """The text that names this computation (stored in snapshots: its format never changes)."""
        return (
            f"superlinear(sw_index={self.sw_index},num_spans={self.num_spans},"
            f"backward={self.backward_factor},forward={self.forward_factor},search_power={self.search_power},"
            f"inv_search_power_int={self.inv_search_power_int},span_power={self.span_power})"
        )

    def validate(self) -> "SuperlinearParams":
        """Raise ValueError naming the first invalid field; return self when all are valid.

        Each distinct value is checked once (the result is cached): a serving loop validates every call.
        """
        # Keyed by type too: 2.0 == 2 and True == 1, but only the ints are valid there.
        key = tuple((type(value), value) for value in (getattr(self, name) for name in self.fields()))
        try:
            hash(key)
        except TypeError:
            self._check()
            return self
        _check_once(key, self)
        return self

    def _check(self) -> None:
        require_int("sw_index", self.sw_index, 0)
        require_int("num_spans", self.num_spans, 1)
        require_real("backward_factor", self.backward_factor)
        require_real("forward_factor", self.forward_factor)
        _require_exact("backward_factor", self.backward_factor)
        _require_exact("forward_factor", self.forward_factor)
        require_real("span_power", self.span_power, open_unit=True)
        _require_rational_in_unit("span_power", self.span_power)
        if self.inv_search_power_int is not None:
            require_int("inv_search_power_int", self.inv_search_power_int, 2, 6)
        if self.search_power is not None:
            require_real("search_power", self.search_power, open_unit=True)
            _require_rational_in_unit("search_power", self.search_power)
        require(
            self.search_power is not None or self.inv_search_power_int is not None,
            "search_power or inv_search_power_int must be given",
        )

    @property
    def stripe_exponent(self) -> Fraction:
        """``r = 1/p`` exactly: ``P(j) = floor(j ** r)``."""
        return stripe_exponent(self.search_power, self.inv_search_power_int)

    @property
    def integer_stripe_power(self) -> int | None:
        """``n`` when ``P(j) = j ** n`` exactly (``1/p`` an integer in 2..6), else None."""
        exponent = self.stripe_exponent
        return int(exponent) if exponent.denominator == 1 and 2 <= exponent <= 6 else None

    @property
    def span_exponent(self) -> Fraction:
        """``s`` exactly: span lengths grow as ``t ** s``."""
        return exact_fraction(self.span_power)

    @property
    def backward(self) -> Fraction:
        """``backward_factor`` exactly."""
        return exact_fraction(self.backward_factor)

    @property
    def forward(self) -> Fraction:
        """``forward_factor`` exactly."""
        return exact_fraction(self.forward_factor)

    @property
    def window(self) -> int:
        """The sliding window ``W = P(sw_index + 1) - 1``."""
        return window_size(self.sw_index, self.stripe_exponent)


@lru_cache(maxsize=256)
def _check_once(key: tuple, params: SuperlinearParams) -> None:
    # Raises (and so caches nothing) for invalid parameters.
    params._check()


def _require_exact(name: str, value: float) -> Fraction:
    # The kernels compute with exact rationals a/b, b <= 1000; anything else is refused, never rounded.
    try:
        return exact_fraction(value)
    except ValueError as error:
        raise ValueError(f"{name}={value!r}: {error}") from None


def _require_rational_in_unit(name: str, value: float) -> None:
    rational = _require_exact(name, value)
    require(0 < rational < 1, f"{name}={value} reads as {rational}, outside (0, 1)")


def _config_search_power(raw: Mapping[str, Any], prefix: str) -> tuple[float | None, int | None]:
    """Prefer the exact integer form ``p = 1/n`` (n in 2..6) whenever the config's power allows it."""
    inv = raw.get(prefix + "inv_search_power_int")
    power = raw.get(prefix + "search_power")
    if inv is not None:
        if isinstance(inv, bool) or not isinstance(inv, int) or not 2 <= inv <= 6:
            raise ValueError(f"config key '{prefix}inv_search_power_int' must be an int in 2..6, got {inv!r}")
        if power is not None and not math.isclose(float(power), 1.0 / inv, rel_tol=1e-9):
            raise ValueError(f"'{prefix}search_power' {power} disagrees with inv_search_power_int {inv}")
        return None, inv
    p = _config_float(raw, prefix, "search_power", low=0.0, high=1.0)
    n = round(1.0 / p)
    if 2 <= n <= 6 and math.isclose(p, 1.0 / n, rel_tol=1e-9):
        return None, n
    return p, None


def _config_int(raw: Mapping[str, Any], prefix: str, name: str, *, minimum: int) -> int:
    value = raw.get(prefix + name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"config key '{prefix}{name}' must be an integer >= {minimum}, got {value!r}")
    return value


def _config_float(
    raw: Mapping[str, Any],
    prefix: str,
    name: str,
    *,
    low: float,
    high: float,
    closed: bool = False,
    default: float | None = None,
) -> float:
    value = raw.get(prefix + name, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (low <= value < high) if closed else (low < value < high)
    if not ok:
        interval = f"[{low}, {high})" if closed else f"({low}, {high})"
        raise ValueError(f"config key '{prefix}{name}' must be a number in {interval}, got {value!r}")
    return float(value)
