"""Exports: ZIP of EML with folders and MBOX, byte-exact round trips, the job, who may
download, expiry."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import client_for
from mailvault.archive.models import Message
from mailvault.compliance import export
from mailvault.compliance.models_export import ExportJob
from mailvault.ingestion.types import Target
from mailvault.jobs.models import JobRun
from mailvault.jobs.runner import execute_run

from .retention_world import World, base64_payload, keeper_fixture, mail  # noqa: F401


def run_job(job: ExportJob) -> ExportJob:
    run = JobRun.objects.get(config_id=str(job.pk), process_type="compliance.export")
    assert execute_run(run.pk) == JobRun.Status.FINISHED, run.messages.all()
    job.refresh_from_db()
    return job


def test_mailbox_to_zip_keeps_folders_and_bytes(keeper: World) -> None:
    raws = {
        "Inbox": mail("in inbox"),
        "Inbox/Projects": mail("project", attachment=("a.bin", base64_payload(50_000))),
        "Sent": mail("sent one"),
    }
    messages = {path: keeper.put(raw, Target(keeper.inbox, path)) for path, raw in raws.items()}
    keeper.put(mail("elsewhere"), Target(keeper.other, "Inbox"))
    job = export.request_export(keeper.officer, source="mailbox", fmt="zip", mailbox=keeper.inbox)
    job = run_job(job)
    assert job.status == ExportJob.Status.READY and job.message_count == 3
    with zipfile.ZipFile(export.file_path(job)) as zf:
        names = sorted(zf.namelist())
        assert len(names) == 3
        for path, raw in raws.items():
            (name,) = [n for n in names if n.startswith(f"{path}/{messages[path].pk}-")]
            assert zf.read(name) == raw


def test_search_to_mbox_round_trip(keeper: World) -> None:
    tricky = (
        b"From: a@b.example\r\nSubject: quoting\r\n\r\nFrom here on\r\n>From quoted\r\n"
        b">>From twice\r\nFrom"
    )  # no final newline
    plain = mail("quoting plain")
    a = keeper.put(tricky)
    b = keeper.put(plain, Target(keeper.other, "Archive"))
    job = run_job(
        export.request_export(keeper.officer, source="search", fmt="mbox", query="quoting")
    )
    assert job.message_count == 2
    with open(export.file_path(job), "rb") as handle:
        got = list(export.read_mbox(handle))
    assert sorted(got) == sorted([tricky, plain])
    assert {a.pk, b.pk} == set(Message.objects.values_list("pk", flat=True)) & {a.pk, b.pk}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bodies=st.lists(
        st.lists(
            st.sampled_from(
                [b"From ", b">From ", b">>", b"From", b"\n", b"\r\n", b"x", b"F", b">", b" "]
            ),
            max_size=30,
        ).map(b"".join),
        min_size=1,
        max_size=4,
    ),
    piece=st.integers(min_value=1, max_value=7),
)
def test_property_mbox_round_trip_is_byte_exact(bodies: list[bytes], piece: int) -> None:
    out = io.BytesIO()
    for body in bodies:
        # The writer's own quoting over arbitrary piece boundaries.
        quoter = export._Quoter()
        out.write(export._from_line(not body.endswith(b"\n")))
        for start in range(0, len(body), piece):
            out.write(quoter.feed(body[start : start + piece]))
        out.write(quoter.finish())
        out.write(b"\n" if body.endswith(b"\n") else b"\n\n")
    out.seek(0)
    assert list(export.read_mbox(out)) == bodies


def test_only_the_requester_downloads_until_expiry(keeper: World) -> None:
    keeper.put(mail("download me"))
    job = run_job(
        export.request_export(keeper.officer, source="mailbox", fmt="zip", mailbox=keeper.inbox)
    )
    url = f"/webaccess/compliance/exports/{job.pk}/download/"
    mine = client_for(keeper.officer)
    response = mine.get(url)
    assert response.status_code == 200
    data = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert client_for(keeper.second_officer).get(url).status_code == 404
    assert client_for(keeper.reader).get(url).status_code == 403
    ExportJob.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert export.expire_exports() == 1
    assert not export.file_path(job).exists()
    gone = mine.get(url)
    assert gone.status_code == 302 and gone["Location"] == "/webaccess/compliance/exports/"


def test_folder_export_through_the_page(keeper: World) -> None:
    from mailvault.archive.models import Folder

    inside = keeper.put(mail("in the folder"), Target(keeper.inbox, "Inbox/Legal"))
    keeper.put(mail("outside"), Target(keeper.inbox, "Inbox"))
    folder = Folder.objects.get(mailbox=keeper.inbox, path="Inbox/Legal")
    officer = client_for(keeper.officer)
    response = officer.post(
        "/webaccess/compliance/exports/",
        {"source": "folder", "format": "mbox", "folder": folder.pk},
    )
    assert response.status_code == 302
    job = run_job(ExportJob.objects.get(requested_by=keeper.officer))
    assert job.message_count == 1
    with open(export.file_path(job), "rb") as handle:
        assert list(export.read_mbox(handle)) == [mail("in the folder")]
    page = officer.get("/webaccess/compliance/exports/")
    assert f"/webaccess/compliance/exports/{job.pk}/download/" in page.content.decode()
    assert inside.pk
    # A Reader cannot export at all.
    assert client_for(keeper.reader).get("/webaccess/compliance/exports/").status_code == 403
