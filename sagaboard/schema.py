"""Pieces every API view shares: the error responses (so the schema says what a 4xx looks like)
and the checking of order ids, which every database must be able to hold."""
import re

from django.http import Http404
from django.urls import register_converter
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.negotiation import DefaultContentNegotiation

from sagaboard.kernel.events import BIGINT_MAX

MAX_ID = BIGINT_MAX  # the largest id PostgreSQL and SQLite store (bigint)
_DIGITS = re.compile(r"[0-9]{1,19}")


def order_id(value: str | None, *, name: str = "orderId", required: bool = False) -> int | None:
    """A query parameter that must be an order id: None when absent and optional, else a 400."""
    if value is None and not required:
        return None
    if value is None or not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_ID:
        raise exceptions.ValidationError({name: [f"{'required, ' if required else ''}a positive integer up to {MAX_ID}"]})
    return int(value)


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
        "Bad input: the field errors, e.g. {\"amount\": [\"Ensure this value is greater than or equal to 1.\"]}, "
        "{\"detail\": \"...\"} when the body is not JSON, or {\"format\": [\"...\"]} for an unknown ?format=.")),
    403: OpenApiResponse(DetailSerializer, description="Not allowed: log in (session or token); grants and corrections need staff."),
    404: OpenApiResponse(DetailSerializer, description="No such object."),
    409: OpenApiResponse(DetailSerializer, description="The correction does not apply (nothing to correct, or already done)."),
    422: OpenApiResponse(DetailSerializer, description="The Idempotency-Key was used before with another request."),
}


def errors(*codes: int) -> dict:
    """The error responses of an endpoint, for its OpenAPI schema: 400 (every endpoint takes
    ?format=) and 403 apply to every one."""
    return {code: _ERRORS[code] for code in sorted({400, 403, *codes})}


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, except that an unknown ?format= is bad input that names the formats there
    are (DRF answers it with a bare 404, as if the endpoint did not exist)."""

    def filter_renderers(self, renderers, format):
        try:
            return super().filter_renderers(renderers, format)
        except Http404:
            known = ", ".join(sorted({renderer.format for renderer in renderers}))
            raise exceptions.ValidationError({"format": [f"unknown format {format[:40]!r}: one of {known}"]}) from None
