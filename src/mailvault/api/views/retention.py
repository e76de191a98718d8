"""Retention policies (Admin), legal holds (Admin or Compliance), exports (Compliance):
thin over ``compliance.retention``, ``compliance.holds``/``approvals``, ``compliance.export``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from mailvault.api.errors import Conflict, ServiceRefused
from mailvault.api.permissions import IsAdminOrCompliance, IsCompliance
from mailvault.api.serializers import compliance as s
from mailvault.api.views.base import ERROR, ERRORS, ApiView, principal
from mailvault.compliance import approvals, export, holds, retention
from mailvault.compliance.jobs import EXPORT
from mailvault.compliance.models_export import ExportJob
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import RetentionPolicy
from mailvault.jobs.models import JobRun
from mailvault.search.query import QuerySyntaxError


def _save_policy(request: Request, policy: RetentionPolicy, data: dict[str, Any]) -> None:
    for name, value in data.items():
        setattr(policy, name, value)
    try:
        retention.save_policy(policy, actor=principal(request).user)
    except retention.PolicyError as exc:
        field = str(getattr(exc, "field", "") or "")
        raise ServiceRefused(
            {"message": str(exc), **({field: [str(exc)]} if field else {})}
        ) from exc


class RetentionPolicyList(ApiView):
    serializer_class = s.RetentionPolicySerializer

    def get_queryset(self) -> QuerySet[RetentionPolicy]:
        retention.ensure_default_policy()
        return RetentionPolicy.objects.order_by("execution_order", "name", "pk")

    @extend_schema(responses={200: s.RetentionPolicySerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.RetentionPolicySerializer(page, many=True).data)

    @extend_schema(
        request=s.RetentionPolicyWriteSerializer,
        responses={201: s.RetentionPolicySerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        form = s.RetentionPolicyWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        policy = RetentionPolicy()
        _save_policy(request, policy, dict(form.validated_data))
        return Response(s.RetentionPolicySerializer(policy).data, status=status.HTTP_201_CREATED)


class RetentionPolicyDetail(ApiView):
    serializer_class = s.RetentionPolicySerializer

    def _policy(self, policy_id: int) -> RetentionPolicy:
        return get_object_or_404(RetentionPolicy.objects, pk=policy_id)

    @extend_schema(responses={200: s.RetentionPolicySerializer, **ERRORS})
    def get(self, request: Request, policy_id: int) -> Response:
        return Response(s.RetentionPolicySerializer(self._policy(policy_id)).data)

    @extend_schema(
        request=s.RetentionPolicyWriteSerializer,
        responses={200: s.RetentionPolicySerializer, **ERRORS},
    )
    def patch(self, request: Request, policy_id: int) -> Response:
        policy = self._policy(policy_id)
        form = s.RetentionPolicyWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _save_policy(request, policy, dict(form.validated_data))
        return Response(s.RetentionPolicySerializer(self._policy(policy_id)).data)

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request: Request, policy_id: int) -> Response:
        try:
            retention.delete_policy(self._policy(policy_id), actor=principal(request).user)
        except retention.PolicyError as exc:
            raise ServiceRefused(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class LegalHoldList(ApiView):
    permission_classes = [IsAdminOrCompliance]
    serializer_class = s.LegalHoldSerializer

    def get_queryset(self) -> QuerySet[LegalHold]:
        return LegalHold.objects.order_by("-created_at", "-pk")

    @extend_schema(responses={200: s.LegalHoldSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.LegalHoldSerializer(page, many=True).data)

    @extend_schema(
        request=s.LegalHoldCreateSerializer, responses={201: s.LegalHoldSerializer, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        form = s.LegalHoldCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            hold = holds.create_hold(
                name=data["name"],
                kind=data["kind"],
                reason=data["reason"],
                actor=principal(request).user,
                mailbox=data["mailbox"],
                query=data["query"],
            )
        except (holds.HoldError, QuerySyntaxError) as exc:
            raise ServiceRefused(str(exc)) from exc
        return Response(s.LegalHoldSerializer(hold).data, status=status.HTTP_201_CREATED)


class LegalHoldDetail(ApiView):
    permission_classes = [IsAdminOrCompliance]
    serializer_class = s.LegalHoldSerializer

    @extend_schema(responses={200: s.LegalHoldSerializer, **ERRORS})
    def get(self, request: Request, hold_id: int) -> Response:
        return Response(
            s.LegalHoldSerializer(get_object_or_404(LegalHold.objects, pk=hold_id)).data
        )


class LegalHoldRelease(ApiView):
    permission_classes = [IsAdminOrCompliance]
    serializer_class = s.ReleaseOutcomeSerializer

    @extend_schema(
        request=s.ReleaseSerializer,
        responses={200: s.ReleaseOutcomeSerializer, **ERRORS},
        description="Release the hold; with four-eyes on, this asks for a second approver.",
    )
    def post(self, request: Request, hold_id: int) -> Response:
        hold = get_object_or_404(LegalHold.objects, pk=hold_id)
        form = s.ReleaseSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            outcome = approvals.request_release(
                principal(request).user, hold, form.validated_data["reason"]
            )
        except (approvals.ApprovalError, holds.HoldError) as exc:
            raise ServiceRefused(str(exc)) from exc
        hold.refresh_from_db()
        body = {"released": outcome.done, "hold": hold}
        return Response(s.ReleaseOutcomeSerializer(body).data)


def _export_run(job: ExportJob) -> JobRun | None:
    return JobRun.objects.filter(process_type=EXPORT, config_id=str(job.pk)).order_by("-pk").first()


def _export_body(job: ExportJob) -> dict[str, Any]:
    """The export with its job's id and progress (the requester may not read the
    Admin's process log)."""
    run = _export_run(job)
    progress = None
    if run is not None:
        progress = {
            "done": run.progress_done,
            "total": run.progress_total,
            "percent": run.progress_percent,
        }
    return {**s.ExportSerializer(job).data, "job": run.pk if run else None, "progress": progress}


class ExportList(ApiView):
    permission_classes = [IsCompliance]
    serializer_class = s.ExportSerializer

    def get_queryset(self) -> QuerySet[ExportJob]:
        return ExportJob.objects.filter(requested_by=principal(self.request).user).order_by("-pk")

    @extend_schema(responses={200: s.ExportSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ExportSerializer(page, many=True).data)

    @extend_schema(
        request=s.ExportCreateSerializer,
        responses={202: s.ExportQueuedSerializer, **ERRORS},
        description="Queue an export; poll it (or its job) until it is ready, then download.",
    )
    def post(self, request: Request) -> Response:
        form = s.ExportCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            job = export.request_export(
                principal(request).acting_user(),
                source=data["source"],
                fmt=data["format"],
                query=data["query"],
                mailbox=data["mailbox"],
                folder=data["folder"],
            )
        except (export.ExportError, QuerySyntaxError) as exc:
            raise ServiceRefused(str(exc)) from exc
        body = _export_body(job)
        location = reverse("api:export_detail", kwargs={"export_id": job.pk})
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class ExportDetail(ApiView):
    permission_classes = [IsCompliance]
    serializer_class = s.ExportQueuedSerializer

    @extend_schema(responses={200: s.ExportQueuedSerializer, **ERRORS})
    def get(self, request: Request, export_id: int) -> Response:
        job = get_object_or_404(
            ExportJob.objects, pk=export_id, requested_by=principal(request).user
        )
        return Response(_export_body(job))


class ExportDownload(ApiView):
    permission_classes = [IsCompliance]
    serializer_class = s.ExportSerializer

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            409: ERROR,
            **ERRORS,
        }
    )
    def get(self, request: Request, export_id: int) -> Any:
        """The export's file (only its requester's key, while it has not expired)."""
        user = principal(request).user
        job = get_object_or_404(ExportJob.objects, pk=export_id, requested_by=user)
        if not export.downloadable(job, user):
            raise Conflict(f"Export {job.pk} is not ready or has expired.")
        content_type = (
            "application/zip" if job.format == ExportJob.Format.ZIP else "application/mbox"
        )
        return FileResponse(
            export.file_path(job).open("rb"),
            as_attachment=True,
            filename=job.file_name,
            content_type=content_type,
        )
