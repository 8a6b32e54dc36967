"""One definition of each input field (issue 11 §2 and §3): holder id, currency id, order id,
amount, points and reason. Every endpoint (sagaboard/schema.py's DRF fields), every admin form
(sagaboard/kernel/admin.py) and the event contract (events.py) check a value with the rule here,
so an input one of them takes, every other one takes too, and one it refuses, all refuse.

The rules:
- Ids (holder, currency) are never trimmed, on write or on read: a space, a non-breaking space or
  a newline anywhere makes them invalid (a 400), so `"ws1 "` can never become a second `"ws1"`.
- A reason is prose: surrounding whitespace is trimmed (everywhere), and it must then hold 1 to
  REASON_MAX characters, none of them a control character.
- Points are exact decimals with a smallest unit of 0.01 (POINT_UNIT); a finer value is refused,
  never rounded. In JSON they are strings ("9500.00", the API and the events); the API also takes a
  JSON number whose decimal form has at most two places. In the databases they are whole
  hundredths in a bigint (columns.PointsColumn), so every sum is exact on SQLite and PostgreSQL.
- An amount is a whole number of its currency's units (smallest unit 1).
- The exchange's product, amount × SAGA_EXCHANGE_RATE, is rounded to 0.01 half to even (banker's
  rounding, Python's decimal default and IEEE 754's).

Pure Python: no Django, no transport, so the kernel's event contract may use it.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

BIGINT_MAX = 2**63 - 1  # the largest integer a bigint column (PostgreSQL, SQLite) holds
POINT_UNIT = Decimal("0.01")  # the smallest unit of points
# the largest points a bigint of hundredths holds (balances, spends; a grant or an adjustment is
# further bounded by SAGA_MAX_AMOUNT at the API)
POINTS_MAX = (Decimal(BIGINT_MAX) * POINT_UNIT).quantize(POINT_UNIT, rounding="ROUND_DOWN")
REASON_MAX = 200


class FieldInvalid(ValueError):
    """A value that breaks its field's rule; str() says the rule, for a 400's field error."""


@dataclass(frozen=True)
class Identifier:
    """An id made of a few ASCII characters: `pattern` must match all of it (nothing trimmed)."""

    name: str
    pattern: str
    max_length: int
    rule: str

    def clean(self, value) -> str:
        """The id itself; FieldInvalid unless a str that matches `pattern` entirely."""
        if not isinstance(value, str) or not re.fullmatch(self.pattern, value):
            raise FieldInvalid(self.rule)
        return value


HOLDER_ID = Identifier("holderId", r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}", 64,
                       "1 to 64 of the letters A-Z and a-z, digits and _ . @ -, starting with a letter or digit "
                       "(no spaces; ids are never trimmed)")
CURRENCY_ID = Identifier("currencyId", r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", 32,
                         "1 to 32 of the letters A-Z and a-z, digits and _ -, starting with a letter or digit "
                         "(no spaces; ids are never trimmed)")


def whole(value, *, lowest: int, highest: int, name: str = "value") -> int:
    """An integer from lowest to highest (a JSON integer, or a str of digits as a form sends it);
    FieldInvalid otherwise (bools, floats and decimals included)."""
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,20}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldInvalid(f"a whole number from {lowest} to {highest}")
    if not lowest <= value <= highest:
        raise FieldInvalid(f"a whole number from {lowest} to {highest}")
    return value


def order_id(value) -> int:
    """An order id: 1 to BIGINT_MAX."""
    return whole(value, lowest=1, highest=BIGINT_MAX)


def amount(value, highest: int = BIGINT_MAX) -> int:
    """An order's amount: whole units of its currency, 1 to `highest` (the API: SAGA_MAX_AMOUNT)."""
    return whole(value, lowest=1, highest=highest)


_DECIMAL = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?")


def points(value, *, lowest: Decimal = -POINTS_MAX, highest: Decimal = POINTS_MAX, nonzero: bool = False) -> Decimal:
    """Points as an exact Decimal with two places, from a str ("12.5", "-0.30"), an int, a Decimal
    (the API reads JSON numbers as Decimals, as written) or a float (a JSON number in an event of
    an earlier release: its shortest decimal form). FieldInvalid for anything else, NaN or
    infinity, a value finer than 0.01 (1e-300 included), outside lowest..highest, or zero when
    `nonzero`."""
    if isinstance(value, bool):
        raise FieldInvalid("a number of points, not true or false")
    if isinstance(value, float):
        value = Decimal(repr(value))  # 1e-300 stays 1e-300 (finer than 0.01), inf and nan stay not finite
    elif isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise FieldInvalid("a decimal number of points such as 12.50 (digits, at most one point, no exponent or spaces)")
        value = Decimal(value)
    elif isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise FieldInvalid("a decimal number of points such as 12.50")
    if not lowest <= value <= highest:
        raise FieldInvalid(f"from {format_points(lowest)} to {format_points(highest)} points")
    try:
        exact = value.quantize(POINT_UNIT)
    except InvalidOperation:
        raise FieldInvalid(f"from {format_points(lowest)} to {format_points(highest)} points") from None
    if exact != value:
        raise FieldInvalid(f"the smallest unit of points is {POINT_UNIT}: use at most two decimal places")
    if nonzero and not exact:
        raise FieldInvalid("must not be zero")
    return exact


def format_points(value: Decimal) -> str:
    """Points (a Decimal, or anything `points` takes) as their JSON and display form: a str with
    exactly two places ("9500.00", "-0.30")."""
    return f"{points(value):f}"


def exchanged(amount_: int, rate: Decimal) -> Decimal:
    """The points an amount is worth: amount × rate, rounded to 0.01 half to even."""
    return (Decimal(amount_) * rate).quantize(POINT_UNIT, rounding=ROUND_HALF_EVEN)


# Unicode categories a reason may not hold: controls, format characters (zero-width spaces, bidi
# overrides, BOMs, tags), surrogates, private use, unassigned, and line and paragraph separators
REASON_REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
ZERO_WIDTH_JOINER = "\u200d"  # a Cf that emoji sequences need
# letters and symbols that draw nothing (Hangul fillers, the braille blank): not words
BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def reason(value) -> str:
    """An operator's reason: trimmed; 1 to REASON_MAX characters, none of them invisible or a
    control character (REASON_REFUSED_CATEGORIES)."""
    if not isinstance(value, str):
        raise FieldInvalid("a reason in words")
    value = value.strip()
    if not value:
        raise FieldInvalid("a reason is required")
    if len(value) > REASON_MAX:
        raise FieldInvalid(f"at most {REASON_MAX} characters")
    if any(unicodedata.category(c) in REASON_REFUSED_CATEGORIES and c != ZERO_WIDTH_JOINER for c in value):
        raise FieldInvalid("no control or invisible characters (tabs, newlines, zero-width spaces, direction overrides and the like)")
    if not any(unicodedata.category(c)[0] in "LNPS" and c not in BLANK_LOOKING for c in value):
        raise FieldInvalid("a reason is required: a letter, digit, punctuation mark or symbol at least")
    return value
