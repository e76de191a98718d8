"""Compliance actions with optional four-eyes approval (``RetentionSettings.four_eyes``).

With four-eyes on, a Compliance user's deletion or hold release becomes a pending
:class:`ApprovalRequest`; another Compliance user (never the requester) approves it, and
only then is it carried out, through the deletion guard as always. Holds still win at
approval time: a request whose messages came under hold meanwhile fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from mailvault.accounts.models import User
from mailvault.accounts.roles import Role
from mailvault.compliance import deletion, hooks
from mailvault.compliance.holds import release_hold
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import ApprovalRequest


class ApprovalError(ValueError):
    pass


@dataclass
class Outcome:
    done: bool  # carried out now (False: waiting for approval)
    request: ApprovalRequest | None = None
    report: deletion.DeletionReport | None = None


def four_eyes() -> bool:
    return deletion.retention_settings().four_eyes


def request_deletion(user: User, message_ids: list[int], reason: str) -> Outcome:
    """Delete now, or file a request; raises DeletionRefused / GuardFailure up front."""
    reason = reason.strip()
    if not reason:
        raise ApprovalError("Give a reason for the deletion.")
    ids = sorted(set(message_ids))
    if not ids:
        raise ApprovalError("Select the messages to delete.")
    if not four_eyes():
        report = deletion.delete_messages(
            ids,
            purpose=deletion.Purpose.COMPLIANCE,
            reason=reason,
            actor=user,
            all_or_nothing=True,
        )
        return Outcome(True, report=report)
    verdict = deletion.guard(ids, deletion.Purpose.COMPLIANCE)
    if verdict.refused:
        raise deletion.DeletionRefused(verdict.refused)
    request = ApprovalRequest.objects.create(
        kind=ApprovalRequest.Kind.DELETE,
        message_ids=ids,
        reason=reason,
        requested_by=user,
        requested_by_name=user.username,
    )
    hooks.record(
        "compliance.approval.request", user, request, f"Deletion of {len(ids)} message(s) requested"
    )
    return Outcome(False, request=request)


def request_release(user: User, hold: LegalHold, reason: str) -> Outcome:
    if not hold.active:
        raise ApprovalError(f"The legal hold {hold.name} is already released.")
    if not four_eyes():
        release_hold(hold, actor=user, reason=reason)
        return Outcome(True)
    request = ApprovalRequest.objects.create(
        kind=ApprovalRequest.Kind.RELEASE_HOLD,
        hold=hold,
        reason=reason.strip() or "release",
        requested_by=user,
        requested_by_name=user.username,
    )
    hooks.record("compliance.approval.request", user, request, f"Release of {hold} requested")
    return Outcome(False, request=request)


def _decide(request: ApprovalRequest, user: User) -> ApprovalRequest:
    locked = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
    if locked.status != ApprovalRequest.Status.PENDING:
        raise ApprovalError("This request was decided already.")
    if locked.requested_by_id == user.pk:
        raise ApprovalError("A second Compliance user must approve: not the requester.")
    if not user.has_role(Role.COMPLIANCE):
        raise ApprovalError("Only a Compliance user can decide this request.")
    return locked


def approve(request: ApprovalRequest, user: User) -> ApprovalRequest:
    with transaction.atomic():
        locked = _decide(request, user)
        locked.decided_by_name = user.username
        locked.decided_at = timezone.now()
        locked.status = ApprovalRequest.Status.APPROVED
        locked.save()
    try:
        if locked.kind == ApprovalRequest.Kind.DELETE:
            report = deletion.delete_messages(
                locked.message_ids,
                purpose=deletion.Purpose.COMPLIANCE,
                reason=f"{locked.reason} (requested by {locked.requested_by_name}, "
                f"approved by {user.username})",
                actor=user,
                all_or_nothing=True,
            )
            locked.outcome = f"{len(report.deleted)} message(s) deleted"
        else:
            assert locked.hold is not None
            release_hold(locked.hold, actor=user, reason=locked.reason)
            locked.outcome = f"Legal hold {locked.hold} released"
    except (deletion.DeletionRefused, deletion.GuardFailure, ValueError) as exc:
        locked.status = ApprovalRequest.Status.FAILED
        locked.outcome = str(exc)[:2000]
    locked.save(update_fields=["status", "outcome"])
    hooks.record(
        "compliance.approval.approve",
        user,
        locked,
        locked.outcome,
        success=locked.status == ApprovalRequest.Status.APPROVED,
    )
    return locked


def reject(request: ApprovalRequest, user: User) -> ApprovalRequest:
    with transaction.atomic():
        locked = _decide(request, user)
        locked.status = ApprovalRequest.Status.REJECTED
        locked.decided_by_name = user.username
        locked.decided_at = timezone.now()
        locked.save()
    hooks.record("compliance.approval.reject", user, locked, "Request rejected")
    return locked
