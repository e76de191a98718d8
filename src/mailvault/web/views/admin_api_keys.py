"""Admin Access > Setup > API Keys: create (the key is shown once), list, revoke.

A key acts for the admin who creates it and carries some of that admin's roles, so a key
never reaches further than its creator (an Admin without Reader cannot mint a key that
reads mail)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from mailvault.accounts.models import User
from mailvault.accounts.roles import ROLE_DESCRIPTIONS, Role
from mailvault.api import keys
from mailvault.api.models import ApiKey
from mailvault.web.access import admin_view, signed_in_user


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=200, help_text="What the key is for, e.g. “provisioning script”."
    )
    roles = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        help_text="The key may use these of your roles (never more than you hold).",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        roles = self.fields["roles"]
        assert isinstance(roles, forms.MultipleChoiceField)
        roles.choices = [
            (r, f"{Role(r).label} — {ROLE_DESCRIPTIONS[r]}") for r in keys.grantable_roles(user)
        ]


@admin_view
@require_http_methods(["GET", "POST"])
def api_key_list(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    form = ApiKeyForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        try:
            key, token = keys.create_key(
                form.cleaned_data["name"],
                user,
                form.cleaned_data["roles"],
                created_by=user.username,
            )
        except keys.ApiKeyError as exc:
            form.add_error(None, str(exc))
        else:
            return render(request, "web/admin/api_key_created.html", {"key": key, "token": token})
    context = {
        "keys": ApiKey.objects.select_related("user").all(),
        "form": form,
        "role_labels": {r.value: r.label for r in Role},
    }
    return render(request, "web/admin/api_keys.html", context)


@admin_view
@require_POST
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects, pk=key_id)
    keys.revoke_key(key)
    messages.success(request, f"API key {key.prefix} ({key.name}) revoked; it stops working now.")
    return redirect("adminaccess:api_keys")
