"""Playwright (sync API) driving Debian's Chromium, for the dashboard's browser tests.

Chromium comes from apt (`make test` installs it, as root, when /usr/bin/chromium is missing); Playwright's
own browser download (`playwright install`) is never used. Screenshots go to the artifacts
directory, SAGA_ARTIFACTS_DIR or ./var/artifacts, and their paths are printed."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.system import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SAGA_ARTIFACTS_DIR", ROOT / "var" / "artifacts"))
TIMEOUT_MS = 30_000


@contextmanager
def browser():
    """One headless Chromium for a test module."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: run `make test` as root (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"])
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def page_of(chromium, base_url: str, path: str = "/"):
    """A fresh page (own context) opened at `path`, waiting until its socket is live. Errors the
    page's scripts raise fail the test when the page closes."""
    context = chromium.new_context(base_url=base_url, viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(path)
        wait_live(page)
        yield page
    except BaseException:
        screenshot(page, "failure-" + "".join(c if c.isalnum() else "-" for c in path).strip("-"))
        raise
    finally:
        context.close()
    assert not errors, f"the page raised: {errors}"


def wait_live(page: Page, timeout_ms: int = TIMEOUT_MS) -> None:
    page.wait_for_selector("#live-state[data-state=live]", timeout=timeout_ms)


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
