"""The operator API: tenants and their quotas."""

from __future__ import annotations

from rest_framework import serializers

from mailvault.tenancy.models import Tenant


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = [
            "id",
            "name",
            "display_name",
            "status",
            "created_at",
            "max_users",
            "max_mailboxes",
            "max_storage_bytes",
        ]
        read_only_fields = fields


class TenantCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63, help_text="Also the tenant's default domain.")
    display_name = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True
    )


class TenantProvisionedSerializer(TenantSerializer):
    admin_username = serializers.CharField()
    admin_password = serializers.CharField(help_text="Shown once; to be changed at first login.")

    class Meta(TenantSerializer.Meta):
        fields = [*TenantSerializer.Meta.fields, "admin_username", "admin_password"]
        read_only_fields = fields


class QuotaSerializer(serializers.Serializer):
    max_users = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, required=False, allow_null=True
    )
    max_mailboxes = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, required=False, allow_null=True
    )
    max_storage_bytes = serializers.IntegerField(
        min_value=0, max_value=2**63 - 1, required=False, allow_null=True
    )


class TenantUsageSerializer(serializers.Serializer):
    users = serializers.IntegerField()
    mailboxes = serializers.IntegerField()
    messages = serializers.IntegerField()
    stored_bytes = serializers.IntegerField()
