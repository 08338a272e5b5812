"""The parameters of Superlinear attention, as one frozen value."""

from dataclasses import dataclass
from fractions import Fraction

from ..common.powers import exact_fraction, stripe_exponent, window_size
from ..common.validation import require, require_int, require_real


@dataclass(frozen=True)
class SuperlinearParams:
    """Superlinear attention parameters (ATTENTION.md, "Inputs").

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

    def validate(self) -> "SuperlinearParams":
        """Raise ValueError naming the first invalid field; return self when all are valid."""
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
        return self

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


def _require_exact(name: str, value: float) -> Fraction:
    # The kernels compute with exact rationals a/b, b <= 1000; anything else is refused, never rounded.
    try:
        return exact_fraction(value)
    except ValueError as error:
        raise ValueError(f"{name}={value!r}: {error}") from None


def _require_rational_in_unit(name: str, value: float) -> None:
    rational = _require_exact(name, value)
    require(0 < rational < 1, f"{name}={value} reads as {rational}, outside (0, 1)")
