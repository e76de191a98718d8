"""IMAP archiving throughput: a real Dovecot mailbox loaded with Enron mail.

    .venv/bin/python bench/imap_archive.py [--user lay-k] [--limit 0] [--batch 100]

Starts a private Dovecot (the test suite's helper, tests/sources/dovecot_server.py) on a
free port, writes one Enron mailbox of the corpus (``cmu-layout/<user>/<folder>/``) into
its maildir, one IMAP folder per corpus folder, and archives it over IMAPS with an
archiving profile run in this process (the ``sources.archiving_profile`` job: batched
``UID FETCH BODY.PEEK[]``, the ingestion pipeline, the search index). Then runs the profile
again (nothing new: the incremental pass). Prints msg/s. A private SQLite database and
var dir; nothing else is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def corpus() -> Path:
    base = Path(os.environ.get("MAILVAULT_CORPUS", ROOT.parent / "shared" / "corpus"))
    path = base / "enron-subset.tar.xz"
    if not path.is_file():
        sys.exit(f"The corpus is not at {path} (set MAILVAULT_CORPUS). Nothing measured.")
    return path


def load_maildir(archive: Path, user: str, maildir: Path, limit: int) -> tuple[int, int]:
    """Write ``user``'s corpus folders as maildir++ folders; returns (messages, bytes)."""
    count = size = 0
    prefix = f"cmu-layout/{user}/"
    with tarfile.open(archive, "r|xz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            folder = member.name[len(prefix) :].rsplit("/", 1)[0].replace("/", ".")
            # The corpus "inbox" is INBOX (the maildir root); ".inbox" would be hidden by it.
            target = (
                maildir / "cur" if folder.lower() == "inbox" else maildir / f".{folder}" / "cur"
            )
            target.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None
            raw = extracted.read().replace(b"\r\n", b"\n")
            count += 1
            size += len(raw)
            (target / f"{count}.bench:2,S").write_bytes(raw)
            if limit and count >= limit:
                break
    for path in [maildir, *maildir.rglob("*")]:
        shutil.chown(path, "nobody", "nogroup")
    return count, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", default="lay-k", help="the corpus mailbox (lay-k: 5,937)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many messages")
    parser.add_argument("--batch", type=int, default=100, help="UIDs per FETCH")
    args = parser.parse_args()
    archive = corpus()

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
    from mailvault.jobs import services as jobs
    from mailvault.jobs.models import JobMessage
    from mailvault.jobs.runner import execute_run
    from mailvault.sources.profiles import job as profile_job
    from mailvault.sources.profiles import services
    from mailvault.tenancy.context import tenant_context
    from mailvault.tenancy.provisioning import provision_tenant

    profile_job.BATCH_SIZE = args.batch
    call_command("migrate", verbosity=0)
    server = Dovecot()
    try:
        user = server.add_user()
        count, size = load_maildir(archive, args.user, server.maildir(user), args.limit)
        server.start()
        tenant = provision_tenant("bench").tenant
        with tenant_context(tenant):
            Domain.objects.get_or_create(name="bench.test", defaults={"verified": True})
            mailbox = archive_services.create_mailbox("lay@bench.test")
            secret = create_secret("bench", Secret.Kind.BASIC, username=user, password=PASSWORD)
            profile = services.save_profile(
                services.ProfileData(
                    name="bench",
                    type="imap",
                    host="127.0.0.1",
                    port=server.ports["imaps"],
                    security="tls",
                    ca_certificate=server.ca_pem,
                    address="lay@bench.test",
                    secret=secret,
                    mailbox=mailbox,
                    skip_junk_trash=False,
                )
            )
            print(f"{count} messages ({size / 1e6:.1f} MB) of {args.user} in Dovecot {user}")
            for label in ("initial", "incremental"):
                run = jobs.run_now(services.PROCESS_TYPE, profile)
                started = time.perf_counter()
                status = execute_run(run.pk)
                elapsed = time.perf_counter() - started
                summary = [
                    t
                    for t in JobMessage.objects.filter(run=run).values_list("text", flat=True)
                    if "messages fetched" in t
                ]
                rate = count / elapsed if label == "initial" else 0
                print(
                    f"{label}: {status} in {elapsed:.1f} s"
                    + (f" = {rate:.0f} msg/s, {size / 1e6 / elapsed:.1f} MB/s" if rate else "")
                )
                print("   ", *summary)
    finally:
        server.stop()
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
