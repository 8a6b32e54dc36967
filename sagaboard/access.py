"""Who may do what — the one place both the API and the dashboard ask.

Development mode (the default of `make run`, SAGA_OPEN_ACCESS follows DJANGO_DEBUG=1): anyone on
127.0.0.1 may read and write, so the seed's walkthrough works anonymously with HTTPie or curl.
Production mode (DJANGO_DEBUG=0): every write needs an authenticated user; granting points,
corrections and the dashboard's service and scenario controls need a staff user; reading needs a
login only when SAGA_READ_REQUIRES_LOGIN is set.
"""
from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission


def _authenticated(user):
    return bool(user is not None and user.is_authenticated and user.is_active)


def may_read(user):
    return settings.SAGA_OPEN_ACCESS or not settings.SAGA_READ_REQUIRES_LOGIN or _authenticated(user)


def may_write(user):
    return settings.SAGA_OPEN_ACCESS or _authenticated(user)


def may_operate(user):
    """Staff-only actions: grants, corrections, stopping and starting services, scenarios."""
    return settings.SAGA_OPEN_ACCESS or (_authenticated(user) and user.is_staff)


class SagaAccess(BasePermission):
    """The API's default: reads per may_read, writes per may_write."""

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return may_read(request.user)
        return may_write(request.user)


class OperatorAccess(BasePermission):
    """Reads per may_read, writes for staff only (grants, corrections, service control)."""

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return may_read(request.user)
        return may_operate(request.user)
