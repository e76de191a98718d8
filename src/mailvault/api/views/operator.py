"""The operator API: provision, list, suspend/resume, quotas, usage, offboard tenants.
Operator keys only (``mvo_…``, created with ``mailvault operator-api-key create``)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from mailvault.api import operator
from mailvault.api.errors import Conflict
from mailvault.api.permissions import IsOperator
from mailvault.api.serializers import operator as s
from mailvault.api.views.base import ERROR, ERRORS, ApiView, service_call
from mailvault.tenancy import provisioning
from mailvault.tenancy.models import Tenant


class OperatorView(ApiView):
    permission_classes = [IsOperator]


def _tenant(tenant_id: int) -> Tenant:
    return get_object_or_404(Tenant.objects, pk=tenant_id)


class TenantList(OperatorView):
    serializer_class = s.TenantSerializer

    def get_queryset(self) -> QuerySet[Tenant]:
        return Tenant.objects.order_by("name")

    @extend_schema(responses={200: s.TenantSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.TenantSerializer(page, many=True).data)

    @extend_schema(
        request=s.TenantCreateSerializer, responses={201: s.TenantProvisionedSerializer, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        """Provision a tenant with its first admin (its password is answered once)."""
        form = s.TenantCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        with service_call():
            made = provisioning.provision_tenant(
                form.validated_data["name"], form.validated_data["display_name"]
            )
        body = dict(s.TenantSerializer(made.tenant).data)
        body.update(admin_username=made.admin_username, admin_password=made.admin_password)
        return Response(body, status=status.HTTP_201_CREATED)


class TenantDetail(OperatorView):
    serializer_class = s.TenantSerializer

    @extend_schema(responses={200: s.TenantSerializer, **ERRORS})
    def get(self, request: Request, tenant_id: int) -> Response:
        return Response(s.TenantSerializer(_tenant(tenant_id)).data)

    @extend_schema(
        responses={200: s.TenantSerializer, 409: ERROR, **ERRORS},
        description="Offboard: delete all the tenant's data for good (its data key is "
        "destroyed first). The tenant stays listed as offboarded with its audit log. "
        "Refused with 409 while a legal hold is active.",
    )
    def delete(self, request: Request, tenant_id: int) -> Response:
        tenant = _tenant(tenant_id)
        try:
            operator.offboard(tenant)
        except operator.OffboardingError as exc:
            raise Conflict(str(exc)) from exc
        return Response(s.TenantSerializer(tenant).data)


class TenantSuspend(OperatorView):
    serializer_class = s.TenantSerializer
    target = Tenant.Status.SUSPENDED

    @extend_schema(request=None, responses={200: s.TenantSerializer, 409: ERROR, **ERRORS})
    def post(self, request: Request, tenant_id: int) -> Response:
        tenant = _tenant(tenant_id)
        try:
            with service_call():
                tenant = operator.set_status(tenant, self.target)
        except operator.OffboardingError as exc:
            raise Conflict(str(exc)) from exc
        return Response(s.TenantSerializer(tenant).data)


class TenantResume(TenantSuspend):
    target = Tenant.Status.ACTIVE


class TenantQuotas(OperatorView):
    serializer_class = s.QuotaSerializer

    @extend_schema(request=s.QuotaSerializer, responses={200: s.TenantSerializer, **ERRORS})
    def patch(self, request: Request, tenant_id: int) -> Response:
        """Set quotas; null means unlimited, a field left out stays as it is."""
        tenant = _tenant(tenant_id)
        form = s.QuotaSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        operator.set_quotas(tenant, **form.validated_data)
        return Response(s.TenantSerializer(tenant).data)


class TenantUsage(OperatorView):
    serializer_class = s.TenantUsageSerializer

    @extend_schema(responses={200: s.TenantUsageSerializer, **ERRORS})
    def get(self, request: Request, tenant_id: int) -> Response:
        used = operator.usage(_tenant(tenant_id))
        return Response(s.TenantUsageSerializer(used).data)
