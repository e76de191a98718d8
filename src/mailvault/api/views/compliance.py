"""Secrets (Admin; values are write-only) and the audit log (Auditor; read and
validate) — thin over ``accounts.secrets`` and ``compliance.audit``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from mailvault.accounts import secrets
from mailvault.accounts.secrets import Secret
from mailvault.api.errors import ServiceRefused
from mailvault.api.permissions import IsAuditor
from mailvault.api.serializers import compliance as s
from mailvault.api.views.base import ERRORS, ApiView
from mailvault.compliance import audit
from mailvault.compliance.audit.search import AuditFilter
from mailvault.compliance.audit.search import search as search_audit
from mailvault.compliance.models_audit import AuditEntry
from mailvault.tenancy.context import current_tenant

VALUE_FIELDS = (
    "username",
    "password",
    "client_id",
    "client_secret",
    "token_endpoint",
    "scope",
    "certificate_pem",
    "private_key_pem",
)


def _values(data: dict[str, Any]) -> dict[str, str]:
    return {k: data[k] for k in VALUE_FIELDS if k in data}


def _refused(exc: Exception) -> ServiceRefused:
    return ServiceRefused(str(exc))


class SecretList(ApiView):
    serializer_class = s.SecretSerializer

    def get_queryset(self) -> QuerySet[Secret]:
        return Secret.objects.order_by("name")

    @extend_schema(responses={200: s.SecretSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.SecretSerializer(page, many=True).data)

    @extend_schema(request=s.SecretCreateSerializer, responses={201: s.SecretSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        form = s.SecretCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            secret = secrets.create_secret(data["name"], data["kind"], **_values(data))
        except (secrets.SecretError, ValueError) as exc:  # ValueError: an unreadable PEM
            raise _refused(exc) from exc
        return Response(s.SecretSerializer(secret).data, status=status.HTTP_201_CREATED)


class SecretDetail(ApiView):
    serializer_class = s.SecretSerializer

    def _secret(self, secret_id: int) -> Secret:
        return get_object_or_404(Secret.objects, pk=secret_id)

    @extend_schema(responses={200: s.SecretSerializer, **ERRORS})
    def get(self, request: Request, secret_id: int) -> Response:
        return Response(s.SecretSerializer(self._secret(secret_id)).data)

    @extend_schema(
        request=s.SecretUpdateSerializer,
        responses={200: s.SecretSerializer, **ERRORS},
        description="Rename and/or store a new value (the kind stays).",
    )
    def patch(self, request: Request, secret_id: int) -> Response:
        secret = self._secret(secret_id)
        form = s.SecretUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            secrets.replace_secret(secret, data.get("name", secret.name), **_values(data))
        except (secrets.SecretError, ValueError) as exc:
            raise _refused(exc) from exc
        return Response(s.SecretSerializer(self._secret(secret_id)).data)

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request: Request, secret_id: int) -> Response:
        try:
            secrets.delete_secret(self._secret(secret_id))
        except secrets.SecretError as exc:
            raise _refused(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    activity = serializers.CharField(required=False, allow_blank=True, max_length=120)
    actor = serializers.CharField(required=False, allow_blank=True, max_length=254)
    text = serializers.CharField(required=False, allow_blank=True, max_length=500)
    success = serializers.BooleanField(required=False, allow_null=True, default=None)


class AuditLog(ApiView):
    permission_classes = [IsAuditor]
    serializer_class = s.AuditEntrySerializer

    def get_queryset(self) -> QuerySet[AuditEntry]:
        form = AuditQuerySerializer(data=self.request.query_params)
        form.is_valid(raise_exception=True)
        return search_audit(AuditFilter(**form.validated_data))

    @extend_schema(
        parameters=[AuditQuerySerializer],
        responses={200: s.AuditEntrySerializer(many=True), **ERRORS},
        description="The tenant's audit log, newest first (the Admin Access search's limit).",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.AuditEntrySerializer(page, many=True).data)


class AuditValidation(ApiView):
    permission_classes = [IsAuditor]
    serializer_class = s.AuditValidationSerializer
    pagination_class = None

    @extend_schema(
        request=None,
        responses={200: s.AuditValidationSerializer, **ERRORS},
        description="Recompute the hash chain of the tenant's audit log.",
    )
    def post(self, request: Request) -> Response:
        result = audit.validate(current_tenant())
        body = {
            "checked": result.checked,
            "intact": result.intact,
            "broken_seq": result.broken_seq,
            "problem": result.problem,
        }
        return Response(s.AuditValidationSerializer(body).data)
