"""Chaos (issue 7): Microsoft 365 archiving profiles with "delete in source mailbox" and
folder synchronizations with "delete after archived" run in a real ``mailvault worker``
while the emulator answers 429 (with Retry-After), 503, drops connections, expires every
access token and answers 410 to delta links, and the worker is SIGKILLed mid-archive,
mid-deletion and again after more mail arrived. Killed runs are failed by the
scheduler's reaper and queued again from their schedule.

At the end every source message is archived exactly once per mailbox and folder (by
SHA-256), every deletion in the source happened while a copy was filed in that user's
archive mailbox (checked by the emulator at the moment of the deletion) whose stored
bytes hash right, and the flagged messages and the message under a legal hold were never
deleted. A single violation fails the test.

Four mailboxes of about 30 messages each in Inbox, Inbox/Projects, Archive and Sent Items
(two archived by profiles, two by folder synchronizations), a private SQLite
installation (engine-agnostic, so ``single_db``); 70 to 105 s on this shared machine.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from directory.emulator import emulator
from m365_emulator.testing import EmulatorHandle

from .chaos import Chaos, Driver, Installation, Process, wait_for

pytestmark = pytest.mark.single_db

HOLD_WORD = "chaoshold"
UNFINISHED = ("queued", "running")
ERROR = 40


@dataclass(frozen=True)
class SourceMessage:
    user_id: str
    immutable_id: str
    folder: str  # the path it was delivered to
    sha256: str
    flagged: bool
    held: bool


def _mailbox_users(m365: EmulatorHandle, count: int) -> list[tuple[str, str]]:
    tenant = m365.emulator.tenant if m365.emulator else None
    assert tenant is not None, "the chaos test drives the in-process emulator"
    found = [
        (u.id, str(u.mail).casefold())
        for u in tenant.users.values()
        if u.has_mailbox and u.user_type == "Member" and u.mail and not u.is_admin
    ]
    assert len(found) >= count
    return sorted(found, key=lambda pair: pair[1])[:count]


def _deliver(
    m365: EmulatorHandle,
    http: httpx.Client,
    user_id: str,
    folder: str,
    subject: str,
    flagged: bool = False,
) -> SourceMessage:
    """Put a message into a folder through the control API (one TLS connection for all)."""
    raw = (
        f"From: Chaos Sender <sender@fabrikam.example>\r\nTo: {user_id}@contoso.com\r\n"
        f"Subject: {subject}\r\nDate: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{hashlib.sha256(subject.encode()).hexdigest()[:32]}@chaos.test>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{subject} body\r\n"
    ).encode()
    response = http.post(
        f"{m365.base_url}/_emulator/api/mailboxes/{user_id}/messages",
        json={"raw_base64": base64.b64encode(raw).decode(), "folder": folder, "flagged": flagged},
    )
    response.raise_for_status()
    made = response.json()
    tenant = m365.emulator.tenant  # type: ignore[union-attr]
    box = tenant.mailbox(user_id)
    return SourceMessage(
        user_id,
        made["immutableId"],
        tenant.folder_path(box, made["folderId"]),
        hashlib.sha256(raw).hexdigest(),
        flagged,
        HOLD_WORD in subject.casefold(),
    )


def _seed(m365: EmulatorHandle, http: httpx.Client, user_id: str, tag: str) -> None:
    """About 20 more messages in four folders, one of them flagged, one on legal hold."""
    tenant = m365.emulator.tenant  # type: ignore[union-attr]
    box = tenant.mailbox(user_id)
    assert box is not None
    projects = next(f.id for f in box.folders.values() if f.display_name == "Projects")
    layout = [("inbox", 7), ("archive", 5), (projects, 4), ("sentitems", 3)]
    for folder, count in layout:
        for n in range(count):
            _deliver(m365, http, user_id, folder, f"{tag} {folder[:8]} message {n}")
    _deliver(m365, http, user_id, "inbox", f"{tag} follow up on this", flagged=True)
    _deliver(m365, http, user_id, "archive", f"{tag} {HOLD_WORD} contract draft")


def _source(m365: EmulatorHandle, user_ids: list[str]) -> dict[tuple[str, str], SourceMessage]:
    """Every message now in the mailboxes, by (user id, immutable id), where it is now."""
    tenant = m365.emulator.tenant  # type: ignore[union-attr]
    found = {}
    with tenant.lock:
        for user_id in user_ids:
            box = tenant.mailbox(user_id)
            assert box is not None
            for m in box.messages.values():
                found[(user_id, m.immutable_id)] = SourceMessage(
                    user_id,
                    m.immutable_id,
                    tenant.folder_path(box, m.folder_id),
                    hashlib.sha256(m.raw).hexdigest(),
                    m.flagged,
                    HOLD_WORD in m.subject.casefold(),
                )
    return found


class Deletions:
    """The emulator's deletion listener: at the moment of each deletion, is a copy filed
    in that user's archive mailbox? Sets ``seen`` so that the test can kill mid-deletion."""

    def __init__(self, installation: Installation, mailbox_of: dict[str, int]) -> None:
        self.installation, self.mailbox_of = installation, mailbox_of
        self.entries: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.seen = threading.Event()
        self.slowest = 0.0

    def __call__(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        self.seen.set()
        mailbox_id = self.mailbox_of.get(entry["user_id"])
        try:
            placed = self.installation.placed_in(mailbox_id, entry["sha256"]) if mailbox_id else 0
        except Exception as exc:
            self.violations.append(f"{entry['immutable_id']}: could not check ({exc})")
            return
        if placed == 0:
            self.violations.append(
                f"{entry['user_id']} {entry['folder']} {entry['sha256'][:12]} deleted without "
                "an archived copy in its mailbox"
            )


class Runner:
    """Queues runs from the schedules and watches them through the driver."""

    def __init__(self, driver: Driver, configs: list[dict[str, Any]]) -> None:
        self.driver, self.configs = driver, configs
        self.floor: dict[str, int] = {}

    def latest(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for run in self.driver("runs"):
            found[run["config_id"]] = run  # ordered by id: the last one wins
        return found

    def queue_all(self) -> None:
        for config in self.configs:
            self.floor[config["config_id"]] = self.driver(
                "queue", schedule_id=config["schedule_id"]
            )["run_id"]

    def requeue_lost(self) -> None:
        """Queue again what a kill failed (once the reaper said so)."""
        latest = self.latest()
        for config in self.configs:
            run = latest.get(config["config_id"])
            if run is not None and run["status"] not in UNFINISHED and not _clean(run):
                self.driver("queue", schedule_id=config["schedule_id"])

    def no_running(self) -> bool:
        return all(r["status"] != "running" for r in self.latest().values())

    def settled(self) -> bool:
        """Each configuration's last run finished cleanly after the last delivery; a run
        that ended otherwise (lost, or finished with Graph errors) is queued again."""
        latest = self.latest()
        done = True
        for config in self.configs:
            run = latest[config["config_id"]]
            if run["status"] in UNFINISHED:
                done = False
            elif not _clean(run) or run["id"] < self.floor[config["config_id"]]:
                done = False
                self.driver("queue", schedule_id=config["schedule_id"])
        return done


def _clean(run: dict[str, Any]) -> bool:
    return run["status"] == "finished" and not any(s >= ERROR for s, _ in run["messages"])


def test_chaos_nothing_lost_nothing_twice_nothing_deleted_unverified(tmp_path: Path) -> None:
    started = time.monotonic()
    with (
        emulator(users=12, groups=2) as m365,
        m365.http() as http,
        contextlib.ExitStack() as cleanup,
    ):
        users = _mailbox_users(m365, 4)
        for n, (user_id, _address) in enumerate(users):
            _seed(m365, http, user_id, f"u{n}")
        originals = _source(m365, [u for u, _ in users])  # as delivered, before any run
        installation = Installation(tmp_path / "var", m365)
        driver = Driver(installation)
        cleanup.callback(driver.close)
        kinds = ["profile", "folder_sync", "profile", "folder_sync"]
        setup = driver(
            "setup",
            domain=users[0][1].rsplit("@", 1)[1],
            entra_tenant_id=m365.tenant_id,
            mailboxes=[{"address": a, "kind": k} for (_u, a), k in zip(users, kinds, strict=True)],
            hold=HOLD_WORD,
        )
        configs = setup["configs"]
        user_of = {c["mailbox_id"]: u for (u, _a), c in zip(users, configs, strict=True)}
        mailbox_of = {u: mid for mid, u in user_of.items()}
        kind_of = {u: k for (u, _a), k in zip(users, kinds, strict=True)}
        deletions = Deletions(installation, mailbox_of)
        assert m365.emulator is not None
        m365.emulator.deletion_listeners.append(deletions)
        m365.set_faults(slow_ms=10)
        chaos = Chaos(m365)
        scheduler = Process(installation, "scheduler", "scheduler", "--interval", "0.5")
        worker = Process(installation, "worker", "worker", "--interval", "0.2")
        cleanup.callback(worker.stop)
        cleanup.callback(scheduler.stop)
        runner = Runner(driver, configs)
        kills = 0
        phases: list[str] = [f"set up in {time.monotonic() - started:.1f} s"]
        try:
            chaos.start()
            scheduler.start()
            worker.start()
            runner.queue_all()

            def kill_and_restart() -> None:
                nonlocal kills
                worker.kill()
                kills += 1
                phases.append(f"kill {kills} at {time.monotonic() - started:.1f} s")
                # The killed run stays "running" until the scheduler's reaper fails it.
                wait_for(runner.no_running, 30, "the reaper to fail the killed run", 0.5)
                runner.requeue_lost()
                worker.start()

            # 1. Mid-archive: as soon as the first messages are in the archive.
            wait_for(
                lambda: installation.query("SELECT count(*) FROM archive_message")[0][0] > 0,
                90,
                "the first archived messages",
            )
            kill_and_restart()
            # 2. Mid-deletion: right after a deletion in a source mailbox.
            deletions.seen.clear()
            assert deletions.seen.wait(90), "no deletion in the source after the first kill"
            kill_and_restart()
            # 3. More mail arrives; kill again while the runs are reading it.
            for n, (user_id, _address) in enumerate(users):
                for i in range(3):
                    late = _deliver(m365, http, user_id, "inbox", f"u{n} arrived later {i}")
                    originals[(user_id, late.immutable_id)] = late
            runner.queue_all()
            wait_for(
                lambda: any(r["status"] == "running" for r in runner.latest().values()),
                60,
                "a run after the new mail",
                0.5,
            )
            time.sleep(0.5)
            kill_and_restart()
            runner.queue_all()  # the new mail is read by runs queued after it arrived
            wait_for(runner.settled, 120, "every configuration's last run to finish cleanly", 1.0)
            phases.append(f"settled at {time.monotonic() - started:.1f} s")
        except BaseException:
            worker.dump_stacks()  # what the worker was doing, shown with the failure
            print(worker.log_text()[-30000:])
            raise
        finally:
            with contextlib.suppress(Exception):  # keep the first error, not the cleanup's
                chaos.stop()
            m365.emulator.deletion_listeners.remove(deletions)
            worker.stop()
            scheduler.stop()
            print(f"{phases}; slowest deletion check {deletions.slowest:.2f} s")
            for run in driver("runs"):  # shown when the test fails
                print(f"run {run['id']} {run['process_type']} {run['config_id']} {run['status']}")
                for severity, text in run["messages"]:
                    print(f"  {severity} {text[:300]}")
        stats = m365.control("GET", "faults")["stats"]
        runs = driver("runs")
        verified = driver("verify")

        source = _source(m365, [u for u, _ in users])
        log = "\n".join(text for run in runs for _s, text in run["messages"])

        # Chaos really happened.
        assert kills == 3
        assert sum("Worker lost" in text for run in runs for _s, text in run["messages"]) >= 2
        assert stats.get("injected_429", 0) > 0 and stats.get("injected_503", 0) > 0, stats
        assert stats.get("injected_0", 0) > 0, stats  # dropped connections
        assert chaos.done["token"] > 0 and chaos.done["410"] > 0, chaos.done

        # No deletion without a copy filed in that user's archive mailbox at that moment,
        # and every archived copy reads back with its hash.
        assert deletions.violations == []
        assert verified["bad"] == [] and verified["checked"] > 0
        deleted: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in deletions.entries:  # a message may be deleted twice (Deleted Items)
            deleted.setdefault((entry["user_id"], entry["immutable_id"]), entry)
        for key, entry in deleted.items():
            assert entry["folder"] == originals[key].folder, entry
            message = originals[key]
            assert not message.flagged, f"a flagged message was deleted: {message}"
            assert not message.held, f"a message under legal hold was deleted: {message}"
        for user_id, _address in users:  # both kinds of job deleted what they could
            assert any(e["user_id"] == user_id for e in deleted.values()), (user_id, log)

        # Flagged and held messages are still where they were.
        for key, message in originals.items():
            if message.flagged or message.held:
                now = source.get(key)
                assert now is not None and now.folder == message.folder, message

        # Every source message is archived exactly once per mailbox and folder.
        placements = installation.placements()
        twice = {k: n for k, n in Counter(placements).items() if n > 1}
        assert twice == {}, f"placed twice: {twice}"
        by_mailbox_sha: dict[tuple[int, str], list[str]] = {}
        for mailbox_id, folder, sha in placements:
            by_mailbox_sha.setdefault((mailbox_id, sha), []).append(folder)
        expected = {(mailbox_of[m.user_id], m.sha256) for m in originals.values()}
        assert set(by_mailbox_sha) == expected, "archived set differs from the source"
        for key, message in originals.items():
            folders = by_mailbox_sha[(mailbox_of[message.user_id], message.sha256)]
            allowed = {message.folder}
            if kind_of[message.user_id] == "folder_sync" and key in deleted:
                allowed.add("Deleted Items")  # folder sync follows the message there
            assert len(folders) == 1 and folders[0] in allowed, (message, folders)
    print(
        f"chaos: {len(originals)} source messages, {len(deleted)} deleted in the source, "
        f"{kills} worker kills, faults {dict(chaos.done)}, emulator {stats}, "
        f"{len(runs)} runs, {time.monotonic() - started:.1f} s"
    )
