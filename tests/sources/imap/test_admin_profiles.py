"""Admin Access > Archiving Profiles: create, run now, messages arrive; type is fixed;
deleting the profile takes its schedule along."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from factories import TenantWorld
from mailvault.accounts.secrets import Secret, create_secret
from mailvault.archive.models import Placement
from mailvault.jobs.models import JobRun, Schedule
from mailvault.jobs.runner import execute_run
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.tenancy.context import tenant_context
from sources.profile_helpers import Account

pytestmark = pytest.mark.django_db


def test_create_run_now_and_delete_with_schedule(
    admin_client_a: Client, tenant_a: TenantWorld, account: Account
) -> None:
    account.append("INBOX", "via the web")
    with tenant_context(tenant_a.tenant):
        secret = create_secret(
            "web cred", Secret.Kind.BASIC, username=account.user, password=account.password
        )
    form = {
        "name": "Carol's IMAP",
        "type": "imap",
        "mode": "single",
        "host": "127.0.0.1",
        "port": str(account.server.ports["imaps"]),
        "security": "tls",
        "auth_method": "password",
        "tls_verify": "on",
        "ca_certificate": account.server.ca_pem,
        "address": tenant_a.mailbox.primary_address,
        "secret": str(secret.pk),
        "skip_junk_trash": "on",
    }
    response = admin_client_a.post(reverse("adminaccess:profile_create"), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    with tenant_context(tenant_a.tenant):
        profile = ArchivingProfile.objects.get(name="Carol's IMAP")
    assert profile.mailbox_id == tenant_a.mailbox.pk  # found by its address

    listing = admin_client_a.get(reverse("adminaccess:archiving_profiles"))
    assert b"Carol&#x27;s IMAP" in listing.content
    assert reverse("adminaccess:profile_run_now", args=[profile.pk]).encode() in listing.content
    schedule_url = reverse(
        "adminaccess:schedule_new",
        kwargs={"process_type": "sources.archiving_profile", "config_id": str(profile.pk)},
    )
    assert schedule_url.encode() in listing.content  # the clock icon
    assert admin_client_a.get(schedule_url).status_code == 200

    response = admin_client_a.post(reverse("adminaccess:profile_run_now", args=[profile.pk]))
    assert response.status_code == 302
    with tenant_context(tenant_a.tenant):
        run = JobRun.objects.get(config_id=str(profile.pk), config_type="sources.archivingprofile")
    assert execute_run(run.pk) == JobRun.Status.FINISHED
    with tenant_context(tenant_a.tenant):
        subjects = list(
            Placement.objects.filter(
                mailbox=tenant_a.mailbox, source_ref__startswith="imap:"
            ).values_list("message__subject", flat=True)
        )
    assert subjects == ["via the web"]

    # The type cannot change: the field is disabled and the posted value ignored.
    edit = admin_client_a.post(
        reverse("adminaccess:profile_edit", args=[profile.pk]), {**form, "type": "pop3"}
    )
    assert edit.status_code == 302
    with tenant_context(tenant_a.tenant):
        profile.refresh_from_db()
        assert profile.type == ArchivingProfile.Type.IMAP
        Schedule.objects.create(
            process_type="sources.archiving_profile",
            config_type="sources.archivingprofile",
            config_id=str(profile.pk),
            kind="once",
            time_zone="UTC",
        )
    admin_client_a.post(reverse("adminaccess:profile_delete", args=[profile.pk]))
    with tenant_context(tenant_a.tenant):
        assert not ArchivingProfile.objects.filter(pk=profile.pk).exists()
        assert not Schedule.objects.filter(config_id=str(profile.pk)).exists()
        # The archived messages stay.
        assert Placement.objects.filter(source_ref__startswith="imap:").count() == 1


def test_pop3_multiple_mailboxes_is_refused_by_the_form(admin_client_a: Client) -> None:
    response = admin_client_a.post(
        reverse("adminaccess:profile_create"),
        {
            "name": "pop many",
            "type": "pop3",
            "mode": "multiple",
            "security": "tls",
            "auth_method": "password",
        },
    )
    assert response.status_code == 200
    assert b"POP3 archives single mailboxes only." in response.content


def test_multiple_mailboxes_retests_the_directory_and_keeps_it_in_use(
    admin_client_a: Client, tenant_a: TenantWorld
) -> None:
    from mailvault.directory import services as directory_services
    from mailvault.directory.models import DirectoryService
    from mailvault.sources.profiles import services
    from sources.dovecot_server import free_port

    with tenant_context(tenant_a.tenant):
        ldap = DirectoryService.objects.create(
            name="closed ldap",
            kind=DirectoryService.Kind.LDAP,
            ldap_host="127.0.0.1",
            ldap_port=free_port(),  # nothing listens: the re-test on save fails
            ldap_security=DirectoryService.Security.PLAIN,
        )
    response = admin_client_a.post(
        reverse("adminaccess:profile_create"),
        {
            "name": "m365 all",
            "type": "m365",
            "mode": "multiple",
            "directory_service": str(ldap.pk),
            "security": "tls",
            "auth_method": "password",
        },
    )
    assert response.status_code == 200
    assert b"The connection to the directory service closed ldap failed" in response.content
    with tenant_context(tenant_a.tenant):
        assert not ArchivingProfile.objects.filter(name="m365 all").exists()
        ArchivingProfile.objects.create(
            name="uses ldap", type="m365", mode="multiple", directory_service=ldap
        )
        assert "archiving profile uses ldap" in directory_services.usage(ldap)
        assert services.profiles_using(ldap) == ["archiving profile uses ldap"]
