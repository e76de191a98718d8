"""Directory services and archiving profiles: CRUD and "run now" (202 with the job),
thin over ``directory.services`` and ``sources.profiles.services``."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from mailvault.api.errors import Conflict, ServiceRefused
from mailvault.api.serializers import jobs as job_s
from mailvault.api.serializers import sources as s
from mailvault.api.views.base import ERROR, ERRORS, ApiView, actor_name
from mailvault.api.views.jobs import queued_response
from mailvault.directory import services as directory
from mailvault.directory.models import DirectoryService
from mailvault.jobs import services as jobs
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles import services as profiles


def _refused(exc: Exception) -> ServiceRefused:
    field = str(getattr(exc, "field", "") or "")
    return ServiceRefused({"message": str(exc), **({field: [str(exc)]} if field else {})})


def _run(request: Request, process_type: str, config: Any) -> Response:
    try:
        run = jobs.run_now(process_type, config, triggered_by=actor_name(request))
    except jobs.AlreadyRunning as exc:
        raise Conflict({"message": str(exc), "job": exc.run.pk}) from exc
    return queued_response(run)


def _save_service(data: dict[str, Any], service: DirectoryService | None) -> DirectoryService:
    def value(name: str, default: Any) -> Any:
        return data.get(name, default)

    cur = service
    constraints = directory.Constraints(
        only_group_names=value("only_group_names", cur.only_group_names if cur else []),
        enabled_only=value("enabled_only", cur.enabled_only if cur else True),
        mailbox_only=value("mailbox_only", cur.mailbox_only if cur else True),
        remove_missing=value("remove_missing", cur.remove_missing if cur else True),
    )
    ldap = directory.LdapSettings(
        host=value("ldap_host", cur.ldap_host if cur else ""),
        port=value("ldap_port", cur.ldap_port if cur else None),
        security=value(
            "ldap_security", cur.ldap_security if cur else DirectoryService.Security.STARTTLS
        ),
        accept_all_certificates=value(
            "ldap_accept_all_certificates", cur.ldap_accept_all_certificates if cur else False
        ),
        ca_pem=value("ldap_ca_pem", cur.ldap_ca_pem if cur else ""),
        bind_dn=value("ldap_bind_dn", cur.ldap_bind_dn if cur else ""),
        bind_password=data.get("ldap_bind_password"),
        secret=value("ldap_secret", cur.ldap_secret if cur else None),
        base_dn=value("ldap_base_dn", cur.ldap_base_dn if cur else ""),
        user_filter=value("ldap_user_filter", cur.ldap_user_filter if cur else ""),
        group_filter=value("ldap_group_filter", cur.ldap_group_filter if cur else ""),
        attributes=data.get("ldap_attributes"),
    )
    kind = value("kind", cur.kind if cur else "")
    is_ldap = kind == DirectoryService.Kind.LDAP
    try:
        return directory.save_service(
            value("name", cur.name if cur else ""),
            kind,
            constraints,
            service=service,
            entra_tenant_id=value("entra_tenant_id", cur.entra_tenant_id if cur else ""),
            ldap=ldap if is_ldap else None,
        )
    except directory.DirectoryError as exc:
        raise _refused(exc) from exc


class DirectoryServiceList(ApiView):
    serializer_class = s.DirectoryServiceSerializer

    def get_queryset(self) -> QuerySet[DirectoryService]:
        return DirectoryService.objects.order_by("name", "pk")

    @extend_schema(responses={200: s.DirectoryServiceSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.DirectoryServiceSerializer(page, many=True).data)

    @extend_schema(
        request=s.DirectoryServiceWriteSerializer,
        responses={201: s.DirectoryServiceSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        form = s.DirectoryServiceWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        service = _save_service(dict(form.validated_data), None)
        return Response(s.DirectoryServiceSerializer(service).data, status=status.HTTP_201_CREATED)


class DirectoryServiceDetail(ApiView):
    serializer_class = s.DirectoryServiceSerializer

    def _service(self, service_id: int) -> DirectoryService:
        return get_object_or_404(DirectoryService.objects, pk=service_id)

    @extend_schema(responses={200: s.DirectoryServiceSerializer, **ERRORS})
    def get(self, request: Request, service_id: int) -> Response:
        return Response(s.DirectoryServiceSerializer(self._service(service_id)).data)

    @extend_schema(
        request=s.DirectoryServiceWriteSerializer,
        responses={200: s.DirectoryServiceSerializer, **ERRORS},
    )
    def patch(self, request: Request, service_id: int) -> Response:
        service = self._service(service_id)
        form = s.DirectoryServiceWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _save_service(dict(form.validated_data), service)
        return Response(s.DirectoryServiceSerializer(self._service(service_id)).data)

    @extend_schema(
        responses={204: None, **ERRORS},
        description="Delete the service and its synchronized users; refused while in use.",
    )
    def delete(self, request: Request, service_id: int) -> Response:
        try:
            directory.delete_service(self._service(service_id))
        except directory.DirectoryError as exc:
            raise _refused(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class DirectoryServiceSync(ApiView):
    serializer_class = job_s.JobSerializer

    @extend_schema(request=None, responses={202: job_s.JobSerializer, 409: ERROR, **ERRORS})
    def post(self, request: Request, service_id: int) -> Response:
        """Synchronize users now; answers the queued job."""
        service = get_object_or_404(DirectoryService.objects, pk=service_id)
        return _run(request, directory.PROCESS_TYPE, service)


def _save_profile(data: dict[str, Any], profile: ArchivingProfile | None) -> ArchivingProfile:
    """The profile's current values (a new one: the service's defaults), with the given
    ones on top."""
    current: dict[str, Any] = {}
    for f in fields(profiles.ProfileData):
        if profile is not None:
            current[f.name] = getattr(profile, f.name)
        else:
            current[f.name] = "" if f.default is MISSING else f.default
    try:
        return profiles.save_profile(profiles.ProfileData(**{**current, **data}), profile=profile)
    except profiles.ProfileError as exc:
        raise _refused(exc) from exc


class ArchivingProfileList(ApiView):
    serializer_class = s.ArchivingProfileSerializer

    def get_queryset(self) -> QuerySet[ArchivingProfile]:
        return ArchivingProfile.objects.order_by("name", "pk")

    @extend_schema(responses={200: s.ArchivingProfileSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ArchivingProfileSerializer(page, many=True).data)

    @extend_schema(
        request=s.ArchivingProfileWriteSerializer,
        responses={201: s.ArchivingProfileSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        form = s.ArchivingProfileWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        profile = _save_profile(dict(form.validated_data), None)
        return Response(s.ArchivingProfileSerializer(profile).data, status=status.HTTP_201_CREATED)


class ArchivingProfileDetail(ApiView):
    serializer_class = s.ArchivingProfileSerializer

    def _profile(self, profile_id: int) -> ArchivingProfile:
        return get_object_or_404(ArchivingProfile.objects, pk=profile_id)

    @extend_schema(responses={200: s.ArchivingProfileSerializer, **ERRORS})
    def get(self, request: Request, profile_id: int) -> Response:
        return Response(s.ArchivingProfileSerializer(self._profile(profile_id)).data)

    @extend_schema(
        request=s.ArchivingProfileWriteSerializer,
        responses={200: s.ArchivingProfileSerializer, **ERRORS},
    )
    def patch(self, request: Request, profile_id: int) -> Response:
        profile = self._profile(profile_id)
        form = s.ArchivingProfileWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _save_profile(dict(form.validated_data), profile)
        return Response(s.ArchivingProfileSerializer(self._profile(profile_id)).data)

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request: Request, profile_id: int) -> Response:
        try:
            profiles.delete_profile(self._profile(profile_id))
        except profiles.ProfileError as exc:
            raise _refused(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class ArchivingProfileRun(ApiView):
    serializer_class = job_s.JobSerializer

    @extend_schema(request=None, responses={202: job_s.JobSerializer, 409: ERROR, **ERRORS})
    def post(self, request: Request, profile_id: int) -> Response:
        """Archive now; answers the queued job."""
        profile = get_object_or_404(ArchivingProfile.objects, pk=profile_id)
        return _run(request, profiles.PROCESS_TYPE, profile)
