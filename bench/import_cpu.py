"""CPU time per message of the bulk import (issue 3), on the first N R-help messages.

    .venv/bin/python bench/import_cpu.py [--messages 20000] [--workdir var/bench-cpu]

Wall-clock rates on a shared machine say more about the neighbours than about the code,
so this reports CPU seconds per 1,000 messages: the importing process (getrusage self:
reading, store appends, database, index; its main thread apart, the serial part) and its
prepare workers (getrusage children: parse, compress, encrypt), beside the wall rate and
the load average it ran under. The workers' figure doubles as a control: their code
rarely changes, so when it moves, the machine did.
The messages are the first months of R-help in calendar order, up to N messages.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from archive_vs_notmuch import BIN, ROOT, mailvault_env, setup_tenant, unpack

MONTHS = "January February March April May June July August September October November December"

CHILD = textwrap.dedent(
    """
    import os, resource, sys, time
    from pathlib import Path
    from mailvault.archive.models import MailboxAddress
    from mailvault.ingestion.imports import run_import
    from mailvault.tenancy.context import tenant_context
    from mailvault.tenancy.models import Tenant
    load = os.getloadavg()[0]
    with tenant_context(Tenant.objects.get(name="bench")):
        box = MailboxAddress.objects.get(address="r-help@bench").mailbox
        s0 = resource.getrusage(resource.RUSAGE_SELF)
        start, main0 = time.perf_counter(), time.thread_time()
        report = run_import(box, [Path(os.environ["BENCH_PATH"])], allowed_roots=[])
        wall, main = time.perf_counter() - start, time.thread_time() - main0
    s1 = resource.getrusage(resource.RUSAGE_SELF)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = report.seen
    own = s1.ru_utime + s1.ru_stime - s0.ru_utime - s0.ru_stime
    workers = c1.ru_utime + c1.ru_stime
    print(f"{n} messages in {wall:.1f} s = {n / wall:.0f} msg/s; load average "
          f"{load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"CPU s per 1,000 messages: importer {1000 * own / n:.3f} (its main thread "
          f"{1000 * main / n:.3f}), workers {1000 * workers / n:.3f}, "
          f"total {1000 * (own + workers) / n:.3f}")
    print(f"peak RSS: importer {s1.ru_maxrss // 1024} MB, largest worker {c1.ru_maxrss // 1024} MB")
    """
)


def first_months(corpus: Path, work: Path, limit: int) -> tuple[Path, int]:
    sys.path.insert(0, str(ROOT / "src"))
    from mailvault.sources.files import ImportItem, iter_items

    def key(path: Path) -> tuple[int, int]:
        year, month = path.stem.split("-")
        return int(year), MONTHS.split().index(month)

    target = work / "subset"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    count = 0
    for month in sorted(corpus.glob("*.txt"), key=key):
        count += sum(isinstance(i, ImportItem) for i in iter_items(month, allowed_roots=None))
        os.link(month, target / month.name)
        if count >= limit:
            break
    return target, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-cpu")
    args = parser.parse_args()
    work = args.workdir.resolve()
    subset, count = first_months(unpack(work), work, args.messages)
    print(f"{count} messages in {len(list(subset.iterdir()))} months", flush=True)
    var = work / "mailvault"
    shutil.rmtree(var, ignore_errors=True)
    env = mailvault_env(var)
    setup_tenant(env)
    env["BENCH_PATH"] = str(subset)
    subprocess.run([BIN / "mailvault", "shell", "-c", CHILD], env=env, check=True)


if __name__ == "__main__":
    main()
