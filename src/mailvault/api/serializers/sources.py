"""Directory services and archiving profiles (secrets are referenced by id; passwords
are write-only)."""

from __future__ import annotations

from rest_framework import serializers

from mailvault.accounts.secrets import Secret
from mailvault.api.serializers.common import TenantObjectField
from mailvault.archive.models import Mailbox
from mailvault.directory.models import DirectoryService
from mailvault.sources.models_profiles import ArchivingProfile

PROFILE_FIELDS = [
    "name",
    "type",
    "mode",
    "directory_service",
    "host",
    "port",
    "security",
    "auth_method",
    "tls_verify",
    "ca_certificate",
    "address",
    "secret",
    "mailbox",
    "include_folders",
    "exclude_folders",
    "skip_junk_trash",
    "older_than",
    "newer_than",
    "delete_in_source",
]


class DirectoryServiceSerializer(serializers.ModelSerializer):
    ldap_secret = serializers.IntegerField(source="ldap_secret_id", allow_null=True, read_only=True)
    ldap_attributes = serializers.DictField(child=serializers.CharField(), read_only=True)
    only_group_names = serializers.ListField(child=serializers.CharField(), read_only=True)
    has_bind_password = serializers.SerializerMethodField()

    class Meta:
        model = DirectoryService
        fields = [
            "id",
            "name",
            "kind",
            "created_at",
            "last_sync_at",
            "entra_tenant_id",
            "only_group_names",
            "enabled_only",
            "mailbox_only",
            "remove_missing",
            "ldap_host",
            "ldap_port",
            "ldap_security",
            "ldap_accept_all_certificates",
            "ldap_ca_pem",
            "ldap_bind_dn",
            "has_bind_password",
            "ldap_secret",
            "ldap_base_dn",
            "ldap_user_filter",
            "ldap_group_filter",
            "ldap_attributes",
        ]
        read_only_fields = fields

    def get_has_bind_password(self, service: DirectoryService) -> bool:
        return bool(service.ldap_bind_password_sealed)


class DirectoryServiceWriteSerializer(serializers.Serializer):
    """On update, fields left out keep their value; ``kind`` cannot change."""

    name = serializers.CharField(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=DirectoryService.Kind.choices, required=False)
    entra_tenant_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    only_group_names = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False
    )
    enabled_only = serializers.BooleanField(required=False)
    mailbox_only = serializers.BooleanField(required=False)
    remove_missing = serializers.BooleanField(required=False)
    ldap_host = serializers.CharField(max_length=253, required=False, allow_blank=True)
    ldap_port = serializers.IntegerField(
        min_value=1, max_value=65535, required=False, allow_null=True
    )
    ldap_security = serializers.ChoiceField(
        choices=DirectoryService.Security.choices, required=False
    )
    ldap_accept_all_certificates = serializers.BooleanField(required=False)
    ldap_ca_pem = serializers.CharField(required=False, allow_blank=True)
    ldap_bind_dn = serializers.CharField(max_length=500, required=False, allow_blank=True)
    ldap_bind_password = serializers.CharField(
        required=False, allow_blank=True, write_only=True, help_text="Left out: kept."
    )
    ldap_secret = TenantObjectField(Secret, required=False, allow_null=True)
    ldap_base_dn = serializers.CharField(max_length=500, required=False, allow_blank=True)
    ldap_user_filter = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    ldap_group_filter = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    ldap_attributes = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False
    )


class ArchivingProfileSerializer(serializers.ModelSerializer):
    directory_service = serializers.IntegerField(
        source="directory_service_id", allow_null=True, read_only=True
    )
    secret = serializers.IntegerField(source="secret_id", allow_null=True, read_only=True)
    mailbox = serializers.IntegerField(source="mailbox_id", allow_null=True, read_only=True)

    class Meta:
        model = ArchivingProfile
        fields = ["id", *PROFILE_FIELDS, "entra_tenant_id"]
        read_only_fields = fields


class ArchivingProfileWriteSerializer(serializers.Serializer):
    """On update, fields left out keep their value; ``type`` cannot change."""

    name = serializers.CharField(max_length=200, required=False)
    type = serializers.ChoiceField(choices=ArchivingProfile.Type.choices, required=False)
    mode = serializers.ChoiceField(choices=ArchivingProfile.Mode.choices, required=False)
    directory_service = TenantObjectField(DirectoryService, required=False, allow_null=True)
    host = serializers.CharField(max_length=253, required=False, allow_blank=True)
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False, allow_null=True)
    security = serializers.ChoiceField(choices=ArchivingProfile.Security.choices, required=False)
    auth_method = serializers.ChoiceField(choices=ArchivingProfile.Auth.choices, required=False)
    tls_verify = serializers.BooleanField(required=False)
    ca_certificate = serializers.CharField(required=False, allow_blank=True)
    address = serializers.CharField(max_length=254, required=False, allow_blank=True)
    secret = TenantObjectField(Secret, required=False, allow_null=True)
    mailbox = TenantObjectField(Mailbox, required=False, allow_null=True)
    include_folders = serializers.CharField(required=False, allow_blank=True)
    exclude_folders = serializers.CharField(required=False, allow_blank=True)
    skip_junk_trash = serializers.BooleanField(required=False)
    older_than = serializers.DateField(required=False, allow_null=True)
    newer_than = serializers.DateField(required=False, allow_null=True)
    delete_in_source = serializers.BooleanField(required=False)
