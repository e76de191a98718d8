"""Mailboxes and journal endpoints."""

from __future__ import annotations

from rest_framework import serializers

from mailvault.accounts.models import Group, User
from mailvault.api.serializers.common import TenantObjectField
from mailvault.archive.models import Mailbox
from mailvault.sources.models import JournalEndpoint


class MailboxSerializer(serializers.ModelSerializer):
    secondary_addresses = serializers.SerializerMethodField()
    shared_with = serializers.SerializerMethodField()
    owner = serializers.IntegerField(source="owner_id", allow_null=True, read_only=True)

    class Meta:
        model = Mailbox
        fields = [
            "id",
            "primary_address",
            "display_name",
            "kind",
            "owner",
            "shared_with",
            "secondary_addresses",
            "directory_service_name",
            "last_import_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_secondary_addresses(self, mailbox: Mailbox) -> list[str]:
        return sorted(a.address for a in mailbox.addresses.all() if not a.is_primary)

    def get_shared_with(self, mailbox: Mailbox) -> list[int]:
        return sorted(g.pk for g in mailbox.shared_with.all())


class MailboxCreateSerializer(serializers.Serializer):
    primary_address = serializers.CharField(max_length=254)
    display_name = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True
    )
    kind = serializers.ChoiceField(
        choices=Mailbox.Kind.choices, required=False, default=Mailbox.Kind.USER
    )
    owner = TenantObjectField(User, required=False, allow_null=True, default=None)
    shared_with = TenantObjectField(Group, many=True, required=False, default=list)
    secondary_addresses = serializers.ListField(
        child=serializers.CharField(max_length=254), required=False, default=list
    )


class MailboxUpdateSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    owner = TenantObjectField(User, required=False, allow_null=True)
    shared_with = TenantObjectField(Group, many=True, required=False)
    secondary_addresses = serializers.ListField(
        child=serializers.CharField(max_length=254), required=False
    )


class JournalEndpointSerializer(serializers.ModelSerializer):
    smtp_address = serializers.CharField(read_only=True)
    mailbox = serializers.IntegerField(source="mailbox_id", read_only=True)
    requires_auth = serializers.SerializerMethodField()

    class Meta:
        model = JournalEndpoint
        fields = [
            "id",
            "name",
            "smtp_address",
            "mailbox",
            "enabled",
            "auth_username",
            "requires_auth",
            "allowed_networks",
            "accepted",
            "rejected",
            "deferred",
            "last_received_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_requires_auth(self, endpoint: JournalEndpoint) -> bool:
        return bool(endpoint.auth_username and endpoint.auth_password_hash)


class JournalEndpointCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    mailbox = TenantObjectField(Mailbox)
    auth_username = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True
    )
    auth_password = serializers.CharField(
        required=False, default="", allow_blank=True, write_only=True
    )
    allowed_networks = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="CIDR networks, one per line."
    )


class JournalEndpointUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    mailbox = TenantObjectField(Mailbox, required=False)
    enabled = serializers.BooleanField(required=False)
    auth_username = serializers.CharField(max_length=200, required=False, allow_blank=True)
    auth_password = serializers.CharField(
        required=False, allow_blank=True, write_only=True, help_text="Empty keeps the stored one."
    )
    remove_auth = serializers.BooleanField(required=False, default=False)
    allowed_networks = serializers.CharField(required=False, allow_blank=True)
