"""Byte-exact round trip of every corpus message through the real import pipeline.

All of SpamAssassin, the Enron subset, tricky-mime and every month of R-help (172,090
messages) are imported with ``run_import`` (parse, deduplicate, compress, encrypt,
store, record, index) into one tenant, one mailbox per corpus. Then, for every source
message, the bytes read back from the store hash to the SHA-256 of the source bytes, and
a sample also comes back byte for byte through Web Access's download URL.

The source bytes are checked independently of the readers: a message read from a file
is that file's bytes; the messages read from an MBOX, each with its ``From `` line, make
up the whole file with no byte lost. The import takes minutes (the R-help part prints its
rate); the module is marked ``corpus`` (``-m "not corpus"`` leaves it out).
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from django.db import transaction
from django.test.utils import override_settings

from corpus import archive_settings, check_mbox_cover, iter_files, message_root
from factories import client_for
from mailvault.accounts import services as accounts
from mailvault.accounts.models import User
from mailvault.accounts.roles import Role
from mailvault.archive.models import Mailbox, Message, Placement
from mailvault.archive.services import create_mailbox
from mailvault.archive.store import store_for
from mailvault.ingestion.imports import ImportReport, resume_key_prefix, run_import
from mailvault.search import TenantIndex
from mailvault.sources.files import ImportItem, ImportProblem, iter_items
from mailvault.tenancy.context import tenant_context
from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import provision_tenant

pytestmark = [pytest.mark.corpus, pytest.mark.timeout(7200)]

# MAILVAULT_TEST_CORPORA=tricky-mime,spamassassin narrows a local run; the default is all.
CORPORA = [
    name
    for name in os.environ.get(
        "MAILVAULT_TEST_CORPORA", "spamassassin,enron-subset,tricky-mime,r-help"
    ).split(",")
    if name
]
WEB_SAMPLE = 300


@dataclass
class Source:
    """What the readers hand to the pipeline for one corpus, checked against the files."""

    root: Path
    items: dict[str, tuple[str, str]] = field(default_factory=dict)  # ref -> (folder, sha)
    problems: list[str] = field(default_factory=list)

    @property
    def shas(self) -> set[str]:
        return {sha for _, sha in self.items.values()}

    @property
    def placements(self) -> set[tuple[str, str]]:
        return set(self.items.values())


def read_source(root: Path) -> Source:
    """Every message the readers find under ``root``, each checked against the files."""
    source = Source(root)
    file_shas = {hashlib.sha256(p.read_bytes()).hexdigest() for p in iter_files(root)}
    mbox_items: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for event in iter_items(root, allowed_roots=None):
        if isinstance(event, ImportProblem):
            source.problems.append(event.source_ref)
            continue
        assert isinstance(event, ImportItem)
        assert event.source_ref not in source.items, f"two items named {event.source_ref}"
        sha = hashlib.sha256(event.raw).hexdigest()
        source.items[event.source_ref] = (event.folder_path, sha)
        kind = event.source_ref.split(":", 1)[0]
        if kind == "mbox":
            rel, offset = event.source_ref[len("mbox:") :].rsplit(":", 1)
            mbox_items[unquote(rel)].append((int(offset), event.raw))
        elif kind in ("eml", "maildir"):
            assert sha in file_shas, f"{event.source_ref}: not the bytes of a corpus file"
        else:
            assert kind == "msg", event.source_ref  # rebuilt from Outlook's format
    for rel, found in mbox_items.items():
        check_mbox_cover((root / rel).read_bytes(), found)
    return source


@dataclass
class Imported:
    tenant: Tenant
    compliance: User
    mailboxes: dict[str, Mailbox]
    sources: dict[str, Source]
    reports: dict[str, ImportReport]
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def imported(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Imported]:
    """Every corpus imported once for the module, inside a transaction rolled back at the
    end (the store and index live in a temporary folder)."""
    roots = {name: message_root(name) for name in CORPORA}  # skips when absent
    base = tmp_path_factory.mktemp("corpus-archive")
    with (
        override_settings(**archive_settings(base)),
        django_db_blocker.unblock(),
        transaction.atomic(),
    ):
        tenant = provision_tenant("corpus").tenant
        with tenant_context(tenant):
            group = accounts.create_group("Compliance officers")
            accounts.set_group_roles(group, [Role.COMPLIANCE])
            compliance, _ = accounts.create_user(
                "officer", tenant.name, groups=[group], must_change_password=False
            )
            mailboxes = {name: create_mailbox(f"{name}@{tenant.name}") for name in CORPORA}
            sources, reports, seconds = {}, {}, {}
            for name in CORPORA:
                sources[name] = read_source(roots[name])
                started = time.monotonic()
                reports[name] = run_import(mailboxes[name], [roots[name]], allowed_roots=[])
                seconds[name] = time.monotonic() - started
                count = len(sources[name].items)
                print(  # shown with -s: the rate of the full pipeline on this machine
                    f"\n{name}: {count} messages in {seconds[name]:.1f} s "
                    f"= {count / seconds[name]:.0f} msg/s"
                )
        yield Imported(tenant, compliance, mailboxes, sources, reports, seconds)
        transaction.set_rollback(True)


@pytest.fixture
def archive(db: None, imported: Imported) -> Iterator[Imported]:
    with tenant_context(imported.tenant):
        yield imported


@pytest.mark.parametrize("name", CORPORA)
def test_every_message_is_accounted_for(archive: Imported, name: str) -> None:
    """Source messages == archived + duplicates, exactly; every item is filed once."""
    source, report, mailbox = archive.sources[name], archive.reports[name], archive.mailboxes[name]
    count = len(source.items)
    assert count > 0
    assert report.failed == len(source.problems)
    assert report.skipped == 0
    assert report.filed + report.duplicates == count
    assert report.filed == len(source.placements)  # one per distinct (folder, message)
    placed = Placement.objects.filter(mailbox=mailbox)
    assert placed.count() == len(source.placements)
    assert set(placed.values_list("folder__path", "message__sha256")) == source.placements
    # Every source message is filed under its own reference (none lost, none invented)
    # but the ones whose bytes were already filed in the same folder; the resume key is
    # the reader's reference behind the import path.
    refs = set(placed.values_list("source_ref", flat=True))
    prefix = resume_key_prefix(source.root)
    first_ref: dict[tuple[str, str], str] = {}
    for ref, key in source.items.items():
        first_ref.setdefault(key, prefix + ref)
    assert refs == set(first_ref.values())


def test_messages_are_stored_once_across_the_corpus(archive: Imported) -> None:
    all_shas = set().union(*(s.shas for s in archive.sources.values()))
    total = sum(len(s.items) for s in archive.sources.values())
    archived = sum(r.archived for r in archive.reports.values())
    assert archived == len(all_shas)
    duplicates = total - archived
    assert total == archived + duplicates
    assert set(Message.objects.values_list("sha256", flat=True)) == all_shas
    with store_for(archive.tenant) as store:
        assert store.message_count() == len(all_shas)
    counts = Counter(sha for s in archive.sources.values() for _, sha in s.items.values())
    assert duplicates == sum(n - 1 for n in counts.values())


def test_every_message_reads_back_byte_for_byte(archive: Imported) -> None:
    all_shas = set().union(*(s.shas for s in archive.sources.values()))
    bad = []
    with store_for(archive.tenant) as store:
        for sha in sorted(all_shas):
            if hashlib.sha256(store.get(sha)).hexdigest() != sha:
                bad.append(sha)
    assert bad == []


def test_a_sample_downloads_byte_for_byte_through_web_access(archive: Imported) -> None:
    client = client_for(archive.compliance)
    by_sha = dict(Message.objects.values_list("sha256", "pk"))
    rng = random.Random(3)
    sample: list[str] = []
    for name in CORPORA:
        shas = sorted(archive.sources[name].shas)
        sample += rng.sample(shas, min(len(shas), WEB_SAMPLE // len(CORPORA)))
    biggest = Message.objects.order_by("-size").values_list("sha256", flat=True)[:5]
    sample += list(biggest)
    for sha in sample:
        response = client.get(f"/webaccess/messages/{by_sha[sha]}/download/")
        assert response.status_code == 200
        assert response["Content-Type"] == "message/rfc822"
        assert hashlib.sha256(response.content).hexdigest() == sha


def test_malformed_mail_is_flagged_and_still_findable(archive: Imported) -> None:
    """tricky-mime: nothing lost (above); what could not be parsed is flagged, stored
    raw, and in the index like every other message."""
    tricky = Message.objects.filter(placements__mailbox=archive.mailboxes["tricky-mime"])
    assert tricky.filter(parse_problem__gt="").exists()
    flagged = list(Message.objects.filter(unparseable=True).values_list("pk", flat=True))
    index_ids = TenantIndex.open(archive.tenant.pk).message_ids()
    assert set(flagged) <= index_ids


def test_the_index_holds_every_archived_message(archive: Imported) -> None:
    index = TenantIndex.open(archive.tenant.pk)
    assert index.message_ids() == set(Message.objects.values_list("pk", flat=True))
    assert not Message.objects.filter(indexed=False).exists()


def test_importing_again_adds_nothing(archive: Imported) -> None:
    name = "tricky-mime" if "tricky-mime" in CORPORA else CORPORA[0]
    source = archive.sources[name]
    before = (Message.objects.count(), Placement.objects.count())
    report = run_import(archive.mailboxes[name], [source.root], allowed_roots=[])
    assert (report.archived, report.filed) == (0, 0)
    assert report.skipped + report.duplicates == len(source.items)
    assert (Message.objects.count(), Placement.objects.count()) == before
