"""Microsoft 365 archiving profile through the emulator with its throttling on (issue 7).

    .venv/bin/python bench/m365_archive.py [--mailboxes 50] [--per-mailbox 2000]
                                           [--latency-ms 0] [--workdir DIR]

The emulator runs as a subprocess with its default ("realistic") limits: 4 concurrent
requests and 10,000 requests per 10 minutes per mailbox, 2,000 requests/s per app;
``--latency-ms`` adds a service time to every Graph request (sub-requests too), so the
requests of one mailbox really overlap in the emulator. N mailboxes get M distinct R-help
messages each (from the shared corpus, spread over four folders) through the emulator's
bulk control API; a private Mailvault installation synchronizes them from Entra ID (a
group of the bench users), and the ``sources.archiving_profile`` job of a "multiple
mailboxes" Microsoft 365 profile archives them in a child process (the worker's part,
timed alone: seeding and directory sync are not). Prints messages archived, wall time,
msg/s against the goal (>= 300), Graph requests per message and 429s (the emulator's
counters), the highest concurrency and 10-minute count one mailbox saw (<= 4, <= 10,000),
the archiving process's peak RSS (<= 400 MB); then checks that every message is archived
exactly once in its mailbox.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from archive_vs_notmuch import TAR_FILTER

if TYPE_CHECKING:
    from m365_emulator.testing import EmulatorHandle

ROOT = Path(__file__).resolve().parents[1]
MONTHS = "January February March April May June July August September October November December"
GROUP = "Archive Bench"
# Where each mailbox's messages go: (well-known folder, child path, share).
FOLDERS = (("inbox", "", 0.4), ("inbox", "Lists/R-help", 0.3), ("archive", "", 0.2))
LAST_FOLDER = ("sentitems", "")  # the rest
GOAL_RATE = 300.0
GOAL_RSS_MB = 400


def corpus_file() -> Path:
    base = os.environ.get("MAILVAULT_CORPUS")
    folder = Path(base) if base else ROOT.parent / "shared" / "corpus"
    path = folder / "r-help-mbox.tar.xz"
    if not path.is_file():
        sys.exit(f"The corpus is not at {path} (set MAILVAULT_CORPUS). Nothing measured.")
    return path


def unpacked_rhelp() -> Path:
    """R-help unpacked once into the corpus cache shared with the tests (under a lock)."""
    archive = corpus_file()
    stat = archive.stat()
    cache = Path(os.environ.get("MAILVAULT_CORPUS_CACHE") or "/tmp/mailvault-corpus-cache")
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"r-help-{stat.st_size}-{int(stat.st_mtime)}"
    with open(cache / f"{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / ".unpacked").exists():
            print("unpacking R-help …", flush=True)
            partial = cache / f"{dest.name}.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            with tarfile.open(archive) as tar:
                tar.extractall(partial, **TAR_FILTER)
            partial.rename(dest)
            (dest / ".unpacked").touch()
    return next(p for p in dest.rglob("*.txt")).parent


def corpus_messages() -> Iterator[bytes]:
    """R-help messages in calendar order, each distinct (byte-identical copies skipped)."""
    from mailvault.sources.files import ImportItem, iter_items

    def key(path: Path) -> tuple[int, int]:
        year, month = path.stem.split("-")
        return int(year), MONTHS.split().index(month)

    seen: set[bytes] = set()
    for month in sorted(unpacked_rhelp().glob("*.txt"), key=key):
        for item in iter_items(month, allowed_roots=None):
            if isinstance(item, ImportItem):
                digest = hashlib.sha256(item.raw).digest()
                if digest not in seen:
                    seen.add(digest)
                    yield item.raw


def seed(m365: EmulatorHandle, count: int, per_mailbox: int) -> dict[str, set[str]]:
    """Create the bench users (a group of them) and load their mailboxes; the SHA-256 of
    what each address holds."""
    domain = m365.control("GET", "info")["default_domain"]
    messages = corpus_messages()
    expected: dict[str, set[str]] = {}
    user_ids = []
    for n in range(count):
        address = f"archive{n:03d}@{domain}"
        user = m365.control(
            "POST",
            "users",
            {
                "mail": address,
                "displayName": f"Archive {n:03d}",
                "mailbox": True,
                "emptyMailbox": True,
            },
        )
        user_ids.append(user["id"])
        raws = [next(messages) for _ in range(per_mailbox)]
        if len(raws) < per_mailbox:
            sys.exit("The corpus has fewer messages than asked for.")
        expected[address] = {hashlib.sha256(r).hexdigest() for r in raws}
        start = 0
        plan = [(f, p, int(per_mailbox * share)) for f, p, share in FOLDERS]
        plan.append((*LAST_FOLDER, per_mailbox - sum(n for _, _, n in plan)))
        for folder, path, size in plan:
            for at in range(start, start + size, 500):
                part = raws[at : min(at + 500, start + size)]
                m365.control(
                    "POST",
                    f"mailboxes/{user['id']}/bulk",
                    {
                        "folder": folder,
                        "path": path,
                        "raw_base64": [base64.b64encode(r).decode() for r in part],
                        "isRead": True,
                    },
                )
            start += size
        print(f"\r  seeded {n + 1}/{count} mailboxes", end="", flush=True)
    print()
    m365.control("POST", "groups", {"displayName": GROUP, "members": user_ids})
    return expected


CHILD_RESULT = "BENCH-RESULT "


def child(profile_pk: int) -> int:
    """The archiving process: run the profile's job once, print what it measured."""
    import django

    django.setup()
    from mailvault.jobs import services as jobs
    from mailvault.jobs.models import JobMessage, JobRun
    from mailvault.jobs.runner import execute_run
    from mailvault.sources.models_profiles import ArchivingProfile
    from mailvault.sources.profiles.services import PROCESS_TYPE
    from mailvault.tenancy.context import tenant_context

    profile = ArchivingProfile.unscoped.get(pk=profile_pk)
    with tenant_context(profile.tenant):
        run = jobs.run_now(PROCESS_TYPE, profile)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    execute_run(run.pk)
    wall = time.monotonic() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = JobRun.unscoped.get(pk=run.pk)
    log = list(JobMessage.unscoped.filter(run=done).values_list("text", flat=True))
    result = {
        "status": done.status,
        "wall": wall,
        "cpu": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
        "workers_cpu": workers.ru_utime + workers.ru_stime,
        "rss_mb": cpu1.ru_maxrss / 1024,
        "workers_rss_mb": workers.ru_maxrss / 1024,
        "log": log,
    }
    print(CHILD_RESULT + json.dumps(result), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--per-mailbox", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=0, help="Graph service time")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mv-bench-m365-"))
    shutil.rmtree(workdir / "var", ignore_errors=True)
    os.environ.update(
        MAILVAULT_VAR_DIR=str(workdir / "var"), DJANGO_SETTINGS_MODULE="mailvault.settings"
    )
    from m365_emulator.testing import running_emulator

    print(f"load average at the start: {os.getloadavg()}")
    with running_emulator(
        fixture="generated",
        users=5,
        groups=0,
        subprocess=True,
        state_dir=workdir / "emulator",
    ) as m365:
        os.environ.update(
            MAILVAULT_M365_AUTHORITY_BASE=m365.base_url,
            MAILVAULT_M365_GRAPH_BASE=m365.graph_base,
            MAILVAULT_M365_CLIENT_ID=m365.client_id,
            MAILVAULT_M365_CLIENT_SECRET=m365.client_secret,
            MAILVAULT_M365_CA_BUNDLE=str(m365.ca_path),
        )
        t0 = time.monotonic()
        print(f"seeding {args.mailboxes} mailboxes x {args.per_mailbox} R-help messages …")
        expected = seed(m365, args.mailboxes, args.per_mailbox)
        print(f"seeded in {time.monotonic() - t0:.1f} s (not timed)")
        return archive(args, m365, expected)


def archive(args: argparse.Namespace, m365: EmulatorHandle, expected: dict[str, set[str]]) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from mailvault.archive.models import Mailbox, Message, Placement
    from mailvault.directory import services, sync
    from mailvault.directory.models import DirectoryService
    from mailvault.sources.models_profiles import ArchivingProfile
    from mailvault.tenancy.context import tenant_context
    from mailvault.tenancy.provisioning import provision_tenant

    call_command("migrate", verbosity=0)
    tenant = provision_tenant("benchm365").tenant
    with tenant_context(tenant):
        service = services.save_service(
            "Bench tenant",
            DirectoryService.Kind.ENTRA,
            services.Constraints(only_group_names=[GROUP]),
            entra_tenant_id=m365.tenant_id,
        )
        first = sync.synchronize(service, info=lambda _: None, warn=lambda _: None)
        print(f"directory sync (not timed): {first.summary()}")
        profile = ArchivingProfile.objects.create(
            name="Microsoft 365 bench",
            type=ArchivingProfile.Type.M365,
            mode=ArchivingProfile.Mode.MULTIPLE,
            directory_service=service,
        )
    connections.close_all()
    m365.reset_faults()  # the counters start from zero; the limits stay the defaults
    if args.latency_ms:
        m365.set_faults(slow_ms=args.latency_ms)
    load_start = os.getloadavg()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(profile.pk)],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ,
    )
    load_end = os.getloadavg()
    line = next((x for x in proc.stdout.splitlines() if x.startswith(CHILD_RESULT)), None)
    if line is None:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        return 1
    result = json.loads(line[len(CHILD_RESULT) :])
    stats = m365.control("GET", "faults")["stats"]

    total_expected = sum(len(v) for v in expected.values())
    problems: list[str] = []
    archived = 0
    with tenant_context(tenant):
        for address, shas in expected.items():
            mailbox = Mailbox.objects.get(addresses__address=address)
            placements = Placement.objects.filter(mailbox=mailbox)
            refs = placements.values_list("source_ref", flat=True)
            got = set(
                Message.objects.filter(placements__mailbox=mailbox).values_list("sha256", flat=True)
            )
            n = placements.count()
            archived += n
            if n != len(shas) or len(set(refs)) != n or got != shas:
                problems.append(
                    f"{address}: {n} placements, {len(set(refs))} refs, "
                    f"{len(shas - got)} missing, {len(got - shas)} unexpected"
                )
    wall = result["wall"]
    rate = archived / wall if wall else 0.0
    throttled = sum(v for k, v in stats.items() if k.startswith("throttled_"))
    throttled += stats.get("injected_429", 0)
    counts = [re.search(r"read with (\d+) Graph requests", t) for t in result["log"]]
    http = next((int(m.group(1)) for m in counts if m), 0)
    print("\nlog of the job:\n  " + "\n  ".join(result["log"]))
    print(
        f"\nmailboxes {args.mailboxes} x {args.per_mailbox} messages, latency "
        f"{args.latency_ms} ms; job status {result['status']}\n"
        f"messages archived: {archived} (expected {total_expected})\n"
        f"wall time: {wall:.1f} s\n"
        f"rate: {rate:.0f} msg/s (goal >= {GOAL_RATE:.0f}: "
        f"{'met' if rate >= GOAL_RATE else 'NOT met'})\n"
        f"Graph requests seen by the emulator: {stats.get('requests', 0)} = "
        f"{stats.get('requests', 0) / max(archived, 1):.3f} per message "
        f"($batch sub-requests counted one by one, as Graph's limits do); "
        f"HTTP requests {http} = {http / max(archived, 1):.3f} per message\n"
        f"429s: {throttled} ({ {k: v for k, v in stats.items() if 'throttled' in k} })\n"
        f"max concurrent requests per mailbox: {stats.get('max_mailbox_concurrency', 0)} "
        f"(limit 4)\n"
        f"max requests per mailbox per 10 min: {stats.get('max_mailbox_window', 0)} "
        f"(limit 10,000)\n"
        f"peak RSS of the archiving process: {result['rss_mb']:.0f} MB (goal <= {GOAL_RSS_MB}); "
        f"largest prepare worker {result['workers_rss_mb']:.0f} MB\n"
        f"CPU: archiving process {result['cpu']:.1f} s, prepare workers "
        f"{result['workers_cpu']:.1f} s\n"
        f"load average: {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end"
    )
    if problems:
        print("NOT archived exactly once:\n  " + "\n  ".join(problems[:20]))
        return 1
    print("every message archived exactly once in its mailbox")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main())
