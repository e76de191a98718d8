"""Mailboxes and journal endpoints."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from mailvault.api.serializers import archive as s
from mailvault.api.views.base import ERRORS, ApiView, service_call
from mailvault.archive import services
from mailvault.archive.models import Mailbox
from mailvault.sources import journal_endpoints as journal
from mailvault.sources.models import JournalEndpoint


class MailboxList(ApiView):
    serializer_class = s.MailboxSerializer

    def get_queryset(self) -> QuerySet[Mailbox]:
        return Mailbox.objects.prefetch_related("addresses", "shared_with").order_by(
            "primary_address"
        )

    @extend_schema(responses={200: s.MailboxSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.MailboxSerializer(page, many=True).data)

    @extend_schema(
        request=s.MailboxCreateSerializer, responses={201: s.MailboxSerializer, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        form = s.MailboxCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        with service_call():
            mailbox = services.create_mailbox(
                data["primary_address"],
                display_name=data["display_name"],
                kind=data["kind"],
                owner=data["owner"],
                shared_with=data["shared_with"],
                secondary_addresses=data["secondary_addresses"],
            )
        return Response(s.MailboxSerializer(mailbox).data, status=status.HTTP_201_CREATED)


class MailboxDetail(ApiView):
    serializer_class = s.MailboxSerializer

    def _mailbox(self, mailbox_id: int) -> Mailbox:
        return get_object_or_404(Mailbox.objects, pk=mailbox_id)

    @extend_schema(responses={200: s.MailboxSerializer, **ERRORS})
    def get(self, request: Request, mailbox_id: int) -> Response:
        return Response(s.MailboxSerializer(self._mailbox(mailbox_id)).data)

    @extend_schema(
        request=s.MailboxUpdateSerializer, responses={200: s.MailboxSerializer, **ERRORS}
    )
    def patch(self, request: Request, mailbox_id: int) -> Response:
        mailbox = self._mailbox(mailbox_id)
        form = s.MailboxUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        current = [a.address for a in mailbox.addresses.all() if not a.is_primary]
        with service_call():
            services.update_mailbox(
                mailbox,
                display_name=data.get("display_name", mailbox.display_name),
                owner=data.get("owner", mailbox.owner),
                shared_with=data.get("shared_with", list(mailbox.shared_with.all())),
                secondary_addresses=data.get("secondary_addresses", current),
            )
        return Response(s.MailboxSerializer(self._mailbox(mailbox_id)).data)


class JournalEndpointList(ApiView):
    serializer_class = s.JournalEndpointSerializer

    def get_queryset(self) -> QuerySet[JournalEndpoint]:
        return JournalEndpoint.objects.order_by("name", "pk")

    @extend_schema(responses={200: s.JournalEndpointSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.JournalEndpointSerializer(page, many=True).data)

    @extend_schema(
        request=s.JournalEndpointCreateSerializer,
        responses={201: s.JournalEndpointSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        form = s.JournalEndpointCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        with service_call():
            endpoint = journal.create_endpoint(
                data["name"],
                data["mailbox"],
                auth_username=data["auth_username"],
                auth_password=data["auth_password"],
                allowed_networks=data["allowed_networks"],
            )
        return Response(s.JournalEndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class JournalEndpointDetail(ApiView):
    serializer_class = s.JournalEndpointSerializer

    def _endpoint(self, endpoint_id: int) -> JournalEndpoint:
        return get_object_or_404(JournalEndpoint.objects, pk=endpoint_id)

    @extend_schema(responses={200: s.JournalEndpointSerializer, **ERRORS})
    def get(self, request: Request, endpoint_id: int) -> Response:
        return Response(s.JournalEndpointSerializer(self._endpoint(endpoint_id)).data)

    @extend_schema(
        request=s.JournalEndpointUpdateSerializer,
        responses={200: s.JournalEndpointSerializer, **ERRORS},
    )
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = self._endpoint(endpoint_id)
        form = s.JournalEndpointUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        auth = None
        if data["remove_auth"]:
            auth = journal.AuthChange(remove=True)
        elif "auth_username" in data or "auth_password" in data:
            auth = journal.AuthChange(
                username=data.get("auth_username", endpoint.auth_username),
                password=data.get("auth_password", ""),
            )
        with service_call():
            journal.update_endpoint(
                endpoint,
                name=data.get("name", endpoint.name),
                mailbox=data.get("mailbox", endpoint.mailbox),
                auth=auth,
                allowed_networks=data.get("allowed_networks", endpoint.allowed_networks),
            )
            if "enabled" in data:
                journal.set_enabled(endpoint, data["enabled"])
        return Response(s.JournalEndpointSerializer(self._endpoint(endpoint_id)).data)

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request: Request, endpoint_id: int) -> Response:
        journal.delete_endpoint(self._endpoint(endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
