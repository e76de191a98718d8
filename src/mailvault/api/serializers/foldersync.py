"""Folder synchronizations (the secret of an IMAP one is referenced by id)."""

from __future__ import annotations

from rest_framework import serializers

from mailvault.accounts.secrets import Secret
from mailvault.api.serializers.common import TenantObjectField
from mailvault.directory.models import DirectoryService
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.sources.models_profiles import ArchivingProfile

FS = FolderSynchronization


class FolderSyncSerializer(serializers.ModelSerializer):
    directory_service = serializers.IntegerField(
        source="directory_service_id", allow_null=True, read_only=True
    )
    mailbox = serializers.IntegerField(source="mailbox_id", allow_null=True, read_only=True)
    secret = serializers.IntegerField(source="secret_id", allow_null=True, read_only=True)

    class Meta:
        model = FolderSynchronization
        fields = [
            "id",
            "name",
            "type",
            "mode",
            "directory_service",
            "entra_tenant_id",
            "address",
            "mailbox",
            "delete_in_mailbox",
            "delete_older_than_days",
            "synchronize_users",
            "host",
            "port",
            "security",
            "auth_method",
            "tls_verify",
            "ca_certificate",
            "secret",
            "skip_junk_trash",
            "last_success_at",
            "created_at",
        ]
        read_only_fields = fields


class FolderSyncWriteSerializer(serializers.Serializer):
    """On update, fields left out keep their value; ``type`` cannot change."""

    name = serializers.CharField(max_length=200, required=False)
    type = serializers.ChoiceField(choices=FS.Type.choices, required=False)
    mode = serializers.ChoiceField(choices=FS.Mode.choices, required=False)
    directory_service = TenantObjectField(
        DirectoryService,
        required=False,
        allow_null=True,
        help_text="Multiple mailboxes: the directory service whose users' mailboxes are "
        "synchronized (its tenant id is taken over).",
    )
    address = serializers.CharField(
        max_length=254,
        required=False,
        allow_blank=True,
        help_text="Single mailbox: its address (an archive mailbox with it must exist).",
    )
    delete_in_mailbox = serializers.ChoiceField(choices=FS.Delete.choices, required=False)
    delete_older_than_days = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    synchronize_users = serializers.BooleanField(required=False)
    host = serializers.CharField(max_length=253, required=False, allow_blank=True)
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False, allow_null=True)
    security = serializers.ChoiceField(choices=ArchivingProfile.Security.choices, required=False)
    auth_method = serializers.ChoiceField(choices=ArchivingProfile.Auth.choices, required=False)
    tls_verify = serializers.BooleanField(required=False)
    ca_certificate = serializers.CharField(required=False, allow_blank=True)
    secret = TenantObjectField(Secret, required=False, allow_null=True)
    skip_junk_trash = serializers.BooleanField(required=False)
