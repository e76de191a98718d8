"""The emulator's follow-up flags and its log of what Graph clients deleted (the chaos
tests check every deletion against the archive at the moment it happens)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from m365_emulator.testing import EmulatorHandle, running_emulator

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with running_emulator(fixture="generated", users=6, groups=2) as handle:
        yield handle


def _user(emu: EmulatorHandle) -> str:
    assert emu.emulator is not None
    return next(
        u.id for u in emu.emulator.tenant.users.values() if u.has_mailbox and not u.is_admin
    )


def _put(emu: EmulatorHandle, user: str, subject: str, **extra: Any) -> tuple[str, bytes]:
    raw = f"Subject: {subject}\r\nMessage-ID: <{subject}@test>\r\n\r\nbody\r\n".encode()
    made = emu.control(
        "POST",
        f"mailboxes/{user}/messages",
        {"raw_base64": base64.b64encode(raw).decode(), **extra},
    )
    return str(made["immutableId"]), raw


def test_flags_are_set_on_delivery_and_by_patch(emu: EmulatorHandle) -> None:
    user = _user(emu)
    flagged, _ = _put(emu, user, "flagged", flagged=True)
    plain, _ = _put(emu, user, "plain")

    def status(mid: str) -> str:
        item = emu.graph("GET", f"/users/{user}/messages/{mid}", headers=IMMUTABLE).json()
        return str(item["flag"]["flagStatus"])

    assert (status(flagged), status(plain)) == ("flagged", "notFlagged")
    emu.graph(
        "PATCH",
        f"/users/{user}/messages/{plain}",
        json={"flag": {"flagStatus": "flagged"}},
        headers=IMMUTABLE,
    )
    assert status(plain) == "flagged"


def test_every_deletion_is_logged_and_heard_before_it_happens(emu: EmulatorHandle) -> None:
    user = _user(emu)
    first, first_raw = _put(emu, user, "first", folder="archive")
    second, second_raw = _put(emu, user, "second")
    assert emu.emulator is not None
    heard: list[tuple[str, bool]] = []

    def listener(entry: dict[str, Any]) -> None:  # the message is still where it was
        box = emu.emulator.tenant.mailbox(entry["user_id"])  # type: ignore[union-attr]
        assert box is not None
        heard.append((entry["immutable_id"], entry["immutable_id"] in box.messages))

    emu.emulator.deletion_listeners.append(listener)
    assert emu.deletions() == []
    assert emu.graph("DELETE", f"/users/{user}/messages/{first}").status_code == 204
    assert emu.graph("POST", f"/users/{user}/messages/{second}/permanentDelete").status_code == 204
    log = emu.deletions()
    assert [(e["immutable_id"], e["folder"], e["permanent"]) for e in log] == [
        (first, "Archive", False),
        (second, "Inbox", True),
    ]
    assert [e["sha256"] for e in log] == [
        hashlib.sha256(first_raw).hexdigest(),
        hashlib.sha256(second_raw).hexdigest(),
    ]
    assert heard == [(first, True), (second, True)]
    # Deleting again from Deleted Items (to the dumpster) is logged as well.
    assert emu.graph("DELETE", f"/users/{user}/messages/{first}").status_code == 204
    assert emu.deletions()[-1]["folder"] == "Deleted Items"
