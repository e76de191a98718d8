"""Forms of Admin Access > Directory Services."""

from __future__ import annotations

from typing import Any

from django import forms

from mailvault.accounts.secrets import Secret
from mailvault.directory import ldap as ldap_connector
from mailvault.directory import services
from mailvault.directory.models import DirectoryService

ATTRIBUTE_FIELDS: dict[str, str] = {
    "id": "Unique id",
    "username": "User name",
    "display_name": "Display name",
    "mail": "Primary address",
    "addresses": "All addresses",
    "group_name": "Group name",
    "member": "Group member",
    "enabled_filter": "Enabled users filter",
}


class DirectoryServiceForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(label="Type", choices=DirectoryService.Kind.choices)
    entra_tenant_id = forms.CharField(
        label="Tenant ID", required=False, widget=forms.TextInput(attrs={"readonly": True})
    )
    only_group_names = forms.CharField(
        label="Only members of these groups",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One group name per line (nested groups count). Empty: every user.",
    )
    enabled_only = forms.BooleanField(label="Synchronize enabled users only", required=False)
    mailbox_only = forms.BooleanField(
        label="Only users with a mailbox", required=False, help_text="Entra: Exchange Online."
    )
    remove_missing = forms.BooleanField(
        label="Remove users and groups that left the directory",
        required=False,
        help_text="Off: such users are disabled and kept.",
    )
    ldap_host = forms.CharField(label="Server", required=False, max_length=253)
    ldap_port = forms.IntegerField(
        label="Port", required=False, min_value=1, max_value=65535, help_text="Empty: 389 or 636."
    )
    ldap_security = forms.ChoiceField(
        label="Encryption", choices=DirectoryService.Security.choices, required=False
    )
    ldap_accept_all_certificates = forms.BooleanField(
        label="Accept all certificates", required=False
    )
    ldap_ca_pem = forms.CharField(
        label="Trusted CA (PEM)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
    )
    ldap_secret = forms.ModelChoiceField(
        label="Credentials (secret)",
        queryset=Secret.objects.none(),
        required=False,
        help_text="Basic credentials: user name = bind DN. Or enter them below.",
    )
    ldap_bind_dn = forms.CharField(label="Bind DN", required=False, max_length=500)
    ldap_bind_password = forms.CharField(
        label="Bind password",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the stored one.",
    )
    ldap_base_dn = forms.CharField(label="Base DN", required=False, max_length=500)
    ldap_user_filter = forms.CharField(
        label="User filter",
        required=False,
        max_length=1000,
        help_text=f"Empty: {ldap_connector.DEFAULT_USER_FILTER}",
    )
    ldap_group_filter = forms.CharField(
        label="Group filter",
        required=False,
        max_length=1000,
        help_text=f"Empty: {ldap_connector.DEFAULT_GROUP_FILTER}",
    )
    ldap_preset = forms.ChoiceField(
        label="Attribute mapping",
        required=False,
        choices=[
            ("", "As entered below"),
            ("openldap", "OpenLDAP defaults"),
            ("ad", "Active Directory"),
        ],
    )

    def __init__(self, *args: Any, editing: DirectoryService | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        secret_field = self.fields["ldap_secret"]
        assert isinstance(secret_field, forms.ModelChoiceField)
        secret_field.queryset = Secret.objects.filter(kind=Secret.Kind.BASIC)
        defaults = (
            ldap_connector.attributes(editing) if editing else ldap_connector.DEFAULT_ATTRIBUTES
        )
        for key, label in ATTRIBUTE_FIELDS.items():
            self.fields[f"attr_{key}"] = forms.CharField(
                label=label, required=False, max_length=300, initial=defaults.get(key, "")
            )
        if editing is not None:
            kind = self.fields["kind"]
            kind.disabled = True
            kind.help_text = "The type is fixed after creation."

    def attribute_fields(self) -> list[forms.BoundField]:
        return [self[f"attr_{key}"] for key in ATTRIBUTE_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = self.editing.kind if self.editing else data.get("kind")
        if kind == DirectoryService.Kind.ENTRA and not data.get("entra_tenant_id"):
            self.add_error("entra_tenant_id", "Connect the tenant first (Connect Tenant).")
        return data

    def constraints(self) -> services.Constraints:
        data = self.cleaned_data
        return services.Constraints(
            only_group_names=[
                n for n in data.get("only_group_names", "").splitlines() if n.strip()
            ],
            enabled_only=bool(data.get("enabled_only")),
            mailbox_only=bool(data.get("mailbox_only")),
            remove_missing=bool(data.get("remove_missing")),
        )

    def ldap_settings(self) -> services.LdapSettings:
        data = self.cleaned_data
        preset = data.get("ldap_preset")
        if preset == "ad":
            attrs = dict(ldap_connector.AD_ATTRIBUTES)
        elif preset == "openldap":
            attrs = dict(ldap_connector.DEFAULT_ATTRIBUTES)
        else:
            attrs = {key: data.get(f"attr_{key}", "") for key in ATTRIBUTE_FIELDS}
        return services.LdapSettings(
            host=data.get("ldap_host", ""),
            port=data.get("ldap_port"),
            security=data.get("ldap_security") or DirectoryService.Security.STARTTLS,
            accept_all_certificates=bool(data.get("ldap_accept_all_certificates")),
            ca_pem=data.get("ldap_ca_pem", ""),
            bind_dn=data.get("ldap_bind_dn", ""),
            bind_password=data.get("ldap_bind_password") or None,
            secret=data.get("ldap_secret"),
            base_dn=data.get("ldap_base_dn", ""),
            user_filter=data.get("ldap_user_filter", ""),
            group_filter=data.get("ldap_group_filter", ""),
            attributes=attrs,
        )


def initial_for(service: DirectoryService) -> dict[str, Any]:
    return {
        "name": service.name,
        "kind": service.kind,
        "entra_tenant_id": service.entra_tenant_id,
        "only_group_names": "\n".join(service.only_group_names or []),
        "enabled_only": service.enabled_only,
        "mailbox_only": service.mailbox_only,
        "remove_missing": service.remove_missing,
        "ldap_host": service.ldap_host,
        "ldap_port": service.ldap_port,
        "ldap_security": service.ldap_security,
        "ldap_accept_all_certificates": service.ldap_accept_all_certificates,
        "ldap_ca_pem": service.ldap_ca_pem,
        "ldap_secret": service.ldap_secret_id,
        "ldap_bind_dn": service.ldap_bind_dn,
        "ldap_base_dn": service.ldap_base_dn,
        "ldap_user_filter": service.ldap_user_filter,
        "ldap_group_filter": service.ldap_group_filter,
    }


NEW_INITIAL: dict[str, Any] = {
    "kind": DirectoryService.Kind.ENTRA,
    "enabled_only": True,
    "mailbox_only": True,
    "remove_missing": True,
    "ldap_security": DirectoryService.Security.STARTTLS,
}
