"""Process types used only by the jobs tests (imported by the tests and test workers)."""

from __future__ import annotations

import time

from mailvault.jobs.context import JobContext, JobFailed
from mailvault.jobs.registry import process_type


@process_type("test.ok", "Test OK", timeout_seconds=60)
def ok(ctx: JobContext) -> None:
    for i in range(3):
        ctx.check_cancelled()
        ctx.progress(i + 1, 3)
    ctx.info("all good")


@process_type(
    "test.config",
    "Test with configuration",
    config_model="accounts.Group",
    resolve_name=lambda g: getattr(g, "name", ""),
)
def with_config(ctx: JobContext) -> None:
    ctx.info(f"configuration {getattr(ctx.config, 'name', '?')}")


@process_type("test.raise", "Test raise")
def boom(ctx: JobContext) -> None:
    ctx.info("about to fail")
    raise ValueError("boom in the job")


@process_type("test.job_failed", "Test failure the job explains")
def job_failed(ctx: JobContext) -> None:
    ctx.error("The server refused the password of archive@example.com.")
    raise JobFailed("login refused")


@process_type("test.job_failed_silent", "Test failure with no words of the job")
def job_failed_silent(ctx: JobContext) -> None:
    ctx.info("connecting")
    raise JobFailed("The server imap.example.com cannot be reached.")


@process_type("test.hang", "Test hang (cooperative)", timeout_seconds=1)
def hang(ctx: JobContext) -> None:
    while True:
        ctx.check_cancelled()
        time.sleep(0.02)


@process_type("test.hang_hard", "Test hang (ignores cancellation)", timeout_seconds=1)
def hang_hard(ctx: JobContext) -> None:
    time.sleep(3600)


@process_type("test.cancel_self", "Test cancel at a safe point")
def cancel_self(ctx: JobContext) -> None:
    from mailvault.jobs.services import cancel

    ctx.progress(1, 10)
    cancel(ctx.run, by="tester")
    ctx.info("still running until the safe point")
    ctx.check_cancelled()
    ctx.info("never reached")


@process_type("test.side_effect", "Test side effect", config_model="accounts.Group")
def side_effect(ctx: JobContext) -> None:
    ctx.info("side effect")
    time.sleep(0.02)


@process_type("test.slow", "Test slow", timeout_seconds=600)
def slow(ctx: JobContext) -> None:
    ctx.info("slow started")
    for _ in range(3000):
        ctx.check_cancelled()
        time.sleep(0.01)
