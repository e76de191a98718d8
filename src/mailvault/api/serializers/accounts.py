"""Users, groups with their roles, domains."""

from __future__ import annotations

from rest_framework import serializers

from mailvault.accounts.models import Domain, Group, User
from mailvault.accounts.roles import ROLE_DESCRIPTIONS, Role
from mailvault.api.serializers.common import TenantObjectField


class UserSerializer(serializers.ModelSerializer):
    email = serializers.CharField(read_only=True, help_text="May be empty.")
    groups = serializers.SerializerMethodField()
    roles = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "display_name",
            "email",
            "is_active",
            "source",
            "must_change_password",
            "totp_enabled",
            "created_at",
            "groups",
            "roles",
        ]
        read_only_fields = fields

    def get_groups(self, user: User) -> list[int]:
        return sorted(g.pk for g in user.user_groups.all())

    def get_roles(self, user: User) -> list[str]:
        return sorted(user.roles)


class UserCreateSerializer(serializers.Serializer):
    local_part = serializers.CharField(max_length=200)
    domain = serializers.CharField(max_length=253)
    display_name = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True
    )
    password = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        write_only=True,
        help_text="Leave out to have one generated (answered once as initial_password).",
    )
    must_change_password = serializers.BooleanField(required=False, default=True)
    groups = TenantObjectField(Group, many=True, required=False, default=list)


class UserCreatedSerializer(UserSerializer):
    initial_password = serializers.CharField(help_text="Shown once.")

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "initial_password"]
        read_only_fields = fields


class UserUpdateSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)
    groups = TenantObjectField(Group, many=True, required=False)


class PasswordSerializer(serializers.Serializer):
    password = serializers.CharField(help_text="The new password, shown once.")


class GroupSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()
    roles = serializers.SerializerMethodField()

    class Meta:
        model = Group
        fields = ["id", "name", "description", "source", "created_at", "members", "roles"]
        read_only_fields = fields

    def get_members(self, group: Group) -> list[int]:
        return sorted(u.pk for u in group.members.all())

    def get_roles(self, group: Group) -> list[str]:
        return sorted(group.role_set)


class GroupWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(
        max_length=500, required=False, default="", allow_blank=True
    )
    members = TenantObjectField(User, many=True, required=False, default=list)
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), required=False, default=list
    )


class GroupUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    members = TenantObjectField(User, many=True, required=False)
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), required=False
    )


class RoleSerializer(serializers.Serializer):
    id = serializers.ChoiceField(choices=Role.choices)
    name = serializers.CharField()
    description = serializers.CharField()

    @staticmethod
    def all_roles() -> list[dict[str, str]]:
        return [{"id": r.value, "name": r.label, "description": ROLE_DESCRIPTIONS[r]} for r in Role]


class DomainSerializer(serializers.ModelSerializer):
    txt_record = serializers.SerializerMethodField()

    class Meta:
        model = Domain
        fields = ["id", "name", "kind", "verified", "verified_at", "created_at", "txt_record"]
        read_only_fields = fields

    def get_txt_record(self, domain: Domain) -> str:
        return domain.txt_record if domain.verification_code else ""


class DomainCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=253)
