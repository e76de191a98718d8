"""Web Access reading, isolated by tenant and by permission, at the HTTP level.

Two tenants share words in their mail. Tenant alpha's Reader owns one mailbox, reads a
second through a group share, and is granted nothing on a third ("secret"). Messages go
through the real pipeline (store, index) into temporary folders. Whatever the Reader
does — search, browse folders, open, download — the secret mailbox and the other tenant
never show; Compliance sees the whole tenant, Bcc and envelope recipients included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_django import Settings

from corpus import archive_settings
from factories import client_for
from mailvault.accounts import services as accounts
from mailvault.accounts.models import Group, User
from mailvault.accounts.roles import Role
from mailvault.archive.models import Folder, Mailbox, Message
from mailvault.archive.services import create_mailbox
from mailvault.compliance.matching import matching_ids
from mailvault.ingestion.pipeline import ingest
from mailvault.ingestion.types import IngestRequest, Target
from mailvault.search.services import search_for_user
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import provision_tenant

FILE = Message.Source.FILE


def mail(subject: str, body: str, *, to: str = "x@example.com", bcc: str = "") -> bytes:
    head = f"From: Carol <carol@partner.example>\r\nTo: {to}\r\nSubject: {subject}\r\n"
    if bcc:
        head += f"Bcc: {bcc}\r\n"
    head += "Date: Mon, 02 Sep 2024 09:00:00 +0000\r\n"
    return f"{head}\r\n{body}\r\n".encode()


@dataclass
class Alpha:
    tenant: Tenant
    reader: User
    compliance: User
    own: Mailbox
    team: Mailbox
    secret: Mailbox
    messages: dict[str, Message]  # by subject
    raws: dict[str, bytes]
    beta_message: Message
    beta_reader: User

    def ids(self, *subjects: str) -> set[int]:
        return {self.messages[s].pk for s in subjects}


def put(raw: bytes, *targets: Target, envelope: list[str] | None = None) -> Message:
    return ingest(
        IngestRequest(raw, FILE, targets=list(targets), envelope_recipients=envelope or [])
    ).message


def make_reader(tenant: Tenant, name: str, *extra_groups: Group) -> User:
    group = accounts.create_group(f"{name} readers")
    accounts.set_group_roles(group, [Role.READER])
    user, _ = accounts.create_user(
        name, tenant.name, groups=[group, *extra_groups], must_change_password=False
    )
    return user


@pytest.fixture
def alpha(db: None, settings: Settings, tmp_path: Path) -> Iterator[Alpha]:
    for name, value in archive_settings(tmp_path).items():
        setattr(settings, name, value)
    beta = provision_tenant("beta").tenant
    with tenant_context(beta):
        beta_reader = make_reader(beta, "bert")
        beta_box = create_mailbox("sales@beta", owner=beta_reader)
        beta_message = put(mail("Beta pineapple plan", "pineapple for beta"), Target(beta_box))
    tenant = provision_tenant("alpha").tenant
    with tenant_context(tenant):
        team_group = accounts.create_group("Team")
        reader = make_reader(tenant, "rita", team_group)
        officers = accounts.create_group("Officers")
        accounts.set_group_roles(officers, [Role.COMPLIANCE])
        compliance, _ = accounts.create_user(
            "olga", tenant.name, groups=[officers], must_change_password=False
        )
        own = create_mailbox("rita@alpha", owner=reader)
        team = create_mailbox("team@alpha", shared_with=[team_group])
        secret = create_mailbox("secret@alpha", owner=compliance)
        raws = {
            "Own pineapple notes": mail("Own pineapple notes", "pineapple in my box"),
            "Team pineapple sync": mail("Team pineapple sync", "pineapple for the team"),
            "Secret pineapple deal": mail(
                "Secret pineapple deal", "pineapple merger", bcc="boss@alpha"
            ),
            "Shared pineapple memo": mail("Shared pineapple memo", "pineapple everywhere"),
        }
        messages = {
            "Own pineapple notes": put(raws["Own pineapple notes"], Target(own, "Inbox/Projects")),
            "Team pineapple sync": put(raws["Team pineapple sync"], Target(team, "Inbox")),
            "Secret pineapple deal": put(
                raws["Secret pineapple deal"],
                Target(secret, "Deals"),
                envelope=["hidden-auditor@alpha"],
            ),
            # The same bytes in the secret mailbox and in the Reader's own: readable.
            "Shared pineapple memo": put(
                raws["Shared pineapple memo"], Target(secret, "Deals"), Target(own, "Inbox")
            ),
        }
        yield Alpha(
            tenant,
            reader,
            compliance,
            own,
            team,
            secret,
            messages,
            raws,
            beta_message,
            beta_reader,
        )


def search_ids(client: Client, query: str) -> set[int]:
    response = client.get("/webaccess/search/", {"q": query})
    assert response.status_code == 200, response.content[:500]
    return {message.pk for _hit, message in response.context["hits"]}


READER_SEES = ("Own pineapple notes", "Team pineapple sync", "Shared pineapple memo")


def test_reader_search_never_shows_an_ungranted_mailbox_or_another_tenant(alpha: Alpha) -> None:
    client = client_for(alpha.reader)
    assert search_ids(client, "pineapple") == alpha.ids(*READER_SEES)
    assert search_ids(client, "pine*") == alpha.ids(*READER_SEES)
    assert search_ids(client, "subject:(secret OR beta)") == set()
    assert search_ids(client, "folder:Deals") == alpha.ids("Shared pineapple memo")
    assert search_ids(client, "from:*@partner.example") == alpha.ids(*READER_SEES)
    page = client.get("/webaccess/search/", {"q": "pineapple"}).content.decode()
    assert "Secret pineapple deal" not in page
    assert "secret@alpha" not in page
    assert "Beta pineapple plan" not in page
    # Bcc (and envelope recipients) are for Compliance: a Reader's bcc: search is refused.
    refused = client.get("/webaccess/search/", {"q": "bcc:boss@alpha"})
    assert refused.status_code == 400
    assert refused.context["hits"] == []
    assert "needs the Compliance role" in refused.content.decode()


def test_reader_folder_browsing_shows_only_granted_mailboxes(alpha: Alpha) -> None:
    client = client_for(alpha.reader)
    home = client.get("/webaccess/")
    assert home.status_code == 200
    assert [mb for mb, _tree in home.context["trees"]] == [alpha.own, alpha.team]
    assert "secret@alpha" not in home.content.decode()

    projects = Folder.objects.get(mailbox=alpha.own, path="Inbox/Projects")
    listing = client.get("/webaccess/", {"mailbox": alpha.own.pk, "folder": projects.pk})
    assert listing.status_code == 200
    assert [m.pk for m in listing.context["page"]] == [alpha.messages["Own pineapple notes"].pk]
    whole = client.get("/webaccess/", {"mailbox": alpha.own.pk})
    assert {m.pk for m in whole.context["page"]} == alpha.ids(
        "Own pineapple notes", "Shared pineapple memo"
    )

    deals = Folder.objects.get(mailbox=alpha.secret, path="Deals")
    assert client.get("/webaccess/", {"mailbox": alpha.secret.pk}).status_code == 404
    assert (
        client.get("/webaccess/", {"mailbox": alpha.own.pk, "folder": deals.pk}).status_code == 404
    )
    with tenant_context(Tenant.objects.get(name="beta")):
        beta_box = Mailbox.objects.get()
    assert client.get("/webaccess/", {"mailbox": beta_box.pk}).status_code == 404


@pytest.mark.parametrize("suffix", ["", "body/", "download/", "attachments/0/"])
def test_reader_gets_404_for_messages_it_may_not_read(alpha: Alpha, suffix: str) -> None:
    client = client_for(alpha.reader)
    for message in (alpha.messages["Secret pineapple deal"], alpha.beta_message):
        response = client.get(f"/webaccess/messages/{message.pk}/{suffix}")
        assert response.status_code == 404
        assert b"pineapple" not in response.content


def test_reader_opens_and_downloads_a_granted_message(alpha: Alpha) -> None:
    client = client_for(alpha.reader)
    for subject in READER_SEES:
        message = alpha.messages[subject]
        page = client.get(f"/webaccess/messages/{message.pk}/")
        assert page.status_code == 200
        assert subject in page.content.decode()
        body = client.get(f"/webaccess/messages/{message.pk}/body/")
        assert body.status_code == 200
        assert "default-src 'none'" in body["Content-Security-Policy"]
        download = client.get(f"/webaccess/messages/{message.pk}/download/")
        assert download.content == alpha.raws[subject]
        assert hashlib.sha256(download.content).hexdigest() == message.sha256


def test_compliance_sees_the_whole_tenant_and_only_it(alpha: Alpha) -> None:
    client = client_for(alpha.compliance)
    assert search_ids(client, "pineapple") == alpha.ids(*alpha.messages)
    assert search_ids(client, "bcc:boss@alpha") == alpha.ids("Secret pineapple deal")
    assert search_ids(client, "bcc:hidden-auditor@alpha") == alpha.ids("Secret pineapple deal")
    assert search_ids(client, "subject:beta") == set()
    secret = alpha.messages["Secret pineapple deal"]
    download = client.get(f"/webaccess/messages/{secret.pk}/download/")
    assert download.content == alpha.raws["Secret pineapple deal"]
    assert client.get(f"/webaccess/messages/{alpha.beta_message.pk}/").status_code == 404


def test_the_other_tenants_reader_sees_only_its_own(alpha: Alpha) -> None:
    client = client_for(alpha.beta_reader)
    assert search_ids(client, "pineapple") == {alpha.beta_message.pk}
    for message in alpha.messages.values():
        assert client.get(f"/webaccess/messages/{message.pk}/").status_code == 404


# --- property: whatever the grants, search_for_user stays within them ---------------------

GRANTS = st.lists(
    st.tuples(st.booleans(), st.booleans()),  # (owned by the reader, shared with its group)
    min_size=3,
    max_size=3,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(grants=GRANTS, query=st.sampled_from(["pineapple", "pine*", "", "-merger", "subject:p*"]))
def test_search_for_user_stays_within_the_grants(
    alpha: Alpha, grants: list[tuple[bool, bool]], query: str
) -> None:
    team_group = Group.objects.get(name="Team")
    boxes = [alpha.own, alpha.team, alpha.secret]
    for mailbox, (owned, shared) in zip(boxes, grants, strict=True):
        mailbox.owner = alpha.reader if owned else alpha.compliance
        mailbox.save(update_fields=["owner"])
        mailbox.shared_with.set([team_group] if shared else [])
    granted = [mb for mb, (owned, shared) in zip(boxes, grants, strict=True) if owned or shared]
    allowed = set(
        Message.objects.filter(placements__mailbox__in=granted).values_list("pk", flat=True)
    )
    found = {h.message_id for h in search_for_user(alpha.reader, query, limit=100).hits}
    assert found <= allowed
    if query in ("pineapple", "pine*", ""):
        assert found == allowed  # every message mentions pineapple


def test_phrases_over_the_body_are_checked_against_the_archived_text(alpha: Alpha) -> None:
    """The index keeps the body without positions; the phrase is checked against the
    message text read back from the store (search._phrases, ingestion.body_texts)."""
    client = client_for(alpha.reader)
    assert search_ids(client, "pineapple team") == alpha.ids("Team pineapple sync")
    assert search_ids(client, '"pineapple for the team"') == alpha.ids("Team pineapple sync")
    assert search_ids(client, '"team the for pineapple"') == set()
    # beta's "pineapple for beta" has the phrase too, in another tenant
    assert search_ids(client, '"pineapple for"') == alpha.ids("Team pineapple sync")
    assert search_ids(client, 'pineapple NOT "pineapple in"') == alpha.ids(
        "Team pineapple sync", "Shared pineapple memo"
    )
    with tenant_context(alpha.tenant):
        assert matching_ids('"pineapple merger"') == alpha.ids("Secret pineapple deal")
        assert matching_ids('"merger pineapple"') == set()
