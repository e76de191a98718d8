"""A folder bigger than one delta page: read a page at a time (memory stays flat), a 410
in the middle of the pages starts the read again, and the profile job archives every
message exactly once, saving the delta link only after the messages are recorded."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator

import pytest

from directory.emulator import emulator
from factories import TenantWorld
from m365_emulator.testing import EmulatorHandle
from mailvault.accounts.services import add_domain
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.archive.services import create_mailbox
from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobMessage, JobRun
from mailvault.jobs.runner import execute_run
from mailvault.sources.graph import GraphClient, GraphSettings
from mailvault.sources.graph.mailbox import DELTA_PAGE_SIZE, MailboxReader
from mailvault.sources.models_graph import GraphFolderState
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles.services import PROCESS_TYPE
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db
COUNT = 2 * DELTA_PAGE_SIZE + 50


@pytest.fixture
def m365() -> Iterator[EmulatorHandle]:
    with emulator(users=5, groups=1) as handle:
        yield handle


def _raw(n: int) -> bytes:
    return (
        f"From: a@example.org\r\nSubject: big {n}\r\nMessage-ID: <big{n}@x>\r\n\r\n{n}\r\n".encode()
    )


def _big_mailbox(m365: EmulatorHandle) -> tuple[str, str, list[bytes]]:
    address = f"big{time.time_ns()}@contoso.com"
    user = m365.control("POST", "users", {"mail": address, "mailbox": True, "emptyMailbox": True})
    raws = [_raw(n) for n in range(COUNT)]
    m365.control(
        "POST",
        f"mailboxes/{user['id']}/bulk",
        {"folder": "inbox", "raw_base64": [base64.b64encode(r).decode() for r in raws]},
    )
    return str(user["id"]), address, raws


def test_a_410_between_pages_reads_the_folder_again(m365: EmulatorHandle) -> None:
    user_id, _address, raws = _big_mailbox(m365)
    with GraphClient(m365.tenant_id, GraphSettings.from_django()) as graph:
        reader = MailboxReader(graph, user_id)
        inbox = next(f for f in reader.folders(well_known=["inbox"]) if f.well_known == "inbox")
        pages = reader.change_pages(inbox.id)
        first = next(pages)
        assert len(first.added) == DELTA_PAGE_SIZE and not first.delta_link
        m365.reset_delta()  # the next page's token is stale now: 410
        rest = list(pages)
        assert rest[0].restarted and all(p.resynced for p in rest)
        assert rest[-1].delta_link and not any(p.delta_link for p in rest[:-1])
        assert len({r.id for p in rest for r in p.added}) == COUNT
        fetched = [raw for _id, raw, _why in reader.mime_many(r.id for r in rest[0].added[:3])]
        assert len(fetched) == 3 and all(raw in raws for raw in fetched)


def test_the_job_archives_a_big_folder_exactly_once(tenant_a: TenantWorld, m365: EmulatorHandle):
    user_id, address, raws = _big_mailbox(m365)
    with tenant_context(tenant_a.tenant):
        add_domain("contoso.com")
        mailbox = create_mailbox(address)
        profile = ArchivingProfile.objects.create(
            name="Big folder",
            type=ArchivingProfile.Type.M365,
            mode=ArchivingProfile.Mode.SINGLE,
            address=address,
            mailbox=mailbox,
            entra_tenant_id=m365.tenant_id,
        )

    def run() -> str:
        with tenant_context(tenant_a.tenant):
            queued = jobs.run_now(PROCESS_TYPE, profile)
        execute_run(queued.pk)
        done = JobRun.unscoped.get(pk=queued.pk)
        log = "\n".join(JobMessage.unscoped.filter(run=done).values_list("text", flat=True))
        assert done.status == JobRun.Status.FINISHED, log
        return log

    first = run()
    assert f"{COUNT} messages fetched: {COUNT} filed" in first
    with tenant_context(tenant_a.tenant):
        box = Mailbox.objects.get(pk=mailbox.pk)
        assert Placement.objects.filter(mailbox=box).count() == COUNT
        archived = set(
            Message.objects.filter(placements__mailbox=box).values_list("sha256", flat=True)
        )
        assert archived == {hashlib.sha256(r).hexdigest() for r in raws}
        inbox_state = GraphFolderState.objects.get(profile=profile, folder_path="Inbox")
        assert inbox_state.delta_link and inbox_state.message_count == COUNT

    assert "0 messages fetched" in run()  # the saved delta link: nothing new
    m365.control(
        "POST",
        f"mailboxes/{user_id}/bulk",
        {"folder": "inbox", "raw_base64": [base64.b64encode(_raw(COUNT)).decode()]},
    )
    assert "1 messages fetched: 1 filed" in run()
    with tenant_context(tenant_a.tenant):
        assert Placement.objects.filter(mailbox=mailbox).count() == COUNT + 1
