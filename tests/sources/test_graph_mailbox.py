"""Reading an Exchange Online mailbox through Graph, against the Microsoft 365 emulator
over real HTTPS: the folder tree, per-folder deltas with immutable ids, byte-exact MIME,
410 resyncs, throttling and a message that vanished before it was fetched."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from directory.emulator import emulator
from m365_emulator.testing import EmulatorHandle
from mailvault.sources.graph import GraphClient, GraphError, GraphSettings
from mailvault.sources.graph.mailbox import MailboxReader


@pytest.fixture(scope="module")
def m365() -> Iterator[EmulatorHandle]:
    with emulator(users=12, groups=3) as handle:
        yield handle


@pytest.fixture
def graph(m365: EmulatorHandle) -> Iterator[GraphClient]:
    with GraphClient(m365.tenant_id, GraphSettings.from_django()) as client:
        yield client
    m365.reset_faults()
    m365.set_faults(retry_after="0.05")


def _user_with_mailbox(graph: GraphClient) -> str:
    for user in graph.items("/users", params={"$select": "id"}):
        try:
            graph.get(f"/users/{user['id']}/mailboxSettings")
        except GraphError:
            continue
        return str(user["id"])
    raise AssertionError("the emulated tenant has no user with a mailbox")


def _deliver(m365: EmulatorHandle, user_id: str, raw: bytes, folder: str = "inbox") -> str:
    import base64

    answer = m365.control(
        "POST",
        f"mailboxes/{user_id}/messages",
        {"raw_base64": base64.b64encode(raw).decode(), "folder": folder},
    )
    return str(answer["immutableId"])


def test_folders_are_the_tree_without_search_folders(graph: GraphClient) -> None:
    reader = MailboxReader(graph, _user_with_mailbox(graph))
    folders = reader.folders(well_known=["inbox", "sentitems", "junkemail"])
    paths = {f.path for f in folders}
    assert "Inbox" in paths and "Sent Items" in paths
    assert {f.well_known for f in folders} >= {"inbox", "sentitems"}
    by_id = {f.id: f for f in folders}
    for folder in folders:  # every child's path extends its parent's
        if folder.parent_id:
            assert folder.path.startswith(by_id[folder.parent_id].path + "/")
    assert len(by_id) == len(folders)


def test_delta_then_only_the_new_message_byte_exact(graph: GraphClient, m365: EmulatorHandle):
    user_id = _user_with_mailbox(graph)
    reader = MailboxReader(graph, user_id)
    inbox = next(f for f in reader.folders(well_known=["inbox"]) if f.well_known == "inbox")
    first = reader.changes(inbox.id)
    assert first.resynced  # a first read is a full read
    assert len(first.added) == inbox.total and first.delta_link
    fetched = list(reader.mime_many(ref.id for ref in first.added))
    assert all(data is not None for _id, data, _why in fetched)

    raw = (
        b"From: Dora <dora@example.org>\r\nTo: someone@example.org\r\n"
        b"Subject: delta check \xc3\xa4\r\nMessage-ID: <delta-check@example.org>\r\n\r\n"
        b"Body line\r\n.leading dot\r\n"
    )
    immutable_id = _deliver(m365, user_id, raw)
    second = reader.changes(inbox.id, first.delta_link)
    assert not second.resynced
    assert [ref.id for ref in second.added] == [immutable_id]
    assert second.added[0].internet_message_id == "<delta-check@example.org>"
    assert hashlib.sha256(reader.mime(immutable_id)).digest() == hashlib.sha256(raw).digest()

    third = reader.changes(inbox.id, second.delta_link)
    assert third.added == [] and third.removed == []


def test_an_expired_delta_token_reads_the_folder_again(graph: GraphClient, m365: EmulatorHandle):
    reader = MailboxReader(graph, _user_with_mailbox(graph))
    inbox = next(f for f in reader.folders(well_known=["inbox"]) if f.well_known == "inbox")
    first = reader.changes(inbox.id)
    m365.reset_delta()
    again = reader.changes(inbox.id, first.delta_link)
    assert again.resynced
    assert {r.id for r in again.added} == {r.id for r in first.added}


def test_throttled_and_dropped_requests_are_retried(graph: GraphClient, m365: EmulatorHandle):
    reader = MailboxReader(graph, _user_with_mailbox(graph))
    inbox = next(f for f in reader.folders(well_known=["inbox"]) if f.well_known == "inbox")
    refs = reader.changes(inbox.id).added[:6]
    assert refs
    m365.set_faults(throttle_next=3, drop_next=2, path_filter="$value", retry_after="0.05")
    fetched = list(reader.mime_many(r.id for r in refs))
    assert [message_id for message_id, _, _ in fetched] == [r.id for r in refs]
    assert all(data for _, data, _ in fetched)
    assert graph.stats.throttled >= 3


def test_a_message_gone_before_its_fetch_is_reported_not_fatal(
    graph: GraphClient, m365: EmulatorHandle
):
    user_id = _user_with_mailbox(graph)
    reader = MailboxReader(graph, user_id)
    kept = _deliver(m365, user_id, b"Subject: kept\r\n\r\nstays\r\n")
    gone = _deliver(m365, user_id, b"Subject: gone\r\n\r\nvanishes\r\n")
    reader.delete(gone, permanently=True)
    results = {message_id: (data, why) for message_id, data, why in reader.mime_many([kept, gone])}
    assert results[kept][0] == b"Subject: kept\r\n\r\nstays\r\n"
    assert results[gone][0] is None and "404" in results[gone][1]


def test_a_mail_domain_names_its_tenant(graph: GraphClient, m365: EmulatorHandle) -> None:
    from mailvault.sources.graph.discovery import tenant_id_for_domain

    domain = m365.control("GET", "info")["default_domain"]
    assert tenant_id_for_domain(domain) == m365.tenant_id.lower()
    with pytest.raises(GraphError, match="No Microsoft 365 tenant is known"):
        tenant_id_for_domain("not-a-customer.example")


def test_messages_with_attachments_are_fetched_outside_a_batch(
    graph: GraphClient, m365: EmulatorHandle
):
    """A $batch answer carries its bodies base64-encoded in one JSON document: messages
    that may be big (those with attachments) are fetched one by one, byte-exact."""
    user_id = _user_with_mailbox(graph)
    reader = MailboxReader(graph, user_id)
    inbox = next(f for f in reader.folders(well_known=["inbox"]) if f.well_known == "inbox")
    link = reader.changes(inbox.id).delta_link
    plain = b"Subject: plain\r\nMessage-ID: <plain@example.org>\r\n\r\nno attachment\r\n"
    attached = (
        b"Subject: attached\r\nMessage-ID: <attached@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"'
        b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
    )
    plain_id, attached_id = _deliver(m365, user_id, plain), _deliver(m365, user_id, attached)
    gone = _deliver(m365, user_id, attached.replace(b"<attached@", b"<gone@"))
    refs = reader.changes(inbox.id, link).added
    flags = {r.id: r.has_attachments for r in refs}
    assert flags == {plain_id: False, attached_id: True, gone: True}
    reader.delete(gone, permanently=True)
    before = (graph.stats.requests, graph.stats.batched)
    fetched = list(reader.mime_of(refs))
    assert [mid for mid, _, _ in fetched] == [r.id for r in refs]  # in order
    by_id = {mid: (raw, why) for mid, raw, why in fetched}
    assert (by_id[plain_id][0], by_id[attached_id][0]) == (plain, attached)
    assert by_id[gone][0] is None and "404" in by_id[gone][1]
    # One $batch holding the plain message, and a plain GET for each of the other two.
    assert (graph.stats.requests - before[0], graph.stats.batched - before[1]) == (3, 1)
