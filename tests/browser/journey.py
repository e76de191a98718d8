"""What the guide journeys share (first-setup-m365.md by hand, and the setup wizard).

A journey test walks a whole guide in Chromium against the Microsoft 365 emulator and
keeps one numbered screenshot per step under ``SHOTS_DIR/<test name>/``. Use it with::

    from .journey import Journey, Guide, journey, guide_env, ...  # noqa: F401 (fixtures)

Fixtures: ``guide_env`` (the emulator over HTTPS, Mailvault's settings pointed at it, the
archive under tmp_path, an SMTP listener the emulator's journal reports go to),
``customer`` (a freshly provisioned tenant "democustomer" whose admin still has the
printed password), ``journey`` (screenshots per step, and a browser context per person)
and ``worker`` (the job worker thread of tests/browser/test_jobs.py).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.backends.sqlite3.base import DatabaseWrapper as SqliteWrapper
from django.test.utils import override_settings
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError
from pytest_django import Settings

from corpus import archive_settings
from directory.emulator import m365_settings
from m365_emulator.testing import EmulatorHandle, running_emulator
from mailvault.jobs import services as jobs
from mailvault.tenancy.provisioning import ProvisionedTenant, provision_tenant

from .conftest import CHROMIUM_ARGS, SHOTS_DIR  # noqa: F401 - re-exported for journeys
from .test_jobs import WorkerThread, worker  # noqa: F401 - the worker thread fixture
from .test_journal_delivery import JOURNAL_DOMAIN, InProcessListener

CUSTOMER = "democustomer"


# --- screenshots per step ------------------------------------------------------------------
class Journey:
    """Numbered steps with a screenshot each, and one browser context per person."""

    def __init__(self, name: str, browser: Browser, base_url: str) -> None:
        self.dir = SHOTS_DIR / re.sub(r"[^\w.-]+", "_", name)
        self.browser, self.base_url = browser, base_url
        self.number = 0
        self.shots: list[Path] = []
        self.contexts: list[BrowserContext] = []

    def person(self, *, clipboard: bool = False) -> Page:
        """A page in a context of its own (own cookies, also at the emulator); the
        emulator's certificate comes from a CA Chromium does not know, so it is accepted
        here (Mailvault itself verifies it)."""
        ctx = self.browser.new_context(
            base_url=self.base_url,
            viewport={"width": 1280, "height": 900},
            ignore_https_errors=True,
        )
        ctx.set_default_timeout(15_000)
        if clipboard:
            ctx.grant_permissions(["clipboard-read", "clipboard-write"])
        self.contexts.append(ctx)
        return ctx.new_page()

    def step(self, page: Page, title: str, *, full_page: bool = True) -> Path:
        """Save the screenshot of the step just done as ``NN-title.png``. Chromium now and
        then refuses one under load; it is retried, and a step without one fails."""
        self.number += 1
        slug = re.sub(r"[^a-z0-9]+", "-", title.casefold()).strip("-")
        path = self.dir / f"{self.number:02d}-{slug}.png"
        self.dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            try:
                page.screenshot(path=str(path), full_page=full_page)
                break
            except PlaywrightError:
                if attempt == 2:
                    raise
                time.sleep(1)
        self.shots.append(path)
        return path

    def close(self) -> None:
        """Close every context; the last state of each open page is kept as ``last-*.png``
        (what a failing step looked like)."""
        for i, ctx in enumerate(self.contexts):
            for j, page in enumerate(ctx.pages):
                with contextlib.suppress(PlaywrightError):
                    page.screenshot(path=str(self.dir / f"last-{i}-{j}.png"), full_page=True)
        for ctx in self.contexts:
            with contextlib.suppress(PlaywrightError):
                ctx.close()


@pytest.fixture
def journey(
    request: pytest.FixtureRequest, browser: Browser, live_server: object
) -> Iterator[Journey]:
    run = Journey(request.node.name, browser, str(live_server))
    if run.dir.exists():  # the shots of an earlier run of the same test
        for old in run.dir.glob("*.png"):
            old.unlink()
    try:
        yield run
    finally:
        run.close()


# --- the world around Mailvault: emulator, SMTP listener, archive ------------------------
@dataclass
class GuideEnv:
    m365: EmulatorHandle
    listener: InProcessListener
    journaled: list[int] = field(default_factory=list)

    def deliver_journal(self, *, expected: int = 1, timeout: float = 30.0) -> int:
        """What ``mailvault smtpd``'s threads do every second (roll the spool, flush the
        counters, ingest), until ``expected`` spooled messages were ingested."""
        done = 0
        deadline = time.monotonic() + timeout
        while True:
            done += self.listener.process()
            if done >= expected or time.monotonic() > deadline:
                self.journaled.append(done)
                return done
            time.sleep(0.2)


def _patient_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    """Opening a connection to the shared-cache in-memory test database runs a query
    (Django's function registration) before ``connection_created`` fires, so the retrying
    wrapper of test_jobs.py cannot cover it: while the worker thread writes, a request
    thread of the live server then fails with "database schema is locked". Retry that."""

    def connect(self: Any, conn_params: Any) -> Any:
        for attempt in range(500):
            try:
                return original(self, conn_params)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 499:
                    raise
                time.sleep(0.01)
        raise AssertionError("unreachable")  # pragma: no cover

    return connect


@pytest.fixture
def guide_env(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GuideEnv]:
    """The emulator (a generated Contoso tenant, consent not yet granted) and an SMTP
    listener on a free port that receives the emulator's journal reports."""
    monkeypatch.setattr(
        SqliteWrapper,
        "get_new_connection",
        _patient_connect(SqliteWrapper.get_new_connection),
    )
    for key, value in archive_settings(tmp_path / "archive").items():
        setattr(settings, key, value)
    settings.MAILVAULT_JOURNAL_DOMAIN = JOURNAL_DOMAIN
    settings.VAR_DIR = tmp_path
    listener = InProcessListener(tmp_path)
    listener.committer.start()
    listener.controller.start()
    try:
        with (
            running_emulator(
                fixture="generated",
                users=16,
                groups=8,
                consented=False,
                journal_smarthost=f"127.0.0.1:{listener.port}",
            ) as m365,
            override_settings(**m365_settings(m365)),
        ):
            m365.set_faults(retry_after="0.05")
            yield GuideEnv(m365, listener)
    finally:
        listener.controller.stop()
        listener.committer.stop()


@pytest.fixture
def customer(guide_env: GuideEnv) -> ProvisionedTenant:
    """The customer as provisioned: the registration mail's username and password."""
    return provision_tenant(CUSTOMER, display_name="Demo Customer")


# --- page helpers --------------------------------------------------------------------------
class Guide:
    """Small page steps that the guide repeats."""

    @staticmethod
    def admin_login(page: Page, username: str, password: str) -> None:
        page.goto("/adminaccess/")
        expect(page).to_have_url(re.compile(r"/adminaccess/login/"))
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    @staticmethod
    def microsoft_sign_in(page: Page, upn: str, password: str) -> None:
        """The emulator's Microsoft sign-in page (the username may be pre-filled)."""
        login = page.get_by_label("Email, phone, or Skype")
        expect(login).to_be_visible()
        if not login.input_value():
            login.fill(upn)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    @staticmethod
    def menu(page: Page, label: str) -> None:
        page.get_by_role("navigation", name="Admin Access menu").get_by_role(
            "link", name=label, exact=True
        ).click()

    @staticmethod
    def dialog(page: Page) -> Locator:
        dialog = page.locator("dialog#mv-dialog")
        expect(dialog).to_be_visible()
        return dialog

    @staticmethod
    def wait_run_finished(page: Page, timeout: float = 120_000) -> str:
        """On a process log entry: wait for its end; returns its messages' text."""
        status = page.get_by_test_id("run-status")
        expect(status).to_have_text(re.compile("Finished|Failed|Cancelled"), timeout=timeout)
        messages = page.get_by_test_id("run-messages").inner_text()
        assert status.inner_text().strip() == "Finished", messages
        return messages

    @staticmethod
    def once_value(minutes: float) -> str:
        """A ``datetime-local`` value ``minutes`` from now, in UTC."""
        moment = datetime.now(UTC) + timedelta(minutes=minutes)
        return moment.strftime("%Y-%m-%dT%H:%M")


def scheduler_pass(ahead: timedelta) -> list[int]:
    """One pass of ``mailvault scheduler`` as if the clock stood ``ahead`` from now (a
    Once schedule must be at least a minute away); returns the queued schedules."""
    return jobs.tick(datetime.now(UTC) + ahead).queued
