"""Issue 4 in a real browser: a File Import configuration, a schedule from its clock icon,
"Run now", the progress moving in the process log without a reload, Cancel, and the
cancelled entry with its messages.

Jobs run in a worker *thread* of the test process (the django-tasks database worker loop
that ``mailvault worker --in-process`` runs), with its own database connection like every
request thread of the live server; on SQLite they all reach the same in-memory
shared-cache test database (see :func:`_patient_sqlite`).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connections
from django.db.backends.signals import connection_created
from playwright.sync_api import Page, expect
from pytest_django import Settings

from corpus import archive_settings, message_root
from mailvault.archive import services as archive
from mailvault.ingestion.pipeline import Ingestor
from mailvault.ingestion.types import IngestResult
from mailvault.jobs.management.commands.worker import RecoveringWorker
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.provisioning import ProvisionedTenant

from .conftest import Account, Ui

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Eight busy months of R-help, about 13,000 messages: an import that takes a while, so the
# progress can be seen moving and the run cancelled long before its end.
MONTHS = (
    "2007-June.txt",
    "2007-July.txt",
    "2007-March.txt",
    "2013-June.txt",
    "2007-December.txt",
    "2006-January.txt",
    "2005-June.txt",
    "2013-September.txt",
)
MAILBOX = "r-help@acme"


def _retry_when_locked(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """Retry a statement refused by a shared-cache table lock (SQLITE_LOCKED)."""
    for attempt in range(1000):
        try:
            return execute(sql, params, many, context)
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 999:
                raise
            time.sleep(0.01)
    raise AssertionError("unreachable")  # pragma: no cover


def _patient_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Make a new connection to the in-memory test database wait for table locks.

    The in-memory SQLite test database is a shared-cache database: the test, each
    request thread of the live server and the worker thread have their own connection
    to it, and SQLite refuses a statement at once (SQLITE_LOCKED, no busy timeout) when
    another connection holds a lock on the table. Readers read uncommitted (no read
    locks), writers retry. A file database in WAL mode, as in production, waits by
    itself; PostgreSQL needs none of this.
    """
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = true")
        connection.execute_wrappers.append(_retry_when_locked)


class WorkerThread:
    """The database worker loop in a daemon thread, stopped (and joined) at the end."""

    def __init__(self) -> None:
        self.worker = RecoveringWorker(
            queue_names=["default"],
            interval=0.1,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id="browser-test",
        )
        self.thread = threading.Thread(target=self._run, name="jobs-worker", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            connections.close_all()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.worker.running = False
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the worker thread did not stop"
        assert self.error is None, f"the worker thread failed: {self.error!r}"


@pytest.fixture
def worker() -> Iterator[WorkerThread]:
    connection_created.connect(_patient_sqlite, dispatch_uid="browser-test-patient-sqlite")
    # The live server may share this thread's connection (in-memory SQLite), which was
    # opened before the signal above was connected: make it patient too.
    default = connections["default"]
    patched = default.vendor == "sqlite" and default.is_in_memory_db()
    if patched:
        default.ensure_connection()
        _patient_sqlite(None, connection=default)
    thread = WorkerThread()
    try:
        yield thread
    finally:
        if thread.thread.is_alive():
            thread.stop()
        connection_created.disconnect(dispatch_uid="browser-test-patient-sqlite")
        if patched and _retry_when_locked in default.execute_wrappers:
            default.execute_wrappers.remove(_retry_when_locked)


@pytest.fixture
def import_root(tmp_path: Path, settings: Settings) -> Path:
    """An import root holding a few months of R-help; the archive lives in tmp_path."""
    root = tmp_path / "import"
    (root / "r-help").mkdir(parents=True)
    source = message_root("r-help")  # skips when the corpus is absent
    for month in MONTHS:
        shutil.copyfile(source / month, root / "r-help" / month)
    settings.MAILVAULT_IMPORT_ROOTS = [str(root)]
    settings.MAILVAULT_IMPORT_JOB_BATCH = 50
    for key, value in archive_settings(tmp_path / "archive").items():
        setattr(settings, key, value)
    return root


@pytest.fixture
def paced_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """The import's batches, 50 messages each here, take at least 50 ms: a bulk import
    gets through these months in a few seconds, before the page has watched its progress
    move and cancelled it. The import itself is the real one."""
    submit = Ingestor.submit

    def paced(self: Ingestor) -> list[IngestResult]:
        time.sleep(0.05)
        return submit(self)

    monkeypatch.setattr(Ingestor, "submit", paced)


def test_schedule_run_watch_progress_cancel(
    import_root: Path,  # first: the archive settings hold before the tenant exists
    page: Page,
    tenant: ProvisionedTenant,
    ready_admin: Account,
    ui: Ui,
    worker: WorkerThread,
    shots_dir: Path,
    paced_import: None,
) -> None:
    with tenant_context(tenant.tenant):
        archive.create_mailbox(MAILBOX)
    ui.admin_sign_in(page, ready_admin.username, ready_admin.password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # A File Import configuration, made in the UI.
    page.get_by_role("navigation", name="Admin Access menu").get_by_role(
        "link", name="File Import"
    ).click()
    page.get_by_role("link", name="Add import").click()
    page.get_by_label("Name").fill("R-help archive")
    page.get_by_label("Target mailbox").select_option(label=MAILBOX)
    page.get_by_label("Server path").fill(str(import_root / "r-help"))
    page.get_by_role("button", name="Save").click()
    row = page.get_by_test_id("import-row").filter(has_text="R-help archive")
    expect(row).to_be_visible()
    expect(row.get_by_role("cell").nth(3)).to_have_text("—")  # no schedule yet

    # Its clock icon opens the schedule dialog: every 5 minutes.
    row.get_by_role("link", name="Schedule R-help archive").click()
    dialog = page.locator("dialog#mv-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_contain_text("File import · R-help archive")
    dialog.get_by_label("Runs").select_option(label="Every N minutes")
    expect(dialog.get_by_label("Date and time")).to_be_hidden()
    dialog.get_by_label("Every (minutes)").fill("0")
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog.get_by_role("alert")).to_contain_text("between 1 and 10080 minutes")
    dialog.get_by_label("Every (minutes)").fill("5")
    page.screenshot(path=str(shots_dir / "jobs-schedule-dialog.png"))
    dialog.get_by_role("button", name="Save schedule").click()
    expect(dialog.get_by_test_id("schedule-saved")).to_contain_text("Every 5 minutes")
    expect(dialog.get_by_test_id("next-run")).to_have_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"))
    dialog.get_by_role("link", name="Close").click()
    expect(row.get_by_role("cell").nth(3)).to_have_text("Every 5 minutes")

    # Run now: the process log entry of the run, queued until the worker takes it.
    row.get_by_role("button", name="Run now").click()
    expect(page).to_have_url(re.compile(r"/adminaccess/process-log/\d+/$"))
    status = page.get_by_test_id("run-status")
    expect(status).to_have_text("Queued")
    page.evaluate("window.__sameDocument = true")  # a reload would drop it
    worker.start()

    # The progress moves while the page stays the same document.
    expect(status).to_have_text("Running", timeout=30_000)
    progress = page.get_by_test_id("run-progress")
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=run-progress]').dataset.done) > 0",
        timeout=60_000,
    )
    first = int(progress.get_attribute("data-done") or 0)
    expect(progress).to_contain_text(re.compile(r"\d+% \(\d+ of \d+\)"))
    page.wait_for_function(
        "(first) => Number(document.querySelector('[data-testid=run-progress]').dataset.done)"
        " > first",
        arg=first,
        timeout=60_000,
    )
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(shots_dir / "jobs-run-progress.png"), full_page=True)

    # Cancel: the job stops at its next safe point and the entry ends "cancelled".
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("run-live")).to_contain_text("Cancel requested by")
    expect(status).to_have_text("Cancelled", timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True
    worker.stop()
    done = int(progress.get_attribute("data-done") or 0)
    total = int(re.search(r"of (\d+)", progress.inner_text()).group(1))  # type: ignore[union-attr]
    assert first < done < total
    messages = page.get_by_test_id("run-messages")
    expect(messages).to_contain_text("stopped before the end; run it again to resume")
    expect(messages).to_contain_text(re.compile(rf"(?<!\d){done} items read: \d+ filed"))
    expect(messages).to_contain_text("Cancelled on request")
    expect(page.get_by_test_id("run-severity")).to_have_text("Warning")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)

    # The process log lists the entry, ended and cancelled, with its configuration.
    page.get_by_role("link", name="← Process Log").click()
    entry = page.get_by_test_id("run-row").filter(has_text="R-help archive")
    expect(entry).to_have_count(1)
    expect(entry.get_by_test_id("run-status")).to_have_text("Cancelled")
    expect(entry).to_contain_text("File import")
    page.screenshot(path=str(shots_dir / "jobs-process-log.png"), full_page=True)
    page.get_by_label("State").select_option(label="Unfinished")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("run-row")).to_have_count(0)

    # Schedules lists the schedule made from the clock icon.
    page.get_by_role("navigation", name="Admin Access menu").get_by_role(
        "link", name="Schedules"
    ).click()
    schedule = page.get_by_test_id("schedule-row")
    expect(schedule).to_have_count(1)
    expect(schedule).to_contain_text("R-help archive")
    expect(schedule).to_contain_text("Every 5 minutes")
