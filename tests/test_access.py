"""Production mode (DJANGO_DEBUG=0 with a secret key and allowed hosts from the environment):
`check --deploy` is clean, there is no default secret or password, every write needs a login
(session or token), grants and corrections need staff; reading needs a login only when
SAGA_READ_REQUIRES_LOGIN is set. Development mode's anonymous walkthrough is test_walkthrough.py."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import httpx
import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.test import override_settings
from rest_framework.test import APIRequestFactory

from sagaboard.access import OperatorAccess, SagaAccess, may_operate, may_read, may_write
from tests.system import ROOT, wait_until

SECRET = secrets.token_urlsafe(50)
PRODUCTION = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": SECRET, "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost"}
# The system under test speaks plain HTTP on 127.0.0.1 (TLS would end at a proxy in front of it), so
# the redirect to HTTPS and secure-only cookies are switched off here, through their own variables.
SYSTEM_ENV = {**PRODUCTION, "DJANGO_SECURE_SSL_REDIRECT": "0", "DJANGO_SESSION_COOKIE_SECURE": "0",
              "DJANGO_CSRF_COOKIE_SECURE": "0", "SAGA_READ_REQUIRES_LOGIN": "0"}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SAGA_OPEN_ACCESS", "SAGA_READ"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_reports_no_issues_in_production_mode():
    done = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr


def test_production_mode_has_no_default_secret():
    done = manage("check", DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="127.0.0.1")
    assert done.returncode != 0 and "DJANGO_SECRET_KEY" in done.stderr, done.stderr[-2000:]


@override_settings(SAGA_OPEN_ACCESS=False, SAGA_READ_REQUIRES_LOGIN=True)
def test_reading_needs_a_login_when_told():
    visitor, member, staff = AnonymousUser(), User(username="m", is_active=True), User(username="s", is_active=True, is_staff=True)
    assert (may_read(visitor), may_read(member)) == (False, True)
    assert (may_write(visitor), may_write(member)) == (False, True)
    assert (may_operate(member), may_operate(staff)) == (False, True)
    request = APIRequestFactory().get("/orders")
    request.user = visitor
    assert not SagaAccess().has_permission(request, None) and not OperatorAccess().has_permission(request, None)
    with override_settings(SAGA_READ_REQUIRES_LOGIN=False):
        assert may_read(visitor) and SagaAccess().has_permission(request, None)


@override_settings(SAGA_OPEN_ACCESS=True)
def test_development_mode_is_open():
    assert may_read(AnonymousUser()) and may_write(AnonymousUser()) and may_operate(AnonymousUser())


# --- against the running system in production mode ----------------------------------------------
def make_user(system, username: str, *, staff: bool) -> tuple[str, str]:
    """A user (made as the README says) and its API token: returns (password, token)."""
    password = secrets.token_urlsafe(16)
    make = "create_superuser" if staff else "create_user"
    system.manage("shell", "-c", f"from django.contrib.auth.models import User; User.objects.{make}({username!r}, password={password!r})")
    token = re.search(r"Generated token (\w+)", system.manage("drf_create_token", username)).group(1)
    return password, token


@pytest.fixture(scope="module")
def users(system):
    return {"member": make_user(system, "member", staff=False), "boss": make_user(system, "boss", staff=True)}


def as_user(system, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Token {token}"} if token else {}
    return httpx.Client(base_url=system.http.base_url, headers=headers, timeout=10)


@pytest.mark.system
def test_every_write_needs_a_login_and_grants_need_staff(system, users):
    anonymous, member, boss = as_user(system, None), as_user(system, users["member"][1]), as_user(system, users["boss"][1])
    try:
        for path in ("/orders", "/points", "/exchanges", "/consistency", "/corrections/adjust"):
            assert anonymous.get(path).status_code == 200, path  # SAGA_READ_REQUIRES_LOGIN is off
        for client in (anonymous, member):
            refused = client.post("/points", json={"userId": "zed", "point": 1000})
            assert refused.status_code == 403 and refused.json()["detail"], refused.text
        assert boss.post("/points", json={"userId": "zed", "point": 1000}).status_code == 201
        order = {"holderId": "zed", "currencyId": "1", "amount": 100}
        refused = anonymous.post("/orders", json=order)
        assert refused.status_code == 403 and "credentials" in refused.json()["detail"]
        with as_user(system, "not-a-token") as forger:
            assert forger.post("/orders", json=order).json() == {"detail": "Invalid token."}
        assert system.get("/orders") == []  # nothing stored
        placed = member.post("/orders", json=order)
        assert placed.status_code == 201, placed.text
        assert system.settled(placed.json()["id"])["status"] == "APPROVED"
        correction = {"holderId": "zed", "point": 5, "reason": "staff only"}
        assert member.post("/corrections/adjust", json=correction).status_code == 403
        done = boss.post("/corrections/adjust", json=correction)
        assert done.status_code == 202 and done.json()["operator"] == "boss", done.text
        recorded = wait_until(lambda: system.get("/events", type="PointsAdjusted"), 10, 0.1, "the monitor to record it")
        assert [e["payload"]["operator"] for e in recorded] == ["boss"]
        system.wait_consistent()
    finally:
        for client in (anonymous, member, boss):
            client.close()


@pytest.mark.system
def test_a_browser_session_writes_with_its_csrf_token(system, users):
    with httpx.Client(base_url=system.http.base_url, timeout=10) as browser:
        browser.get("/admin/login/")
        logged_in = browser.post("/admin/login/?next=/admin/", data={
            "username": "member", "password": users["member"][0], "next": "/admin/",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
        assert logged_in.status_code == 200 and "staff account" in logged_in.text  # admin is for staff only
        browser.get("/admin/login/")
        logged_in = browser.post("/admin/login/?next=/admin/", data={
            "username": "boss", "password": users["boss"][0], "next": "/admin/",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
        assert logged_in.status_code == 302
        grant = {"userId": "yan", "point": 10}
        forged = browser.post("/points", json=grant)  # a session without its CSRF token is refused
        assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
        allowed = browser.post("/points", json=grant, headers={"X-CSRFToken": browser.cookies["csrftoken"]})
        assert allowed.status_code == 201, allowed.text


@pytest.mark.system
def test_production_responses_carry_the_security_headers(system):
    response = system.http.get("/orders")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
