"""Folder synchronizations: CRUD and "run now" (202 with the job), thin over
``sources.foldersync.services``."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from mailvault.api.serializers import foldersync as s
from mailvault.api.serializers import jobs as job_s
from mailvault.api.views.base import ERROR, ERRORS, ApiView
from mailvault.api.views.sources import _refused, _run
from mailvault.sources.foldersync import services
from mailvault.sources.models_foldersync import FolderSynchronization


def _save(data: dict[str, Any], sync: FolderSynchronization | None) -> FolderSynchronization:
    """The synchronization's current values (a new one: the service's defaults), with the
    given ones on top."""
    current: dict[str, Any] = {}
    for f in fields(services.FolderSyncData):
        if sync is not None:
            current[f.name] = getattr(sync, f.name)
        else:
            current[f.name] = "" if f.default is MISSING else f.default
    known = {k: v for k, v in data.items() if k in current}
    try:
        return services.save_folder_sync(services.FolderSyncData(**{**current, **known}), sync=sync)
    except services.FolderSyncError as exc:
        raise _refused(exc) from exc


class FolderSyncList(ApiView):
    serializer_class = s.FolderSyncSerializer

    def get_queryset(self) -> QuerySet[FolderSynchronization]:
        return FolderSynchronization.objects.order_by("name", "pk")

    @extend_schema(responses={200: s.FolderSyncSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.FolderSyncSerializer(page, many=True).data)

    @extend_schema(
        request=s.FolderSyncWriteSerializer, responses={201: s.FolderSyncSerializer, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        form = s.FolderSyncWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        sync = _save(dict(form.validated_data), None)
        return Response(s.FolderSyncSerializer(sync).data, status=status.HTTP_201_CREATED)


class FolderSyncDetail(ApiView):
    serializer_class = s.FolderSyncSerializer

    def _sync(self, sync_id: int) -> FolderSynchronization:
        return get_object_or_404(FolderSynchronization.objects, pk=sync_id)

    @extend_schema(responses={200: s.FolderSyncSerializer, **ERRORS})
    def get(self, request: Request, sync_id: int) -> Response:
        return Response(s.FolderSyncSerializer(self._sync(sync_id)).data)

    @extend_schema(
        request=s.FolderSyncWriteSerializer, responses={200: s.FolderSyncSerializer, **ERRORS}
    )
    def patch(self, request: Request, sync_id: int) -> Response:
        sync = self._sync(sync_id)
        form = s.FolderSyncWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _save(dict(form.validated_data), sync)
        return Response(s.FolderSyncSerializer(self._sync(sync_id)).data)

    @extend_schema(
        responses={204: None, **ERRORS},
        description="Delete it with its schedules; refused while it runs. The archive keeps "
        "every message and folder.",
    )
    def delete(self, request: Request, sync_id: int) -> Response:
        try:
            services.delete_folder_sync(self._sync(sync_id))
        except services.FolderSyncError as exc:
            raise _refused(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class FolderSyncRun(ApiView):
    serializer_class = job_s.JobSerializer

    @extend_schema(request=None, responses={202: job_s.JobSerializer, 409: ERROR, **ERRORS})
    def post(self, request: Request, sync_id: int) -> Response:
        """Synchronize the folders now; answers the queued job."""
        sync = get_object_or_404(FolderSynchronization.objects, pk=sync_id)
        return _run(request, services.PROCESS_TYPE, sync)
