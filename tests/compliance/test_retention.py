"""Retention policies: longest wins, reference dates, future dates, filters, the default
policy, snapshots, dry runs, the scheduled job, and a property test over random worlds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailvault.archive.models import Message
from mailvault.compliance import consistency, deletion, holds, retention
from mailvault.compliance.jobs import RETENTION
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import RetentionPolicy
from mailvault.ingestion.types import Target
from mailvault.jobs import services as job_services
from mailvault.jobs.models import JobRun
from mailvault.jobs.runner import execute_run

from .retention_world import World, keeper_fixture, mail  # noqa: F401

NOW = timezone.now()


def days_ago(n: int) -> datetime:
    return NOW - timedelta(days=n)


def policy(name: str, days: int | None, **kw: object) -> RetentionPolicy:
    return retention.save_policy(RetentionPolicy(name=name, period_days=days, **kw), actor=None)


def deactivate_default() -> None:
    default = retention.ensure_default_policy()
    default.enabled = False
    retention.save_policy(default, actor=None)


def alive(*messages: Message) -> set[int]:
    return set(Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("pk", flat=True))


def test_default_policy_keeps_everything_and_cannot_be_deleted(keeper: World) -> None:
    old = keeper.put(mail("ancient"), archived_at=days_ago(5000))
    policy("short", 10)
    retention.run(now=NOW)
    assert alive(old) == {old.pk}  # the active keep-forever default covers it
    default = retention.ensure_default_policy()
    with pytest.raises(retention.PolicyError):
        retention.delete_policy(default, actor=None)
    deactivate_default()
    report = retention.run(now=NOW)
    assert report.deleted == [old.pk]


def test_longest_retention_wins_and_filters_and(keeper: World) -> None:
    deactivate_default()
    invoice = keeper.put(
        mail("Invoice 42", "amount due", sender="billing@vendor.example"), archived_at=days_ago(50)
    )
    newsletter = keeper.put(mail("Weekly news", "unsubscribe"), archived_at=days_ago(50))
    invoice_from_other = keeper.put(
        mail("Invoice 7", "amount", sender="x@other.example"), archived_at=days_ago(50)
    )
    policy("everything 30 days", 30)
    policy(
        "invoices 10 years",
        3650,
        scope=RetentionPolicy.Scope.FILTERED,
        subject_terms="invoice",
        from_terms="*vendor.example",
    )
    dry = retention.run(now=NOW, dry_run=True)
    assert set(dry.would_delete) == {newsletter.pk, invoice_from_other.pk}
    assert alive(invoice, newsletter, invoice_from_other) == {
        invoice.pk,
        newsletter.pk,
        invoice_from_other.pk,
    }  # a dry run deletes nothing
    retention.run(now=NOW)
    assert alive(invoice, newsletter, invoice_from_other) == {invoice.pk}


def test_message_date_reference_and_future_dates(keeper: World) -> None:
    deactivate_default()
    policy("by message date", 100, reference=RetentionPolicy.Reference.MESSAGE_DATE)
    old_mail = keeper.put(
        mail("from 2020", date="Wed, 01 Jan 2020 10:00:00 +0000"), archived_at=days_ago(5)
    )
    future = keeper.put(
        mail("from 2099", date="Thu, 01 Jan 2099 10:00:00 +0000"), archived_at=days_ago(50)
    )
    retention.run(now=NOW)
    # Written in 2020: expired by its date though archived 5 days ago.
    assert alive(old_mail, future) == {future.pk}
    # Dated in the future: counted from its archive date, so it goes after 100 days.
    retention.run(now=NOW + timedelta(days=51))
    assert alive(future) == set()


def test_attachment_name_and_recipient_filters(keeper: World) -> None:
    deactivate_default()
    policy(
        "scanned pdf", 1, scope=RetentionPolicy.Scope.FILTERED, attachment_name_terms="scan .pdf"
    )
    policy("to the board", 1, scope=RetentionPolicy.Scope.FILTERED, recipient_terms="board@keeper")
    scan = keeper.put(
        mail("copier", attachment=("Scan_0001.PDF", "aGVsbG8=")), archived_at=days_ago(3)
    )
    other_pdf = keeper.put(
        mail("report", attachment=("report.pdf", "aGVsbG8=")), archived_at=days_ago(3)
    )
    bcc_board = keeper.put(
        mail("quiet note", to="someone@keeper"), archived_at=days_ago(3), envelope=["board@keeper"]
    )
    retention.run(now=NOW)
    assert alive(scan, other_pdf, bcc_board) == {other_pdf.pk}


def test_policy_edited_while_running_uses_the_snapshot(keeper: World) -> None:
    deactivate_default()
    victims = [keeper.put(mail(f"m{i}"), archived_at=days_ago(40)) for i in range(3)]
    short = policy("30 days", 30)

    def edit_midway() -> None:
        RetentionPolicy.objects.filter(pk=short.pk).update(period_days=3650)

    report = retention.run(now=NOW, check=edit_midway)
    assert sorted(report.deleted) == sorted(m.pk for m in victims)
    more = keeper.put(mail("later"), archived_at=days_ago(40))
    assert retention.run(now=NOW).deleted == []  # the edit counts from the next run
    assert alive(more) == {more.pk}


def test_crash_mid_run_is_finished_by_the_next_run(
    keeper: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    deactivate_default()
    monkeypatch.setattr(deletion, "BATCH", 2)
    messages = [keeper.put(mail(f"bulk {i}"), archived_at=days_ago(40)) for i in range(5)]
    policy("30 days", 30)
    calls = {"n": 0}

    def crash_after_first_batch() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("worker killed")

    with pytest.raises(KeyboardInterrupt):
        retention.run(now=NOW, check=crash_after_first_batch)
    assert len(alive(*messages)) == 3  # one committed batch of two went
    assert consistency.check().ok
    retention.run(now=NOW)
    assert alive(*messages) == set()
    deletion.compact_store()
    assert consistency.check().ok


def test_scheduled_job_runs_policies_and_keeps_held_mail(keeper: World) -> None:
    deactivate_default()
    policy("30 days", 30)
    held = keeper.put(mail("held"), archived_at=days_ago(40))
    gone = keeper.put(mail("gone"), Target(keeper.other, "Inbox"), archived_at=days_ago(40))
    holds.create_hold(
        name="Case", kind=LegalHold.Kind.MAILBOX, reason="r", actor=None, mailbox=keeper.inbox
    )
    run = job_services.run_now(RETENTION, retention.settings())
    assert execute_run(run.pk) == JobRun.Status.FINISHED
    assert alive(held, gone) == {held.pk}
    texts = " ".join(m.text for m in run.messages.all())
    assert "1 deleted" in texts and "1 under legal hold" in texts, texts


# --- the property: nothing held or younger than its retention is ever deleted ----------

policy_st = st.tuples(
    st.one_of(st.none(), st.integers(min_value=0, max_value=400)),  # period (None: forever)
    st.sampled_from(["archive", "message"]),
    st.sampled_from(["", "alpha", "beta"]),  # subject filter ("" = all messages)
)
message_st = st.tuples(
    st.integers(min_value=0, max_value=500),  # archived days ago
    st.integers(min_value=-300, max_value=800),  # message date days ago (negative: future)
    st.sampled_from(["alpha", "beta", "gamma"]),
    st.booleans(),  # in the other mailbox
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    messages=st.lists(message_st, min_size=1, max_size=6),
    policies=st.lists(policy_st, min_size=0, max_size=3),
    default_on=st.booleans(),
    floor=st.integers(min_value=0, max_value=100),
    hold=st.sampled_from(["none", "mailbox", "query"]),
)
def test_property_nothing_held_or_young_is_deleted(
    keeper: World,
    messages: list[tuple[int, int, str, bool]],
    policies: list[tuple[int | None, str, str]],
    default_on: bool,
    floor: int,
    hold: str,
) -> None:
    # Start from an empty archive (deleted properly: index and store follow).
    LegalHold.objects.all().delete()
    settings_row = deletion.retention_settings()
    settings_row.minimum_retention_days = 0
    settings_row.save()
    deletion.delete_messages(
        Message.objects.values_list("pk", flat=True),
        purpose=deletion.Purpose.COMPLIANCE,
        reason="reset",
        actor=None,
        all_or_nothing=True,
    )
    RetentionPolicy.objects.filter(is_default=False).delete()
    default = retention.ensure_default_policy()
    default.enabled = default_on
    retention.save_policy(default, actor=None)
    settings_row.minimum_retention_days = floor
    settings_row.save()
    saved = []
    for i, (period, reference, subject) in enumerate(policies):
        saved.append(
            policy(
                f"p{i}",
                period,
                reference=reference,
                scope="filtered" if subject else "all",
                subject_terms=subject,
            )
        )
    if hold == "mailbox":
        holds.create_hold(
            name="h", kind=LegalHold.Kind.MAILBOX, reason="r", actor=None, mailbox=keeper.other
        )
    elif hold == "query":
        holds.create_hold(name="h", kind=LegalHold.Kind.QUERY, reason="r", actor=None, query="beta")
    stored = []
    for n, (archived, dated, subject, other) in enumerate(messages):
        date = (NOW - timedelta(days=dated)).astimezone(UTC)
        raw = mail(f"{subject} {n}", date=date.strftime("%a, %d %b %Y %H:%M:%S +0000"))
        target = Target(keeper.other if other else keeper.inbox, "Inbox")
        stored.append((keeper.put(raw, target, archived_at=days_ago(archived)), subject, other))
    retention.run(now=NOW)
    remaining = set(Message.objects.values_list("pk", flat=True))
    for message, subject, other in stored:
        held = (hold == "mailbox" and other) or (hold == "query" and subject == "beta")
        young = message.archived_at > NOW - timedelta(days=floor)
        covering = [(p, ref) for p, ref, filt in policies if not filt or filt == subject]
        if default_on:
            covering.append((None, "archive"))
        expired = bool(covering) and all(
            period is not None
            and retention.reference_date(message, ref) <= NOW - timedelta(days=period)
            for period, ref in covering
        )
        # Never deleted when held, young or unexpired; always deleted otherwise.
        assert (message.pk not in remaining) == (expired and not held and not young), (
            message.subject,
            held,
            young,
            covering,
        )
    assert consistency.check().ok
