"""Pieces every API view shares: the error responses (so the schema says what a 4xx looks like),
the checking of order ids, which every database must be able to hold, and the DRF fields of the
input fields defined once in sagaboard/kernel/fields.py."""
import codecs
import re
from decimal import Decimal

from django.http import Http404
from django.urls import register_converter
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import exceptions, parsers, renderers, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.utils import json as drf_json

from sagaboard.kernel import fields
from sagaboard.kernel.fields import BIGINT_MAX, FieldInvalid

MAX_ID = BIGINT_MAX  # the largest id PostgreSQL and SQLite store (bigint)
_DIGITS = re.compile(r"[0-9]{1,19}")


def order_id(value: str | None, *, name: str = "orderId", required: bool = False) -> int | None:
    """A query parameter that must be an order id: None when absent and optional, else a 400."""
    if value is None and not required:
        return None
    try:
        return fields.order_id(value if value is not None and _DIGITS.fullmatch(value) else None)
    except FieldInvalid as exc:
        raise exceptions.ValidationError({name: [f"{'required, ' if required else ''}{exc}"]}) from None


class OrderIdConverter:
    """`<order_id:...>` in a URL: an id every database can hold (1 to MAX_ID); anything else does
    not match, so it is a 404 like any unknown path, never an overflow in the database (a 500)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValueError(f"order id out of range: {value}")
        return number

    def to_url(self, value) -> str:
        return str(value)


register_converter(OrderIdConverter, "order_id")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="what is wrong")


_ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description=(
        "Bad input: the field errors, e.g. {\"amount\": [\"a whole number from 1 to 1000000000\"]}, "
        "{\"detail\": \"...\"} when the body is not JSON, or {\"format\": [\"...\"]} for an unknown ?format=.")),
    403: OpenApiResponse(DetailSerializer, description="Not allowed: log in (session or token); grants and corrections need staff."),
    404: OpenApiResponse(DetailSerializer, description="No such object."),
    409: OpenApiResponse(DetailSerializer, description="It does not apply: nothing to correct, already done, or a balance would pass its limit."),
    413: OpenApiResponse(DetailSerializer, description="The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)."),
    422: OpenApiResponse(DetailSerializer, description="The Idempotency-Key was used before with another request."),
}


def errors(*codes: int) -> dict:
    """The error responses of an endpoint, for its OpenAPI schema: 400 (every endpoint takes
    ?format=) and 403 apply to every one."""
    return {code: _ERRORS[code] for code in sorted({400, 403, *codes})}


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser (the API's only one), with two changes: a JSON number with a fraction or
    an exponent is read as a Decimal, exactly as written (a float lost the digits past its 17th,
    so 0.30000000000000001 points passed as 0.30), and a body nested deeper than the decoder goes
    is a 400 like any malformed body (the standard library's RecursionError was a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            decoded = codecs.getreader(encoding)(stream)
            return drf_json.load(decoded, parse_float=Decimal, parse_constant=drf_json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer, except that a lone surrogate echoed from the input (a field error that
    quotes a value: "\\ud800" is not a valid choice) is written as a JSON escape: DRF's UTF-8
    encoding of it raised, a 500."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            self.ensure_ascii = True  # this instance serves one response
            return super().render(data, accepted_media_type, renderer_context)


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, except that an unknown ?format= is bad input that names the formats there
    are (DRF answers it with a bare 404, as if the endpoint did not exist)."""

    def filter_renderers(self, renderers, format):
        try:
            return super().filter_renderers(renderers, format)
        except Http404:
            known = ", ".join(sorted({renderer.format for renderer in renderers}))
            raise exceptions.ValidationError({"format": [f"unknown format {format[:40]!r}: one of {known}"]}) from None


# --- the input fields (sagaboard/kernel/fields.py), as DRF fields -------------------------------
class RuleField(serializers.Field):
    """A DRF field whose value is checked by one rule of sagaboard/kernel/fields.py: the rule's
    FieldInvalid becomes the field's 400 error, its message the reason."""

    def __init__(self, rule, **kwargs):
        self.rule = rule
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return self.rule(data)
        except FieldInvalid as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return value


def _identifier_schema(identifier: fields.Identifier) -> dict:
    return {"type": "string", "pattern": f"^{identifier.pattern}$", "maxLength": identifier.max_length,
            "description": identifier.rule}


@extend_schema_field(_identifier_schema(fields.HOLDER_ID))
class HolderIdField(RuleField):
    """A holder id (fields.HOLDER_ID): never trimmed."""

    def __init__(self, **kwargs):
        super().__init__(fields.HOLDER_ID.clean, **kwargs)


@extend_schema_field(_identifier_schema(fields.CURRENCY_ID))
class CurrencyIdField(RuleField):
    """A currency id (fields.CURRENCY_ID): never trimmed."""

    def __init__(self, **kwargs):
        super().__init__(fields.CURRENCY_ID.clean, **kwargs)


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^-?[0-9]{1,20}(\.[0-9]{1,2})?$", "example": "9500.00",
                      "description": "points: an exact decimal with at most two places, as a string (the API also takes "
                                     "a JSON number with at most two places); answered with exactly two (\"9500.00\")"})
class PointsField(RuleField):
    """Points (fields.points) from lowest to highest; answered as a str with two places."""

    def __init__(self, *, lowest: Decimal = -fields.POINTS_MAX, highest: Decimal = fields.POINTS_MAX,
                 nonzero: bool = False, **kwargs):
        super().__init__(lambda value: fields.points(value, lowest=lowest, highest=highest, nonzero=nonzero), **kwargs)

    def to_representation(self, value):
        return fields.format_points(value)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": BIGINT_MAX})
class IdField(RuleField):
    """A row's id, an order's or a dead letter's (fields.order_id's rule): a JSON integer from 1
    to BIGINT_MAX (1.0 is not one)."""

    def __init__(self, **kwargs):
        super().__init__(fields.order_id, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 1, "description": "whole units of the order's currency"})
class AmountField(RuleField):
    """An order's amount (fields.amount): 1 to `highest` whole units."""

    def __init__(self, *, highest: int, **kwargs):
        super().__init__(lambda value: fields.amount(value, highest), **kwargs)


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": fields.REASON_MAX,
                      "description": "why, in words: surrounding whitespace is trimmed; no control characters"})
class ReasonField(RuleField):
    """An operator's reason (fields.reason): trimmed, 1 to REASON_MAX characters."""

    def __init__(self, **kwargs):
        super().__init__(fields.reason, **kwargs)
