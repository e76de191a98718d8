"""IMAP archiving throughput: one Dovecot mailbox of N real messages, archived end to end.

    .venv/bin/python bench/imap_archive.py [--messages 50000] [--corpus r-help|enron]
        [--batch N] [--huge MB] [--workdir var/bench-imap] [--skip-raw]
        [--skip-incremental] [--profile FILE]

Starts a private Dovecot (the test suite's server, tests/sources/dovecot_server.py) on
free ports and writes N distinct corpus messages straight into one user's INBOX maildir
(not timed; R-help months in calendar order, or every Enron mailbox of the subset). Then:

- the raw fetch rate: imapclient over IMAPS, ``UID FETCH BODY.PEEK[]`` in batches of
  ``--batch``, nothing done with the bytes (the ceiling of client, TLS and server), and
  the connector's own fetching alone (``ImapSession.new_messages``, nothing ingested);
- the archiving profile (the ``sources.archiving_profile`` job, run in this process, as
  the job runner runs it): messages archived, wall time, msg/s, CPU seconds per 1,000
  messages (this process with its threads, and the prepare workers), peak RSS of this
  process (VmHWM, reset before the run; sampled anonymous and file-backed parts) and of
  the largest prepare worker;
- a check that every message the server holds was archived exactly once: one Message
  per distinct message (the SHA-256 of each served message), one placement per UID,
  everything indexed and the index holding N documents;
- the incremental run (nothing new).

``--huge MB`` adds one message with an attachment of that size (memory of big messages).
Issue 7's goal: at least 2,000 msg/s for 50,000 messages, peak RSS at most 400 MB. A
private SQLite database and var dir; the unpacked R-help corpus is kept in --workdir.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import os
import resource
import shutil
import ssl
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from archive_vs_notmuch import corpus_dir, unpack  # noqa: E402

MONTHS = "January February March April May June July August September October November December"
GOAL_RATE = 2_000
GOAL_RSS_MB = 400


def r_help(work: Path) -> Iterator[bytes]:
    """R-help messages in calendar order (the project's own mbox reader splits them)."""
    sys.path.insert(0, str(ROOT / "src"))
    from mailvault.sources.files import ImportItem, iter_items

    def key(path: Path) -> tuple[int, int]:
        year, month = path.stem.split("-")
        return int(year), MONTHS.split().index(month)

    for month in sorted(unpack(work).glob("*.txt"), key=key):
        for item in iter_items(month, allowed_roots=None):
            if isinstance(item, ImportItem):
                yield item.raw


def enron() -> Iterator[bytes]:
    with tarfile.open(corpus_dir() / "enron-subset.tar.xz", "r|xz") as tar:
        for member in tar:
            if member.isfile() and member.name.startswith("cmu-layout/"):
                extracted = tar.extractfile(member)
                assert extracted is not None
                yield extracted.read()


def huge_message(megabytes: int) -> bytes:
    """A message with a ``megabytes`` MB binary attachment (random: nothing to extract)."""
    data = base64.encodebytes(os.urandom(megabytes << 20))
    return (
        b"From: Bench <bench@example.com>\nTo: archive@bench.test\nSubject: huge\n"
        b"Date: Sun, 29 Nov 2026 03:00:00 +0000\nMessage-ID: <huge@bench>\n"
        b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: text/plain\n\nSee the attachment.\n--b\n"
        b"Content-Type: application/octet-stream; name=blob.bin\n"
        b"Content-Transfer-Encoding: base64\n\n" + data + b"--b--\n"
    )


def fill_maildir(messages: Iterator[bytes], maildir: Path, limit: int) -> tuple[int, int, set[str]]:
    """Write up to ``limit`` distinct messages into the INBOX maildir; returns (count,
    bytes, the SHA-256 of each message as the server will serve it: CRLF lines)."""
    cur = maildir / "cur"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    served: set[str] = set()
    size = 0
    for raw in messages:
        text = raw.replace(b"\r\n", b"\n")
        digest = hashlib.sha256(text.replace(b"\n", b"\r\n")).hexdigest()
        if digest in served:
            continue  # the same bytes twice: Dovecot would hold two copies, the archive one
        served.add(digest)
        size += len(text)
        (cur / f"{1_000_000_000 + len(served)}.M1P1.bench:2,S").write_bytes(text)
        if len(served) >= limit:
            break
    for path in [maildir.parent, maildir, *maildir.rglob("*")]:
        shutil.chown(path, "nobody", "nogroup")
    return len(served), size, served


def raw_fetch(port: int, ca_pem: str, user: str, password: str, batch: int) -> tuple[int, int]:
    """FETCH every message of INBOX in batches, keeping nothing; (messages, bytes)."""
    from imapclient import IMAPClient

    client = IMAPClient(
        "127.0.0.1", port=port, ssl=True, ssl_context=ssl.create_default_context(cadata=ca_pem)
    )
    client.login(user, password)
    last = int(client.select_folder("INBOX", readonly=True)[b"UIDNEXT"]) - 1
    count = size = 0
    for start in range(1, last + 1, batch):  # a fresh maildir: UIDs 1 … N
        uids = list(range(start, min(last, start + batch - 1) + 1))
        response = client.fetch(uids, [b"BODY.PEEK[]"])
        count += len(response)
        size += sum(len(data[b"BODY[]"]) for data in response.values())
    client.logout()
    return count, size


def connector_fetch(
    port: int, ca_pem: str, user: str, password: str, batch: int
) -> tuple[int, int]:
    """The connector's own fetching (ImapSession.new_messages: RFC822.SIZE windows,
    batches bounded in bytes, its FETCH reading), nothing ingested; (messages, bytes)."""
    from mailvault.sources.imap import FolderState, ImapSession, ImapSettings

    settings = ImapSettings("127.0.0.1", port, "tls", user, password, ca_pem=ca_pem)
    count = size = 0
    with ImapSession(settings) as session:
        (inbox,) = session.folders(include=["INBOX"], exclude=[], skip_junk_trash=True)
        for fetched in session.new_messages(inbox, FolderState(), batch_size=batch):
            count += len(fetched)
            size += sum(len(m.raw) for m in fetched)
    return count, size


def vm_hwm_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


class RssSampler:
    """The largest anonymous and file-backed (mapped index files) parts of this
    process's RSS, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.anon = self.file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            fields = dict(
                line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
            )
            self.anon = max(self.anon, int(fields["RssAnon"].split()[0]) // 1024)
            self.file = max(self.file, int(fields["RssFile"].split()[0]) // 1024)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--corpus", choices=("r-help", "enron"), default="r-help")
    parser.add_argument("--batch", type=int, default=0, help="UIDs per FETCH (0: the job's)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-imap")
    parser.add_argument("--skip-raw", action="store_true", help="no raw fetch measurement")
    parser.add_argument("--skip-incremental", action="store_true")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the job here")
    parser.add_argument(
        "--huge", type=int, default=0, metavar="MB", help="also one message this big (MB)"
    )
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    messages = r_help(work) if args.corpus == "r-help" else enron()

    var = Path(tempfile.mkdtemp(prefix="mailvault-bench-imap-"))
    os.environ.update(MAILVAULT_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="mailvault.settings")
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT / "tests"))
    import django

    from sources.dovecot_server import PASSWORD, Dovecot

    django.setup()
    from django.core.management import call_command

    from mailvault.accounts.models import Domain
    from mailvault.accounts.secrets import Secret, create_secret
    from mailvault.archive import services as archive_services
    from mailvault.archive.models import Message, Placement
    from mailvault.jobs import services as jobs
    from mailvault.jobs.models import JobMessage
    from mailvault.jobs.runner import execute_run
    from mailvault.search import TenantIndex
    from mailvault.sources.models_profiles import FolderSyncState
    from mailvault.sources.profiles import job as profile_job
    from mailvault.sources.profiles import services
    from mailvault.tenancy.context import tenant_context
    from mailvault.tenancy.provisioning import provision_tenant

    batch = args.batch or profile_job.BATCH_SIZE
    profile_job.BATCH_SIZE = batch
    call_command("migrate", verbosity=0)
    server = Dovecot()
    try:
        user = server.add_user()
        started = time.perf_counter()
        if args.huge:
            messages = itertools.chain([huge_message(args.huge)], messages)
            args.messages += 1
        count, size, served = fill_maildir(messages, server.maildir(user), args.messages)
        server.start()
        warm = server.client(user)  # Dovecot indexes the new maildir: not timed
        selected = warm.select_folder("INBOX", readonly=True)
        warm.logout()
        exists, last_uid = int(selected[b"EXISTS"]), int(selected[b"UIDNEXT"]) - 1
        assert exists == last_uid == count, (exists, last_uid, count)
        print(
            f"{count} distinct {args.corpus} messages ({size / 1e6:.1f} MB) in the INBOX of "
            f"{user}, written in {time.perf_counter() - started:.0f} s; load average "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if not args.skip_raw:
            started = time.perf_counter()
            n, fetched = raw_fetch(server.ports["imaps"], server.ca_pem, user, PASSWORD, batch)
            elapsed = time.perf_counter() - started
            print(
                f"raw FETCH BODY.PEEK[] (imapclient, IMAPS, {batch} per FETCH): {n} messages "
                f"in {elapsed:.1f} s = {n / elapsed:.0f} msg/s, {fetched / 1e6 / elapsed:.1f} MB/s",
                flush=True,
            )
            started = time.perf_counter()
            n, fetched = connector_fetch(
                server.ports["imaps"], server.ca_pem, user, PASSWORD, batch
            )
            elapsed = time.perf_counter() - started
            print(
                f"the connector's fetching alone (ImapSession.new_messages): {n} messages "
                f"in {elapsed:.1f} s = {n / elapsed:.0f} msg/s, {fetched / 1e6 / elapsed:.1f} MB/s",
                flush=True,
            )
        tenant = provision_tenant("bench").tenant
        with tenant_context(tenant):
            Domain.objects.get_or_create(name="bench.test", defaults={"verified": True})
            mailbox = archive_services.create_mailbox("archive@bench.test")
            secret = create_secret("bench", Secret.Kind.BASIC, username=user, password=PASSWORD)
            profile = services.save_profile(
                services.ProfileData(
                    name="bench",
                    type="imap",
                    host="127.0.0.1",
                    port=server.ports["imaps"],
                    security="tls",
                    ca_certificate=server.ca_pem,
                    address=user,
                    secret=secret,
                    mailbox=mailbox,
                    include_folders="INBOX",
                    skip_junk_trash=True,
                )
            )
            runs = ("initial",) if args.skip_incremental else ("initial", "incremental")
            for label in runs:
                run = jobs.run_now(services.PROCESS_TYPE, profile)
                load = os.getloadavg()[0]
                reset_peak_rss()
                own0 = resource.getrusage(resource.RUSAGE_SELF)
                kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                sampler = RssSampler()
                started = time.perf_counter()
                if args.profile and label == "initial":
                    import cProfile

                    with cProfile.Profile() as prof:
                        status = execute_run(run.pk)
                    prof.dump_stats(args.profile)
                else:
                    status = execute_run(run.pk)
                elapsed = time.perf_counter() - started
                sampler.stop()
                own1 = resource.getrusage(resource.RUSAGE_SELF)
                kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                own = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
                kids = kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime
                children = kids1.ru_maxrss // 1024
                log = list(JobMessage.objects.filter(run=run).values_list("severity", "text"))
                summary = [text for _, text in log if "messages fetched" in text]
                problems = [text for severity, text in log if severity >= 30]
                print(
                    f"{label}: {status} in {elapsed:.1f} s; load average {load:.2f} → "
                    f"{os.getloadavg()[0]:.2f}"
                )
                print("   ", *summary)
                for text in problems[:10]:
                    print("    !", text)
                if label == "initial":
                    rate = count / elapsed
                    rss = vm_hwm_mb()
                    print(
                        f"    {rate:.0f} msg/s (goal >= {GOAL_RATE:,}: "
                        f"{'met' if rate >= GOAL_RATE else 'NOT met'}), "
                        f"{size / 1e6 / elapsed:.1f} MB/s"
                    )
                    print(
                        f"    CPU s per 1,000 messages: this process {1000 * own / count:.3f}, "
                        f"prepare workers {1000 * kids / count:.3f} (Dovecot not counted)"
                    )
                    print(
                        f"    peak RSS: this process {rss} MB (goal <= {GOAL_RSS_MB}: "
                        f"{'met' if rss <= GOAL_RSS_MB else 'NOT met'}; sampled: at most "
                        f"{sampler.anon} MB anonymous, {sampler.file} MB file-backed), "
                        f"largest prepare worker {children} MB"
                    )
                    verify(count, served, mailbox, Message, Placement, TenantIndex, tenant)
                    state = FolderSyncState.objects.get(profile=profile, folder="Inbox")
                    assert state.last_uid == last_uid, (state.last_uid, last_uid)
    finally:
        server.stop()
        shutil.rmtree(var, ignore_errors=True)


def verify(
    count: int,
    served: set[str],
    mailbox: Any,
    message_model: Any,
    placement_model: Any,
    index_class: Any,
    tenant: Any,
) -> None:
    """Every served message archived exactly once, filed once, indexed."""
    shas = list(message_model.objects.values_list("sha256", flat=True))
    placements = placement_model.objects.filter(mailbox=mailbox)
    refs = list(placements.values_list("source_ref", flat=True))
    not_indexed = message_model.objects.filter(indexed=False).count()
    documents = index_class.open(tenant.pk).count()
    problems = []
    if len(shas) != count or set(shas) != served:
        missing = len(served - set(shas))
        problems.append(f"{len(shas)} messages archived, {missing} of the served ones missing")
    if len(refs) != count or len(set(refs)) != count:
        problems.append(f"{len(refs)} placements for {len(set(refs))} UIDs, expected {count}")
    if not_indexed or documents != count:
        problems.append(f"{not_indexed} not indexed; {documents} index documents")
    if problems:
        sys.exit("VERIFICATION FAILED: " + "; ".join(problems))
    print(
        f"    verified: {count} messages archived exactly once (SHA-256 of each served "
        f"message), {count} placements with distinct UIDs, {documents} index documents"
    )


if __name__ == "__main__":
    main()
