"""Idempotency keys for the API's writes, the way payment APIs do them (Stripe's Idempotency-Key;
the IETF draft "The Idempotency-Key HTTP Header Field").

A client that may retry a POST (a timeout, a double click) sends `Idempotency-Key: <its own unique
string>`. The first request with a key (per user, method and path) runs; its successful answer is stored with the key, in the
same transaction of the owning service's database as what it changed. A later request with the
same key and the same body gets the stored answer (status and body, and `Idempotent-Replayed:
true`) and changes nothing; with another body it is refused with a 422. Retries that arrive at the
same time are settled by the database: the key is unique, so of two concurrent firsts one commits
and the other is rolled back, with its effect, and answered from the stored row.

Only successful answers (2xx) are stored: a request refused for its input or because the saga
moved on changed nothing, and its retry is judged again. Keys are kept SAGA_IDEMPOTENCY_HOURS
(24 by default), then they are forgotten and a key is new again.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.response import Response

from sagaboard.kernel.models import IdempotencyKey

HEADER = "Idempotency-Key"
VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as the draft's examples (UUIDs, say)
PURGE_EVERY_SECONDS = 60.0
_purged_at: dict[str, float] = {}

PARAMETER = OpenApiParameter(
    HEADER, str, OpenApiParameter.HEADER, required=False,
    description=("Makes a retry safe: the same key with the same body returns the first answer and changes nothing; "
                 "with another body it is a 422. 1 to 255 visible ASCII characters (a UUID, say); kept "
                 "SAGA_IDEMPOTENCY_HOURS (24 by default). Only successful answers are kept."))


def idempotent(using):
    """Decorator for an APIView's `post(self, request, ...)`: `using(view, request)` names the
    database that owns the write (the one the view's effect commits in); None means the request is
    invalid anyway (the view answers it, nothing is stored)."""

    def decorate(post):
        @functools.wraps(post)
        def wrapped(view, request, *args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return post(view, request, *args, **kwargs)
            if not VALID_KEY.fullmatch(key):
                return Response({HEADER: ["1 to 255 visible ASCII characters"]}, status=status.HTTP_400_BAD_REQUEST)
            alias = using(view, request)
            if alias is None:
                return post(view, request, *args, **kwargs)
            return run_once(alias, key, request, lambda: post(view, request, *args, **kwargs))

        return wrapped

    return decorate


def fingerprint(request) -> str:
    """What makes two requests the same: method, path (with or without its trailing slash, one
    path as the API answers both) and body (its JSON, keys sorted)."""
    try:
        body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        body = repr(request.data)
    return hashlib.sha256(f"{request.method} {request.path.rstrip('/')}\n{body}".encode()).hexdigest()


def run_once(using: str, key: str, request, perform) -> Response:
    """Answer a request with `key` exactly once in `using` (see the module's docstring)."""
    user = getattr(request, "user", None)
    owner = user.pk if user is not None and user.is_authenticated else "-"  # one user never sees another's answers
    scope = f"{owner} {request.method} {request.path.rstrip('/')}"
    request_print = fingerprint(request)
    try:
        with transaction.atomic(using=using):
            known = _known(using, scope, key)
            if known is not None:
                return _replay(known, request_print)
            response = perform()
            if 200 <= response.status_code < 300:
                IdempotencyKey.objects.using(using).create(
                    scope=scope, key=key, fingerprint=request_print, status=response.status_code,
                    body=json.dumps(response.data, default=str))
            _purge(using)
            return response
    except IntegrityError:  # a concurrent request with this key committed first: this one's effect is undone
        known = _known(using, scope, key)
        if known is None:
            raise
        return _replay(known, request_print)


def _known(using: str, scope: str, key: str) -> IdempotencyKey | None:
    """The stored answer to `key`; one older than SAGA_IDEMPOTENCY_HOURS is forgotten here."""
    known = IdempotencyKey.objects.using(using).filter(scope=scope, key=key).first()
    if known is not None and known.created_at < timezone.now() - timedelta(hours=settings.SAGA_IDEMPOTENCY_HOURS):
        known.delete(using=using)
        return None
    return known


def _replay(known: IdempotencyKey, request_print: str) -> Response:
    if known.fingerprint != request_print:
        return Response({"detail": f"this {HEADER} was used with another request; use a new key for a new request"},
                        status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    return Response(json.loads(known.body), status=known.status, headers={"Idempotent-Replayed": "true"})


def _purge(using: str) -> None:
    """Forget expired keys, at most once a minute per database and process (inside the caller's transaction)."""
    now = time.monotonic()
    if now - _purged_at.get(using, 0.0) < PURGE_EVERY_SECONDS:
        return
    _purged_at[using] = now
    expired = timezone.now() - timedelta(hours=settings.SAGA_IDEMPOTENCY_HOURS)
    IdempotencyKey.objects.using(using).filter(created_at__lt=expired).delete()
