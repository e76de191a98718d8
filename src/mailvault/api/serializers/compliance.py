"""Secrets (never their values), the audit log, retention policies, legal holds, exports."""

from __future__ import annotations

from rest_framework import serializers

from mailvault.accounts.secrets import Secret, secret_usages
from mailvault.api.serializers.common import TenantObjectField
from mailvault.api.serializers.jobs import ProgressSerializer
from mailvault.archive.models import Folder, Mailbox
from mailvault.compliance.models_audit import ActorType, AuditEntry
from mailvault.compliance.models_export import ExportJob
from mailvault.compliance.models_holds import LegalHold
from mailvault.compliance.models_retention import RetentionPolicy


class SecretSerializer(serializers.ModelSerializer):
    used_by = serializers.SerializerMethodField()
    public_info = serializers.DictField(
        child=serializers.CharField(allow_blank=True), read_only=True
    )

    class Meta:
        model = Secret
        fields = [
            "id",
            "name",
            "kind",
            "username",
            "public_info",
            "created_at",
            "updated_at",
            "used_by",
        ]
        read_only_fields = fields

    def get_used_by(self, secret: Secret) -> list[str]:
        return secret_usages(secret)


class SecretValuesSerializer(serializers.Serializer):
    """The value of a secret; write-only: no answer ever contains it."""

    username = serializers.CharField(required=False, allow_blank=True, write_only=True)
    password = serializers.CharField(required=False, allow_blank=True, write_only=True)
    client_id = serializers.CharField(required=False, allow_blank=True, write_only=True)
    client_secret = serializers.CharField(required=False, allow_blank=True, write_only=True)
    token_endpoint = serializers.CharField(required=False, allow_blank=True, write_only=True)
    scope = serializers.CharField(required=False, allow_blank=True, write_only=True)
    certificate_pem = serializers.CharField(required=False, allow_blank=True, write_only=True)
    private_key_pem = serializers.CharField(required=False, allow_blank=True, write_only=True)


class SecretCreateSerializer(SecretValuesSerializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Secret.Kind.choices)


class SecretUpdateSerializer(SecretValuesSerializer):
    name = serializers.CharField(max_length=200, required=False)


class AuditEntrySerializer(serializers.ModelSerializer):
    actor_type = serializers.ChoiceField(choices=ActorType.choices, read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "seq",
            "time",
            "actor",
            "actor_type",
            "activity",
            "object",
            "request_id",
            "success",
            "message",
            "prev_hash",
            "entry_hash",
        ]
        read_only_fields = fields


class AuditValidationSerializer(serializers.Serializer):
    checked = serializers.IntegerField()
    intact = serializers.BooleanField()
    broken_seq = serializers.IntegerField(allow_null=True)
    problem = serializers.CharField(allow_blank=True)


class RetentionPolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = RetentionPolicy
        fields = [
            "id",
            "name",
            "enabled",
            "is_default",
            "period_days",
            "reference",
            "scope",
            "subject_terms",
            "body_terms",
            "attachment_content_terms",
            "attachment_name_terms",
            "from_terms",
            "recipient_terms",
            "execution_order",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class RetentionPolicyWriteSerializer(serializers.Serializer):
    """Every field optional on update; a create needs a name (the service says so)."""

    name = serializers.CharField(max_length=200, required=False)
    enabled = serializers.BooleanField(required=False)
    period_days = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    reference = serializers.ChoiceField(choices=RetentionPolicy.Reference.choices, required=False)
    scope = serializers.ChoiceField(choices=RetentionPolicy.Scope.choices, required=False)
    subject_terms = serializers.CharField(max_length=500, required=False, allow_blank=True)
    body_terms = serializers.CharField(max_length=500, required=False, allow_blank=True)
    attachment_content_terms = serializers.CharField(
        max_length=500, required=False, allow_blank=True
    )
    attachment_name_terms = serializers.CharField(max_length=500, required=False, allow_blank=True)
    from_terms = serializers.CharField(max_length=500, required=False, allow_blank=True)
    recipient_terms = serializers.CharField(max_length=500, required=False, allow_blank=True)
    execution_order = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)


class LegalHoldSerializer(serializers.ModelSerializer):
    mailbox = serializers.IntegerField(source="mailbox_id", allow_null=True, read_only=True)
    active = serializers.SerializerMethodField()

    class Meta:
        model = LegalHold
        fields = [
            "id",
            "name",
            "kind",
            "mailbox",
            "query",
            "reason",
            "created_by_name",
            "created_at",
            "active",
            "released_at",
            "released_by_name",
            "release_reason",
        ]
        read_only_fields = fields

    def get_active(self, hold: LegalHold) -> bool:
        return hold.released_at is None


class LegalHoldCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=LegalHold.Kind.choices)
    reason = serializers.CharField(max_length=5000)
    mailbox = TenantObjectField(Mailbox, required=False, allow_null=True, default=None)
    query = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class ReleaseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)


class ReleaseOutcomeSerializer(serializers.Serializer):
    released = serializers.BooleanField(help_text="False: waiting for a second approver.")
    hold = LegalHoldSerializer()


class ExportSerializer(serializers.ModelSerializer):
    mailbox = serializers.IntegerField(source="mailbox_id", allow_null=True, read_only=True)
    folder = serializers.IntegerField(source="folder_id", allow_null=True, read_only=True)

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "source",
            "format",
            "query",
            "mailbox",
            "folder",
            "status",
            "size",
            "message_count",
            "error",
            "created_at",
            "finished_at",
            "expires_at",
        ]
        read_only_fields = fields


class ExportCreateSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=ExportJob.Source.choices)
    format = serializers.ChoiceField(choices=ExportJob.Format.choices, default=ExportJob.Format.ZIP)
    query = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)
    mailbox = TenantObjectField(Mailbox, required=False, allow_null=True, default=None)
    folder = TenantObjectField(Folder, required=False, allow_null=True, default=None)


class ExportQueuedSerializer(ExportSerializer):
    job = serializers.IntegerField(allow_null=True, help_text="The job run of the export.")
    progress = ProgressSerializer(allow_null=True, help_text="The job's progress.")

    class Meta(ExportSerializer.Meta):
        fields = [*ExportSerializer.Meta.fields, "job", "progress"]
        read_only_fields = fields
