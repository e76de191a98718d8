"""The chaos test's hands inside a private Mailvault installation: one long-lived Python
process (Django set up once) that reads JSON commands on stdin and answers one JSON line
each. It does what an administrator and the scheduler would do — create the tenant,
mailboxes, profiles, folder synchronizations, a legal hold and schedules, queue runs of a
schedule — and reads back runs and the archive store. The worker that executes the runs
is a separate ``mailvault worker`` process.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailvault.settings")

import django

django.setup()

from django.utils import timezone  # noqa: E402

from mailvault.accounts.models import Domain  # noqa: E402
from mailvault.accounts.services import add_domain  # noqa: E402
from mailvault.archive.models import Message  # noqa: E402
from mailvault.archive.services import create_mailbox  # noqa: E402
from mailvault.archive.store import store_for  # noqa: E402
from mailvault.compliance import holds  # noqa: E402
from mailvault.compliance.models_holds import LegalHold  # noqa: E402
from mailvault.jobs import services as jobs  # noqa: E402
from mailvault.jobs.models import JobMessage, JobRun, Schedule  # noqa: E402
from mailvault.jobs.recurrence import Kind, Recurrence  # noqa: E402
from mailvault.sources.foldersync import services as foldersync  # noqa: E402
from mailvault.sources.models_foldersync import FolderSynchronization  # noqa: E402
from mailvault.sources.models_profiles import ArchivingProfile  # noqa: E402
from mailvault.sources.profiles.services import PROCESS_TYPE as PROFILE_TYPE  # noqa: E402
from mailvault.tenancy.context import tenant_context  # noqa: E402
from mailvault.tenancy.models import Tenant  # noqa: E402
from mailvault.tenancy.provisioning import provision_tenant  # noqa: E402

TENANT = "chaos"


def setup(domain: str, entra_tenant_id: str, mailboxes: list[dict[str, str]], hold: str) -> Any:
    """``mailboxes``: {"address", "kind": "profile" | "folder_sync"}; ``hold``: the query
    of a legal hold. Every configuration gets a daily schedule (not due during the test)."""
    tenant = provision_tenant(TENANT).tenant
    configs = []
    with tenant_context(tenant):
        add_domain(domain)
        Domain.objects.filter(name=domain).update(verified=True)
        holds.create_hold(
            name="Chaos case",
            kind=LegalHold.Kind.QUERY,
            reason="chaos test",
            actor=None,
            query=hold,
        )
        for n, item in enumerate(mailboxes):
            mailbox = create_mailbox(item["address"])
            config: ArchivingProfile | FolderSynchronization
            if item["kind"] == "profile":
                process_type = PROFILE_TYPE
                config = ArchivingProfile.objects.create(
                    name=f"Exchange Online {n}",
                    type=ArchivingProfile.Type.M365,
                    mode=ArchivingProfile.Mode.SINGLE,
                    address=item["address"],
                    mailbox=mailbox,
                    entra_tenant_id=entra_tenant_id,
                    delete_in_source=True,
                )
            else:
                process_type = foldersync.PROCESS_TYPE
                config = foldersync.save_folder_sync(
                    foldersync.FolderSyncData(
                        name=f"Folders {n}",
                        mode=FolderSynchronization.Mode.SINGLE,
                        address=item["address"],
                        delete_in_mailbox=FolderSynchronization.Delete.ARCHIVED,
                    )
                )
                config.entra_tenant_id = entra_tenant_id
                config.save()
            schedule = jobs.save_schedule(
                process_type,
                config,
                Recurrence(Kind.DAILY, at_time="03:00"),
                now=timezone.now(),
            )
            configs.append(
                {
                    "address": item["address"],
                    "kind": item["kind"],
                    "mailbox_id": mailbox.pk,
                    "config_id": str(config.pk),
                    "process_type": process_type,
                    "schedule_id": schedule.pk,
                }
            )
    return {"tenant_id": tenant.pk, "configs": configs}


def _tenant() -> Tenant:
    return Tenant.objects.get(name=TENANT)


def queue(schedule_id: int) -> Any:
    """What "run now" on the schedule does (the scheduler's own path into the queue)."""
    with tenant_context(_tenant()):
        schedule = Schedule.objects.get(pk=schedule_id)
        try:
            run = jobs.run_schedule_now(schedule, triggered_by="chaos test")
        except jobs.AlreadyRunning as exc:
            return {"run_id": exc.run.pk, "already": True}
        return {"run_id": run.pk, "already": False}


def runs() -> Any:
    with tenant_context(_tenant()):
        found = []
        for run in JobRun.objects.order_by("pk"):
            messages = list(
                JobMessage.objects.filter(run=run).order_by("pk").values_list("severity", "text")
            )
            found.append(
                {
                    "id": run.pk,
                    "process_type": run.process_type,
                    "config_id": run.config_id,
                    "status": run.status,
                    "messages": messages,
                }
            )
        return found


def verify() -> Any:
    """Read every archived message back from the store: does it hash to its SHA-256?"""
    tenant = _tenant()
    with tenant_context(tenant):
        shas = list(Message.objects.values_list("sha256", flat=True))
        bad = []
        with store_for(tenant) as store:
            for sha in shas:
                if not store.has(sha) or hashlib.sha256(store.get(sha)).hexdigest() != sha:
                    bad.append(sha)
        return {"checked": len(shas), "bad": bad}


COMMANDS = {"setup": setup, "queue": queue, "runs": runs, "verify": verify}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            result = COMMANDS[request.pop("cmd")](**request)
            answer = {"ok": True, "result": result}
        except Exception:
            answer = {"ok": False, "error": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
