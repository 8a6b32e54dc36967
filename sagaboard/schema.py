"""OpenAPI pieces every API view shares: the error responses, so the schema says what a 4xx looks like."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="what is wrong")


_ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description=(
        "Bad input: the field errors, e.g. {\"amount\": [\"Ensure this value is greater than or equal to 1.\"]}, "
        "or {\"detail\": \"...\"} when the body is not JSON.")),
    403: OpenApiResponse(DetailSerializer, description="Not allowed: log in (session or token); grants and corrections need staff."),
    404: OpenApiResponse(DetailSerializer, description="No such object."),
    409: OpenApiResponse(DetailSerializer, description="The correction does not apply (nothing to correct, or already done)."),
}


def errors(*codes: int) -> dict:
    """The error responses of an endpoint, for its OpenAPI schema (403 applies to every one)."""
    return {code: _ERRORS[code] for code in sorted({403, *codes})}
