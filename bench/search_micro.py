"""Micro-benchmark of mailvault.search: indexing rate and query latency (not a test).

Run: .venv/bin/python bench/search_micro.py [--docs 20000] [--body-kb 5]
Prints docs/s for a bulk add of synthetic messages (~5 KB bodies) and p50/p95 latency of
20 representative queries, top 50 by date, in-process, over that index.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailvault.settings")
django.setup()

from mailvault.search import Address, IndexDocument, Scope, TenantIndex  # noqa: E402

QUERIES = [
    "meeting",
    "budget report",
    '"quarterly budget"',
    "auto*",
    "Me?er",
    "from:*example.com",
    "from:alice",
    "to:bob@corp.example.org",
    "subject:invoice",
    "attachment:*.pdf",
    "has:attachment",
    "size:>20KB",
    "date:2024-01-01..2024-03-31",
    "after:2024-06-01 project",
    "meeting OR budget",
    "project -cancelled",
    "(invoice OR receipt) has:attachment",
    "folder:inbox deadline",
    "regression model",
    "body:analysis subject:re",
]


def make_docs(n: int, body_kb: int, seed: int = 1) -> list[IndexDocument]:
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "an", "el", "or"]
    vocab = ["".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) for _ in range(20000)]
    vocab += [
        "meeting",
        "budget",
        "report",
        "quarterly",
        "automobile",
        "automatic",
        "meier",
        "meyer",
        "maier",
        "project",
        "cancelled",
        "invoice",
        "receipt",
        "deadline",
        "regression",
        "model",
        "analysis",
    ] * 20
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "meier", "meyer"]
    domains = ["example.com", "corp.example.org", "mail.test", "uni.edu"]
    start = datetime(2023, 1, 1, tzinfo=UTC)
    words_per_body = body_kb * 1024 // 7
    docs = []
    for i in range(n):
        body = " ".join(rng.choices(vocab, weights, k=words_per_body))
        att = rng.random() < 0.2
        docs.append(
            IndexDocument(
                message_id=i + 1,
                mailbox_ids=[rng.randint(1, 50)],
                date=start + timedelta(minutes=37 * i),
                archived_at=start,
                subject="Re: " + " ".join(rng.choices(vocab[:3000], k=6)),
                sender=Address(f"{rng.choice(names)}@{rng.choice(domains)}", "Some Name"),
                to=[Address(f"{rng.choice(names)}@{rng.choice(domains)}")],
                cc=[Address(f"{rng.choice(names)}@{rng.choice(domains)}")] if i % 3 else [],
                folder_paths=[rng.choice(["Inbox", "Sent", "Inbox/Projects"])],
                body=body,
                attachment_names=["scan.pdf"] if att else [],
                attachment_text="invoice total" if att else "",
                size=len(body) + rng.randint(500, 50_000),
                has_attachment=att,
            )
        )
    return docs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--body-kb", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-replace", action="store_true", help="skip the upsert deletes")
    args = ap.parse_args()
    docs = make_docs(args.docs, args.body_kb)
    mb = sum(len(d.body) for d in docs) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        index = TenantIndex.open("bench", base_dir=Path(tmp))
        t0, c0 = time.perf_counter(), time.process_time()
        index.add(docs, replace=not args.no_replace)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"indexed {len(docs)} docs ({mb:.0f} MB of body text) in {elapsed:.2f} s: "
            f"{len(docs) / elapsed:,.0f} docs/s (CPU {cpu:.2f} s over all threads, "
            f"{os.getloadavg()[0]:.1f} load average)"
        )
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        print(f"index size {size / 1e6:.1f} MB ({size / (mb * 1e6):.2f} x body text)")
        scopes = {
            "whole tenant": Scope.whole_tenant(),
            "reader (5 mailboxes)": Scope.mailboxes(range(1, 6)),
        }
        for label, scope in scopes.items():
            lat: list[float] = []
            cpu_lat: list[float] = []
            for _ in range(args.repeat):
                for q in QUERIES:
                    t, c = time.perf_counter(), time.process_time()
                    index.search(q, scope, sort="date", limit=50)
                    lat.append((time.perf_counter() - t) * 1000)
                    cpu_lat.append((time.process_time() - c) * 1000)
            cold = sorted(lat[: len(QUERIES)])
            for name, values in (("wall", lat), ("cpu", cpu_lat), ("wall first pass", cold)):
                values = sorted(values)
                p95 = values[max(0, round(len(values) * 0.95) - 1)]
                print(
                    f"{label}, {name}: {len(QUERIES)} queries x {args.repeat}, top 50 by date: "
                    f"p50 {statistics.median(values):.2f} ms, p95 {p95:.2f} ms, "
                    f"max {values[-1]:.2f} ms"
                )


if __name__ == "__main__":
    main()
