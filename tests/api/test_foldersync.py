"""Folder synchronizations through the API: create (the directory service's tenant id is
taken over), refusals with the field named, change, run now (202 with the job id), a
schedule pointing at one, delete (refused while it runs; its schedules go with it), and
another tenant's synchronization is a 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from factories import TenantWorld
from mailvault.jobs.models import JobRun, Schedule
from mailvault.sources.foldersync.services import PROCESS_TYPE
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.tenancy.context import tenant_context

pytestmark = pytest.mark.django_db
JSON = "application/json"
LIST = "/api/v1/folder-synchronizations/"
TENANT_ID = "7f5b7c7e-3f4a-4a43-9d0b-2b7f3c1f9a10"


def _entra_service(api: Client, name: str = "Contoso", tenant_id: str = TENANT_ID) -> int:
    made = api.post(
        "/api/v1/directory-services/",
        data={"name": name, "kind": "entra", "entra_tenant_id": tenant_id},
        content_type=JSON,
    )
    assert made.status_code == 201, made.content
    return int(made.json()["id"])


def _create(api: Client, **data: Any) -> Any:
    return api.post(LIST, data=data, content_type=JSON)


def test_create_read_update_list(admin_api_a: Client, tenant_a: TenantWorld) -> None:
    service = _entra_service(admin_api_a)
    made = _create(
        admin_api_a, name="All mailboxes", type="m365", mode="multiple", directory_service=service
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert (body["type"], body["mode"], body["directory_service"]) == ("m365", "multiple", service)
    assert body["entra_tenant_id"] == TENANT_ID  # taken over from the directory service
    assert (body["delete_in_mailbox"], body["synchronize_users"]) == ("never", False)
    with tenant_context(tenant_a.tenant):
        stored = FolderSynchronization.objects.get(pk=body["id"])
    assert stored.name == "All mailboxes" and stored.directory_service_id == service

    url = f"{LIST}{body['id']}/"
    assert admin_api_a.get(url).json() == body
    changed = admin_api_a.patch(
        url,
        data={
            "delete_in_mailbox": "older",
            "delete_older_than_days": 30,
            "synchronize_users": True,
        },
        content_type=JSON,
    )
    assert changed.status_code == 200, changed.content
    after = changed.json()
    assert (after["delete_in_mailbox"], after["delete_older_than_days"]) == ("older", 30)
    assert after["synchronize_users"] is True
    assert (after["name"], after["directory_service"]) == ("All mailboxes", service)  # kept

    single = _create(
        admin_api_a,
        name="One mailbox",
        type="m365",
        mode="single",
        address=tenant_a.mailbox.primary_address.upper(),
    )
    assert single.status_code == 201, single.content
    assert single.json()["mailbox"] == tenant_a.mailbox.pk
    assert single.json()["address"] == tenant_a.mailbox.primary_address.casefold()

    listed = admin_api_a.get(LIST).json()
    assert [item["name"] for item in listed["results"]] == ["All mailboxes", "One mailbox"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": " ", "type": "m365", "mode": "multiple"}, "name"),
        ({"name": "No service", "type": "m365", "mode": "multiple"}, "directory_service"),
        ({"name": "No address", "type": "m365", "mode": "single"}, "address"),
        (
            {"name": "Unknown", "type": "m365", "mode": "single", "address": "x@nowhere.example"},
            "address",
        ),
        ({"name": "Bad type", "type": "pop3", "mode": "single"}, "type"),
        (
            {"name": "Bad days", "type": "m365", "mode": "single", "delete_older_than_days": 0},
            "delete_older_than_days",
        ),
    ],
)
def test_create_refusals_name_the_field(
    admin_api_a: Client, tenant_a: TenantWorld, data: dict[str, Any], field: str
) -> None:
    refused = _create(admin_api_a, **data)
    assert refused.status_code == 400, refused.content
    assert field in refused.json()["error"]["details"], refused.json()
    with tenant_context(tenant_a.tenant):
        assert not FolderSynchronization.objects.exists()


def test_update_refusals_keep_the_synchronization(admin_api_a: Client) -> None:
    service = _entra_service(admin_api_a)
    body = _create(
        admin_api_a, name="Folders", type="m365", mode="multiple", directory_service=service
    ).json()
    _create(admin_api_a, name="Other", type="m365", mode="multiple", directory_service=service)
    url = f"{LIST}{body['id']}/"
    for data, field in (
        ({"type": "imap"}, "type"),
        ({"name": "Other"}, "name"),
        ({"delete_in_mailbox": "older"}, "delete_older_than_days"),
        ({"directory_service": None}, "directory_service"),
    ):
        refused = admin_api_a.patch(url, data=data, content_type=JSON)
        assert refused.status_code == 400, (data, refused.content)
        assert field in refused.json()["error"]["details"], refused.json()
    assert admin_api_a.get(url).json() == body


def test_run_now_schedule_and_delete(admin_api_a: Client, tenant_a: TenantWorld) -> None:
    service = _entra_service(admin_api_a)
    body = _create(
        admin_api_a, name="Folders", type="m365", mode="multiple", directory_service=service
    ).json()
    url = f"{LIST}{body['id']}/"

    # A schedule made through the API points at the folder synchronization.
    schedule = admin_api_a.post(
        "/api/v1/schedules/",
        data={
            "process_type": PROCESS_TYPE,
            "config_id": str(body["id"]),
            "kind": "every_n_minutes",
            "interval_minutes": 15,
        },
        content_type=JSON,
    )
    assert schedule.status_code == 201, schedule.content
    assert schedule.json()["config_id"] == str(body["id"])
    assert schedule.json()["process_type"] == PROCESS_TYPE
    assert schedule.json()["description"] == "Every 15 minutes"

    run = admin_api_a.post(url + "run/")
    assert run.status_code == 202, run.content
    job = run.json()
    assert run["Location"] == f"/api/v1/jobs/{job['id']}/"
    assert (job["status"], job["process_type"]) == ("queued", PROCESS_TYPE)
    with tenant_context(tenant_a.tenant):
        stored = JobRun.objects.get(pk=job["id"])
    assert (stored.process_type, stored.config_id) == (PROCESS_TYPE, str(body["id"]))
    again = admin_api_a.post(url + "run/")
    assert again.status_code == 409
    assert again.json()["error"]["details"]["job"] == str(job["id"])

    # Not while it runs; after the cancel it goes, with its schedule.
    assert admin_api_a.delete(url).status_code == 400
    assert admin_api_a.post(f"/api/v1/jobs/{job['id']}/cancel/").json()["status"] == "cancelled"
    assert admin_api_a.delete(url).status_code == 204
    assert admin_api_a.get(url).status_code == 404
    with tenant_context(tenant_a.tenant):
        assert not Schedule.objects.filter(pk=schedule.json()["id"]).exists()
        assert JobRun.objects.filter(pk=job["id"]).exists()  # the process log keeps it


def test_another_tenants_synchronization_is_not_found(
    admin_api_a: Client, admin_api_b: Client, reader_api_a: Client, tenant_a: TenantWorld
) -> None:
    service = _entra_service(admin_api_a)
    body = _create(
        admin_api_a, name="Folders", type="m365", mode="multiple", directory_service=service
    ).json()
    url = f"{LIST}{body['id']}/"
    assert admin_api_b.get(url).status_code == 404
    assert admin_api_b.patch(url, data={"name": "Mine"}, content_type=JSON).status_code == 404
    assert admin_api_b.post(url + "run/").status_code == 404
    assert admin_api_b.delete(url).status_code == 404
    assert admin_api_b.get(LIST).json()["results"] == []
    # B cannot use A's directory service, nor schedule A's synchronization.
    foreign = _create(
        admin_api_b, name="Stolen", type="m365", mode="multiple", directory_service=service
    )
    assert foreign.status_code == 400 and "directory_service" in foreign.json()["error"]["details"]
    schedule = admin_api_b.post(
        "/api/v1/schedules/",
        data={
            "process_type": PROCESS_TYPE,
            "config_id": str(body["id"]),
            "kind": "hourly",
            "minute": 5,
        },
        content_type=JSON,
    )
    assert schedule.status_code == 400 and "config_id" in schedule.json()["error"]["details"]
    # Readers have no say over configurations.
    assert reader_api_a.get(LIST).status_code == 403
    assert admin_api_a.get(url).json()["name"] == "Folders"
    with tenant_context(tenant_a.tenant):
        assert not JobRun.objects.exists()
