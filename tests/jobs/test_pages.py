"""The pages of issue 4 through Django's test client: the schedule dialog, Schedules,
Process Log, File Import and the dashboard block. Jobs run for real (``execute_run``)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings

from factories import TenantWorld
from mailvault.archive.models import Placement
from mailvault.ingestion.file_import import PROCESS_TYPE as FILE_IMPORT
from mailvault.ingestion.models import ImportConfiguration
from mailvault.jobs import services
from mailvault.jobs.models import JobMessage, JobRun, Schedule, Severity
from mailvault.jobs.recurrence import Kind, Recurrence
from mailvault.jobs.runner import execute_run
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def mbox_bytes(count: int, tag: str = "m") -> bytes:
    parts = []
    for i in range(count):
        parts.append(
            f"From sender@example.org Mon Jan  1 00:00:{i % 60:02d} 2024\n"
            f"From: Sender <sender@example.org>\nTo: member@example.org\n"
            f"Subject: {tag} message {i}\nMessage-ID: <{tag}-{i}@example.org>\n"
            f"Date: Mon, 1 Jan 2024 00:00:{i % 60:02d} +0000\n\nBody {tag} {i}\n\n"
        )
    return "".join(parts).encode()


@pytest.fixture
def import_root(tmp_path: Path, settings: Settings) -> Path:
    root = tmp_path / "import"
    root.mkdir()
    settings.MAILVAULT_IMPORT_ROOTS = [str(root)]
    return root


@pytest.fixture
def mbox(import_root: Path) -> Path:
    path = import_root / "inbox.mbox"
    path.write_bytes(mbox_bytes(5))
    return path


def make_config(world: TenantWorld, path: Path, name: str = "Old mail") -> ImportConfiguration:
    with tenant_context(world.tenant):
        return ImportConfiguration.objects.create(name=name, mailbox=world.mailbox, path=str(path))


def schedules_of(world: TenantWorld) -> list[Schedule]:
    with tenant_context(world.tenant):
        return list(Schedule.objects.order_by("pk"))


def dialog_url(config: ImportConfiguration) -> str:
    return reverse(
        "adminaccess:schedule_new", kwargs={"process_type": FILE_IMPORT, "config_id": config.pk}
    )


def local_input(delta: timedelta, tz: str = "UTC") -> str:
    """A datetime-local value ``delta`` from now, as the dialog's field takes it."""
    from zoneinfo import ZoneInfo

    return (timezone.now() + delta).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")


def post_schedule(client: Client, url: str, **fields: Any) -> Any:
    data = {"kind": "daily", "at_time": "02:30", "time_zone": "Europe/Berlin", "enabled": "on"}
    data.update({k: v for k, v in fields.items() if v is not None})
    for key in [k for k, v in fields.items() if v is None]:
        data.pop(key, None)
    return client.post(url, data)


def field_errors(response: Any, field: str) -> list[str]:
    return list(response.context["form"].errors.get(field, []))


# --- the schedule dialog --------------------------------------------------------------


def test_dialog_is_a_page_without_js_and_a_fragment_for_htmx(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path
) -> None:
    config = make_config(tenant_a, mbox)
    page = admin_client_a.get(dialog_url(config))
    assert page.status_code == 200
    body = page.content.decode()
    assert "<html" in body and 'id="schedule-form"' in body and "Old mail" in body
    fragment = admin_client_a.get(dialog_url(config), **HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode()
    assert 'id="schedule-form"' in fragment.content.decode()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": "once", "run_at": "2020-01-01T10:00"}, "run_at", "at least 1 minute"),
        ({"kind": "once", "run_at": "30s"}, "run_at", "at least 1 minute"),
        ({"kind": "once", "run_at": ""}, "run_at", "needs a date and time"),
        ({"kind": "every_n_minutes", "interval_minutes": "0"}, "interval_minutes", "between 1"),
        ({"kind": "hourly", "minute": "60"}, "minute", "between 0 and 59"),
        ({"kind": "daily", "at_time": "25:00"}, "at_time", "HH:MM"),
        ({"kind": "weekly", "at_time": "08:00"}, "weekdays", "at least one day"),
        ({"kind": "monthly", "day_of_month": "32"}, "day_of_month", "between 1 and 31"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone", "Unknown time zone"),
    ],
)
def test_dialog_refuses_bad_recurrences_at_the_right_field(
    admin_client_a: Client,
    tenant_a: TenantWorld,
    mbox: Path,
    fields: dict[str, str],
    field: str,
    message: str,
) -> None:
    config = make_config(tenant_a, mbox)
    if fields.get("run_at") == "30s":
        fields = {**fields, "run_at": local_input(timedelta(seconds=30), "Europe/Berlin")}
    response = post_schedule(admin_client_a, dialog_url(config), **fields)
    assert response.status_code == 200
    errors = field_errors(response, field)
    assert any(message in e for e in errors), response.context["form"].errors
    assert message in response.content.decode()
    assert schedules_of(tenant_a) == []


def test_once_a_few_minutes_ahead_is_accepted_in_its_zone(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path
) -> None:
    config = make_config(tenant_a, mbox)
    when = local_input(timedelta(minutes=5), "America/New_York")
    response = post_schedule(
        admin_client_a,
        dialog_url(config),
        kind="once",
        run_at=when,
        time_zone="America/New_York",
        at_time=None,
    )
    assert response.status_code == 302
    [schedule] = schedules_of(tenant_a)
    assert schedule.kind == "once"
    # The wall time typed is New York time: about 5 minutes from now in absolute time.
    assert schedule.next_run_at is not None
    lead = schedule.next_run_at - timezone.now()
    assert timedelta(minutes=3) < lead <= timedelta(minutes=5)


def test_create_shows_next_run_and_the_list_shows_the_schedule(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path
) -> None:
    config = make_config(tenant_a, mbox)
    back = reverse("adminaccess:file_import")
    response = admin_client_a.post(
        dialog_url(config),
        {"kind": "every_n_minutes", "interval_minutes": "5", "enabled": "on", "next": back},
        **HTMX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    [schedule] = schedules_of(tenant_a)
    assert schedule.process_type == FILE_IMPORT and schedule.config_id == str(config.pk)
    assert schedule.interval_minutes == 5 and schedule.enabled
    assert schedule.next_run_at is not None
    assert 'data-testid="schedule-saved"' in body
    assert "Every 5 minutes" in body
    assert schedule.next_run_at.strftime("%Y-%m-%d %H:%M") in body  # UTC: settings.TIME_ZONE
    assert f'href="{back}"' in body

    listing = admin_client_a.get(back).content.decode()
    assert "Every 5 minutes" in listing
    schedules_page = admin_client_a.get(reverse("adminaccess:schedules")).content.decode()
    assert "File import" in schedules_page and "Old mail" in schedules_page
    assert "Every 5 minutes" in schedules_page


def test_plain_post_redirects_with_the_next_run_in_a_message(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path
) -> None:
    config = make_config(tenant_a, mbox)
    response = post_schedule(admin_client_a, dialog_url(config))
    assert response.status_code == 302
    assert response["Location"] == reverse("adminaccess:schedules")
    page = admin_client_a.get(response["Location"]).content.decode()
    assert "Schedule saved: Daily at 02:30 (Europe/Berlin). Next run:" in page
    assert re.search(r"Next run: \d{4}-\d\d-\d\d 02:30 CES?T", page)


def test_empty_zone_takes_the_browser_zone_else_the_setting(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path, settings: Settings
) -> None:
    config = make_config(tenant_a, mbox)
    post_schedule(
        admin_client_a, dialog_url(config), time_zone="", browser_time_zone="America/New_York"
    )
    settings.TIME_ZONE = "Europe/Berlin"
    post_schedule(admin_client_a, dialog_url(config), time_zone="", browser_time_zone="Nowhere/X")
    assert [s.time_zone for s in schedules_of(tenant_a)] == ["America/New_York", "Europe/Berlin"]


def test_edit_enable_disable_delete(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path
) -> None:
    config = make_config(tenant_a, mbox)
    post_schedule(admin_client_a, dialog_url(config))
    [schedule] = schedules_of(tenant_a)
    edit = reverse("adminaccess:schedule_edit", kwargs={"schedule_id": schedule.pk})
    form = admin_client_a.get(edit).content.decode()
    assert 'value="02:30"' in form and "Europe/Berlin" in form

    response = post_schedule(
        admin_client_a, edit, kind="weekly", weekdays=["0", "3"], at_time="06:15"
    )
    assert response.status_code == 302
    [schedule] = schedules_of(tenant_a)
    assert schedule.description == "Weekly on Mon, Thu at 06:15 (Europe/Berlin)"

    toggle = reverse("adminaccess:schedule_set_enabled", kwargs={"schedule_id": schedule.pk})
    admin_client_a.post(toggle, {"enabled": "0"})
    [schedule] = schedules_of(tenant_a)
    assert not schedule.enabled and schedule.next_run_at is None
    admin_client_a.post(toggle, {"enabled": "1"})
    [schedule] = schedules_of(tenant_a)
    assert schedule.enabled and schedule.next_run_at is not None

    delete = reverse("adminaccess:schedule_delete", kwargs={"schedule_id": schedule.pk})
    assert admin_client_a.get(delete).status_code == 405
    admin_client_a.post(delete)
    assert schedules_of(tenant_a) == []


def test_a_once_in_the_past_cannot_be_re_enabled(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path
) -> None:
    config = make_config(tenant_a, mbox)
    with tenant_context(tenant_a.tenant):
        schedule = Schedule.objects.create(
            process_type=FILE_IMPORT,
            config_type="ingestion.importconfiguration",
            config_id=str(config.pk),
            kind="once",
            run_at=timezone.now() - timedelta(hours=1),
            enabled=False,
        )
    toggle = reverse("adminaccess:schedule_set_enabled", kwargs={"schedule_id": schedule.pk})
    page = admin_client_a.post(toggle, {"enabled": "1"}, follow=True).content.decode()
    assert "Cannot enable this schedule" in page and "at least 1 minute" in page
    [schedule] = schedules_of(tenant_a)
    assert not schedule.enabled


# --- run now, process log, cancel, JSON -----------------------------------------------


def run_of(world: TenantWorld, run_id: int) -> JobRun:
    with tenant_context(world.tenant):
        return JobRun.objects.get(pk=run_id)


def test_import_run_now_runs_the_import_and_the_log_shows_it(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path
) -> None:
    config = make_config(tenant_a, mbox)
    response = admin_client_a.post(
        reverse("adminaccess:import_run_now", kwargs={"config_id": config.pk})
    )
    run_id = int(response["Location"].rstrip("/").rsplit("/", 1)[-1])
    assert response["Location"] == reverse("adminaccess:run_detail", kwargs={"run_id": run_id})
    queued = admin_client_a.get(response["Location"]).content.decode()
    assert "Queued" in queued and 'hx-trigger="every 1s"' in queued

    # A second "run now" while the first is queued is refused and leads to the first.
    again = admin_client_a.post(
        reverse("adminaccess:import_run_now", kwargs={"config_id": config.pk}), follow=True
    )
    assert "already queued" in again.content.decode()
    with tenant_context(tenant_a.tenant):
        assert JobRun.objects.count() == 1

    status = execute_run(run_id)
    run = run_of(tenant_a, run_id)
    assert status == JobRun.Status.FINISHED, run.traceback
    assert (run.progress_done, run.progress_total) == (5, 5)
    with tenant_context(tenant_a.tenant):
        assert Placement.objects.filter(mailbox=tenant_a.mailbox).count() == 1 + 5
    detail = admin_client_a.get(response["Location"]).content.decode()
    assert "Finished" in detail and "100% (5 of 5)" in detail
    assert "5 items read: 5 filed into the mailbox" in detail
    assert 'hx-trigger="every' not in detail  # finished: no more polling
    listing = admin_client_a.get(reverse("adminaccess:file_import")).content.decode()
    assert "status-finished" in listing


def test_cancel_reaches_the_import_at_its_next_safe_point(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path, settings: Settings
) -> None:
    settings.MAILVAULT_IMPORT_JOB_BATCH = 2
    config = make_config(tenant_a, mbox)
    with tenant_context(tenant_a.tenant):
        run = services.run_now(FILE_IMPORT, config)
    # The cancel request arrives while the run is on its way: the job sees it between
    # batches, after the first batch is stored.
    JobRun.unscoped.filter(pk=run.pk).update(cancel_requested=True)
    assert execute_run(run.pk) == JobRun.Status.CANCELLED
    run = run_of(tenant_a, run.pk)
    assert run.progress_done == 2
    with tenant_context(tenant_a.tenant):
        texts = list(JobMessage.objects.filter(run=run).values_list("text", flat=True))
    assert "stopped before the end; run it again to resume" in texts
    assert any(t.startswith("2 items read: 2 filed") for t in texts)
    assert texts[-1] == "Cancelled on request"
    assert run.max_severity == Severity.WARNING


def test_schedule_run_now(admin_client_a: Client, tenant_a: TenantWorld, mbox: Path) -> None:
    config = make_config(tenant_a, mbox)
    post_schedule(admin_client_a, dialog_url(config))
    [schedule] = schedules_of(tenant_a)
    response = admin_client_a.post(
        reverse("adminaccess:schedule_run_now", kwargs={"schedule_id": schedule.pk})
    )
    assert response.status_code == 302
    with tenant_context(tenant_a.tenant):
        run = JobRun.objects.get()
    assert run.schedule_id == schedule.pk and run.status == JobRun.Status.QUEUED
    assert run.config_name == "Old mail" and run.triggered_by == tenant_a.owner.username


def make_runs(world: TenantWorld) -> dict[str, JobRun]:
    """A finished, a failed, a running and a queued run of the test process types."""
    with tenant_context(world.tenant):
        ok = services.run_now("test.ok")
        bad = services.run_now("test.raise")
    execute_run(ok.pk)
    execute_run(bad.pk)
    with tenant_context(world.tenant):
        running = services.run_now("test.hang")
        queued = services.run_now("test.cancel_self")
        JobRun.objects.filter(pk=running.pk).update(
            status=JobRun.Status.RUNNING,
            started_at=timezone.now(),
            progress_done=3,
            progress_total=12,
        )
        return {
            name: JobRun.objects.get(pk=r.pk)
            for name, r in [("ok", ok), ("bad", bad), ("running", running), ("queued", queued)]
        }


def shown_runs(client: Client, **params: str) -> set[int]:
    response = client.get(reverse("adminaccess:process_log"), params)
    assert response.status_code == 200
    return {int(i) for i in re.findall(r'data-run-id="(\d+)"', response.content.decode())}


def test_process_log_filters(admin_client_a: Client, tenant_a: TenantWorld) -> None:
    runs = make_runs(tenant_a)
    ids = {name: r.pk for name, r in runs.items()}
    assert shown_runs(admin_client_a) == set(ids.values())
    assert shown_runs(admin_client_a, process_type="test.raise") == {ids["bad"]}
    prefix = str(runs["ok"].request_id)[:13]
    assert shown_runs(admin_client_a, request_id=prefix) == {ids["ok"]}
    assert shown_runs(admin_client_a, min_severity=str(Severity.ERROR)) == {ids["bad"]}
    assert shown_runs(admin_client_a, finished="finished") == {ids["ok"], ids["bad"]}
    assert shown_runs(admin_client_a, finished="unfinished") == {ids["running"], ids["queued"]}
    soon = local_input(timedelta(minutes=5))
    past = local_input(-timedelta(minutes=5))
    assert shown_runs(admin_client_a, since=soon) == set()
    assert shown_runs(admin_client_a, since=past, until=soon) == set(ids.values())
    assert shown_runs(admin_client_a, until=past) == set()


def test_process_log_polls_only_while_a_shown_run_is_unfinished(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    runs = make_runs(tenant_a)
    url = reverse("adminaccess:process_log")
    page = admin_client_a.get(url).content.decode()
    assert 'hx-trigger="every 1s"' in page and "<html" in page
    assert "25% (3 of 12)" in page
    fragment = admin_client_a.get(url, {"finished": "unfinished"}, **HTMX).content.decode()
    assert "<html" not in fragment and 'hx-trigger="every 1s"' in fragment
    assert 'hx-get="/adminaccess/process-log/?finished=unfinished"' in fragment
    # Progress moves: the next poll shows it.
    JobRun.unscoped.filter(pk=runs["running"].pk).update(progress_done=6)
    fragment = admin_client_a.get(url, **HTMX).content.decode()
    assert "50% (6 of 12)" in fragment
    finished_only = admin_client_a.get(url, {"finished": "finished"}, **HTMX).content.decode()
    assert "hx-trigger" not in finished_only and 'data-polling="no"' in finished_only


def test_cancel_queued_and_running_runs(admin_client_a: Client, tenant_a: TenantWorld) -> None:
    runs = make_runs(tenant_a)
    queued_url = reverse("adminaccess:run_cancel", kwargs={"run_id": runs["queued"].pk})
    assert admin_client_a.get(queued_url).status_code == 405
    admin_client_a.post(queued_url)
    assert run_of(tenant_a, runs["queued"].pk).status == JobRun.Status.CANCELLED

    running_url = reverse("adminaccess:run_cancel", kwargs={"run_id": runs["running"].pk})
    fragment = admin_client_a.post(running_url, **HTMX).content.decode()
    run = run_of(tenant_a, runs["running"].pk)
    assert run.cancel_requested and run.status == JobRun.Status.RUNNING
    assert "Cancel requested by" in fragment and "next safe point" in fragment
    assert ">Cancel</button>" not in fragment  # asked once is enough

    # An ended run is not touched.
    ok_url = reverse("adminaccess:run_cancel", kwargs={"run_id": runs["ok"].pk})
    page = admin_client_a.post(ok_url, follow=True).content.decode()
    assert "already ended" in page
    assert run_of(tenant_a, runs["ok"].pk).status == JobRun.Status.FINISHED


def test_json_view_and_copy_button(admin_client_a: Client, tenant_a: TenantWorld) -> None:
    runs = make_runs(tenant_a)
    bad = runs["bad"]
    url = reverse("adminaccess:run_json", kwargs={"run_id": bad.pk})
    response = admin_client_a.get(url)
    assert response["Content-Type"] == "application/json"
    data = json.loads(response.content)
    with tenant_context(tenant_a.tenant):
        assert data == services.to_json(JobRun.objects.get(pk=bad.pk))
    assert data["status"] == "failed" and data["max_severity"] == "error"
    assert any("boom in the job" in m["text"] for m in data["messages"])
    detail = admin_client_a.get(reverse("adminaccess:run_detail", kwargs={"run_id": bad.pk}))
    body = detail.content.decode()
    assert "Copy as JSON" in body and f'data-url="{url}"' in body and f'href="{url}"' in body
    assert "boom in the job" in body and "Traceback" in body


def test_dashboard_lists_running_and_recently_failed_jobs(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    runs = make_runs(tenant_a)
    old = timezone.now() - timedelta(hours=30)
    with tenant_context(tenant_a.tenant):
        stale = services.run_now("test.side_effect", tenant_a.reader_group)
    JobRun.unscoped.filter(pk=stale.pk).update(status=JobRun.Status.FAILED, ended_at=old)
    page = admin_client_a.get(reverse("adminaccess:dashboard")).content.decode()
    block = page.split('data-testid="dashboard-jobs"', 1)[1].split("</section>", 1)[0]
    detail = "/adminaccess/process-log/{}/"
    assert detail.format(runs["running"].pk) in block
    assert detail.format(runs["bad"].pk) in block
    assert detail.format(stale.pk) not in block  # failed more than 24 hours ago
    assert detail.format(runs["ok"].pk) not in block


def test_reader_and_anonymous_are_kept_out(reader_client_a: Client, tenant_a: TenantWorld) -> None:
    for name in ("schedules", "process_log", "file_import"):
        assert reader_client_a.get(reverse(f"adminaccess:{name}")).status_code == 403
        anonymous = Client().get(reverse(f"adminaccess:{name}"))
        assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


# --- File Import ----------------------------------------------------------------------


def test_path_outside_the_import_roots_is_refused(
    admin_client_a: Client, tenant_a: TenantWorld, import_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.mbox"
    outside.write_bytes(mbox_bytes(1))
    sneaky = import_root / "link.mbox"
    sneaky.symlink_to(outside)
    url = reverse("adminaccess:import_create")
    for path in (str(outside), f"{import_root}/../elsewhere.mbox", str(sneaky)):
        response = admin_client_a.post(
            url, {"name": "x", "mailbox": tenant_a.mailbox.pk, "path": path}
        )
        assert response.status_code == 200
        [error] = field_errors(response, "path")
        assert "outside the allowed import folders" in error and str(import_root) in error
    missing = admin_client_a.post(
        url, {"name": "x", "mailbox": tenant_a.mailbox.pk, "path": str(import_root / "no.mbox")}
    )
    assert "does not exist" in field_errors(missing, "path")[0]
    with tenant_context(tenant_a.tenant):
        assert not ImportConfiguration.objects.exists()

    inside = import_root / "ok.mbox"
    inside.write_bytes(mbox_bytes(1))
    response = admin_client_a.post(
        url, {"name": "Good", "mailbox": tenant_a.mailbox.pk, "path": str(inside)}
    )
    assert response.status_code == 302
    with tenant_context(tenant_a.tenant):
        assert ImportConfiguration.objects.get().path == str(inside)


def test_another_tenants_mailbox_is_no_choice(
    admin_client_a: Client, tenant_a: TenantWorld, tenant_b: TenantWorld, mbox: Path
) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:import_create"),
        {"name": "x", "mailbox": tenant_b.mailbox.pk, "path": str(mbox)},
    )
    assert response.status_code == 200 and field_errors(response, "mailbox")


def test_upload_creates_a_configuration(
    admin_client_a: Client, tenant_a: TenantWorld, import_root: Path, settings: Settings
) -> None:
    upload = SimpleUploadedFile("../My Mail (2024).mbox", mbox_bytes(3))
    response = admin_client_a.post(
        reverse("adminaccess:import_upload"),
        {"name": "", "mailbox": tenant_a.mailbox.pk, "file": upload},
    )
    assert response.status_code == 302
    with tenant_context(tenant_a.tenant):
        config = ImportConfiguration.objects.get()
    path = Path(config.path)
    assert path.parent.parent == import_root / "uploads"
    assert path.name == "My_Mail_2024.mbox" and config.name == "My_Mail_2024.mbox"
    assert path.read_bytes() == mbox_bytes(3) and config.uploaded
    # It runs like any configuration.
    with tenant_context(tenant_a.tenant):
        run = services.run_now(FILE_IMPORT, config)
    assert execute_run(run.pk) == JobRun.Status.FINISHED

    settings.MAILVAULT_IMPORT_UPLOAD_MAX_BYTES = 100
    too_big = admin_client_a.post(
        reverse("adminaccess:import_upload"),
        {
            "name": "big",
            "mailbox": tenant_a.mailbox.pk,
            "file": SimpleUploadedFile("b.mbox", b"x" * 101),
        },
    )
    assert too_big.status_code == 200
    assert "larger than the limit" in field_errors(too_big, "file")[0]
    assert len(list((import_root / "uploads").iterdir())) == 1

    # Deleting an uploaded file's configuration removes the file too.
    admin_client_a.post(reverse("adminaccess:import_delete", kwargs={"config_id": config.pk}))
    assert not path.exists() and not path.parent.exists()


def test_deleting_a_configuration_deletes_its_schedules(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path
) -> None:
    config = make_config(tenant_a, mbox)
    other = make_config(tenant_a, mbox, name="Keep me")
    post_schedule(admin_client_a, dialog_url(config))
    post_schedule(admin_client_a, dialog_url(config), kind="hourly", minute="5")
    post_schedule(admin_client_a, dialog_url(other))
    delete = reverse("adminaccess:import_delete", kwargs={"config_id": config.pk})
    listing = admin_client_a.get(reverse("adminaccess:file_import")).content.decode()
    assert "Its 2 schedules will be deleted too." in listing
    confirm = admin_client_a.get(delete).content.decode()
    assert "Its 2 schedules will be deleted too." in confirm
    page = admin_client_a.post(delete, follow=True).content.decode()
    assert "and its 2 schedule(s) deleted" in page
    assert [s.config_id for s in schedules_of(tenant_a)] == [str(other.pk)]
    mbox_still_there = mbox.exists()
    assert mbox_still_there  # a server path that was not uploaded is not deleted


# --- tenants --------------------------------------------------------------------------


def test_other_tenants_ids_are_404(
    admin_client_a: Client, tenant_a: TenantWorld, tenant_b: TenantWorld, mbox: Path
) -> None:
    config_b = make_config(tenant_b, mbox, name="B secret import")
    with tenant_context(tenant_b.tenant):
        schedule_b = services.save_schedule(
            FILE_IMPORT,
            config_b,
            Recurrence(kind=Kind.HOURLY, minute=3),
            now=timezone.now(),
        )
        run_b = services.run_now(FILE_IMPORT, config_b)
    urls = [
        ("get", dialog_url(config_b)),
        ("post", dialog_url(config_b)),
        ("get", reverse("adminaccess:schedule_edit", kwargs={"schedule_id": schedule_b.pk})),
        ("post", reverse("adminaccess:schedule_run_now", kwargs={"schedule_id": schedule_b.pk})),
        ("post", reverse("adminaccess:schedule_delete", kwargs={"schedule_id": schedule_b.pk})),
        ("get", reverse("adminaccess:run_detail", kwargs={"run_id": run_b.pk})),
        ("get", reverse("adminaccess:run_json", kwargs={"run_id": run_b.pk})),
        ("post", reverse("adminaccess:run_cancel", kwargs={"run_id": run_b.pk})),
        ("get", reverse("adminaccess:import_edit", kwargs={"config_id": config_b.pk})),
        ("post", reverse("adminaccess:import_run_now", kwargs={"config_id": config_b.pk})),
        ("post", reverse("adminaccess:import_delete", kwargs={"config_id": config_b.pk})),
    ]
    for method, url in urls:
        response = getattr(admin_client_a, method)(url)
        assert response.status_code == 404, (method, url)
        assert "B secret import" not in response.content.decode()
    unknown = reverse(
        "adminaccess:schedule_new", kwargs={"process_type": "no.such", "config_id": "1"}
    )
    assert admin_client_a.get(unknown).status_code == 404
    assert Schedule.unscoped.filter(pk=schedule_b.pk).exists()
    assert JobRun.unscoped.get(pk=run_b.pk).status == JobRun.Status.QUEUED
    for page in ("schedules", "process_log", "file_import"):
        body = admin_client_a.get(reverse(f"adminaccess:{page}")).content.decode()
        assert "B secret import" not in body


def test_dialog_for_a_process_type_without_configuration(
    admin_client_a: Client, tenant_a: TenantWorld, mbox: Path
) -> None:
    def url(process_type: str, config_id: str) -> str:
        return reverse(
            "adminaccess:schedule_new",
            kwargs={"process_type": process_type, "config_id": config_id},
        )

    cleanup = url("maintenance.prune_process_log", "-")
    schedules_page = admin_client_a.get(reverse("adminaccess:schedules")).content.decode()
    assert f'href="{cleanup}?next=' in schedules_page  # its clock icon
    assert admin_client_a.get(cleanup).status_code == 200
    post_schedule(admin_client_a, cleanup, at_time="03:00")
    [schedule] = schedules_of(tenant_a)
    assert (schedule.process_type, schedule.config_id) == ("maintenance.prune_process_log", "")
    # The configuration must match the type: none for this one, one for File Import.
    assert admin_client_a.get(url("maintenance.prune_process_log", "7")).status_code == 404
    assert admin_client_a.get(url(FILE_IMPORT, "-")).status_code == 404
    assert admin_client_a.get(url(FILE_IMPORT, "not-a-number")).status_code == 404
