"""Forms of both front doors. Querysets are set in ``__init__`` (never at import time):
the tenant-scoped managers need the request's tenant to be active."""

from __future__ import annotations

from typing import Any

from django import forms

from mailvault.accounts.models import Domain, Group, User
from mailvault.accounts.passwords import MailvaultPasswordValidator
from mailvault.accounts.roles import ROLE_DESCRIPTIONS, Role
from mailvault.archive.models import Mailbox


class LoginForm(forms.Form):
    username = forms.CharField(
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class UsernameForm(forms.Form):
    username = forms.CharField(
        max_length=254,
        label="Username",
        help_text="Your username looks like an e-mail address: name@domain.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )


class PasswordOnlyForm(forms.Form):
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True})
    )


class TotpForm(forms.Form):
    code = forms.CharField(
        max_length=10,
        label="Authentication code",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )
    trust_device = forms.BooleanField(required=False, label="Trust this device for 14 days")


class PasswordChangeForm(forms.Form):
    old_password = forms.CharField(
        label="Current password",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    new_password = forms.CharField(
        label="New password",
        help_text=MailvaultPasswordValidator().get_help_text(),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    confirm_password = forms.CharField(
        label="Repeat new password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new_password") != data.get("confirm_password"):
            self.add_error("confirm_password", "The two passwords differ.")
        return data


class MfaConfirmForm(forms.Form):
    code = forms.CharField(
        max_length=10,
        label="Code from your authenticator app",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class _GroupsField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class UserCreateForm(forms.Form):
    local_part = forms.CharField(max_length=64, label="Name")
    domain = forms.ChoiceField(label="Domain")
    display_name = forms.CharField(max_length=200, required=False, label="Full name")
    password = forms.CharField(
        required=False,
        label="Initial password",
        help_text="Leave empty to generate one. The user must change it at first login.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    groups = _GroupsField(
        queryset=Group.unscoped.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        domain_field = self.fields["domain"]
        assert isinstance(domain_field, forms.ChoiceField)
        domain_field.choices = [(d.name, d.name) for d in Domain.objects.all()]
        groups_field = self.fields["groups"]
        assert isinstance(groups_field, forms.ModelMultipleChoiceField)
        groups_field.queryset = Group.objects.all()


class UserEditForm(forms.Form):
    display_name = forms.CharField(max_length=200, required=False, label="Full name")
    is_active = forms.BooleanField(required=False, label="Enabled")
    groups = _GroupsField(
        queryset=Group.unscoped.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        groups_field = self.fields["groups"]
        assert isinstance(groups_field, forms.ModelMultipleChoiceField)
        groups_field.queryset = Group.objects.all()


class _UsersField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.username)


class GroupForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(max_length=500, required=False)
    members = _UsersField(
        queryset=User.unscoped.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        members_field = self.fields["members"]
        assert isinstance(members_field, forms.ModelMultipleChoiceField)
        members_field.queryset = User.objects.all()


class GroupRolesForm(forms.Form):
    roles = forms.MultipleChoiceField(
        choices=[(r.value, f"{r.label} — {ROLE_DESCRIPTIONS[r]}") for r in Role],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class DomainForm(forms.Form):
    name = forms.CharField(max_length=253, label="Domain name")


class _GroupNameField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class _OwnerField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.username)


class MailboxForm(forms.Form):
    primary_address = forms.CharField(max_length=254, label="Primary address")
    display_name = forms.CharField(max_length=200, required=False, label="Name")
    kind = forms.ChoiceField(choices=Mailbox.Kind.choices, label="Kind")
    secondary_addresses = forms.CharField(
        required=False,
        label="Secondary addresses",
        help_text="One per line. Mail to these addresses is filed into this mailbox too.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    owner = _OwnerField(queryset=User.unscoped.none(), required=False, label="Owner")
    shared_with = _GroupNameField(
        queryset=Group.unscoped.none(),
        required=False,
        label="Shared with groups",
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, editing: Mailbox | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner_field = self.fields["owner"]
        assert isinstance(owner_field, forms.ModelChoiceField)
        owner_field.queryset = User.objects.all()
        shared_field = self.fields["shared_with"]
        assert isinstance(shared_field, forms.ModelMultipleChoiceField)
        shared_field.queryset = Group.objects.all()
        if editing is not None:
            del self.fields["primary_address"]
            del self.fields["kind"]
            if editing.is_synchronized:
                del self.fields["display_name"]
