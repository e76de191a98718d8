"""Forms of Admin Access > Directory Services > Secrets (write-only values)."""

from __future__ import annotations

from typing import Any

from django import forms

from mailvault.accounts.secrets import Secret

CERT_SOURCE_CHOICES = [("generate", "Generate a self-signed certificate"), ("upload", "Upload")]


class SecretForm(forms.Form):
    """One form for every kind; ``clean`` asks only for the fields of the chosen kind.

    When editing, the value fields may stay empty: the stored value is kept."""

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Secret.Kind.choices, label="Type")
    username = forms.CharField(max_length=320, required=False, label="User name")
    password = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), label="Password"
    )
    client_id = forms.CharField(max_length=320, required=False, label="Client id")
    client_secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), label="Client secret"
    )
    token_endpoint = forms.URLField(
        required=False, assume_scheme="https", label="Token endpoint (OAuth)"
    )
    scope = forms.CharField(max_length=500, required=False, label="Scope (OAuth)")
    cert_source = forms.ChoiceField(
        choices=CERT_SOURCE_CHOICES, required=False, initial="generate", label="Certificate"
    )
    common_name = forms.CharField(max_length=64, required=False, label="Common name (generate)")
    cert_file = forms.FileField(
        required=False, label="Certificate file (PEM with key, or PKCS#12 .pfx)"
    )
    cert_password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        label="Password of the uploaded file",
    )

    def __init__(self, *args: Any, editing: Secret | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing is not None:
            self.fields["kind"].disabled = True
            self.fields["kind"].initial = editing.kind
            self.fields["kind"].help_text = "The type of a secret is fixed."
            for name in ("password", "client_secret", "cert_file"):
                self.fields[name].help_text = "Leave empty to keep the stored value."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = self.editing.kind if self.editing else data.get("kind")
        replacing = self.editing is None
        if kind == Secret.Kind.BASIC:
            if not data.get("username"):
                self.add_error("username", "Enter the user name.")
            if replacing and not data.get("password"):
                self.add_error("password", "Enter the password.")
        elif kind == Secret.Kind.OAUTH_CLIENT:
            if not data.get("client_id"):
                self.add_error("client_id", "Enter the client id.")
            if replacing and not data.get("client_secret"):
                self.add_error("client_secret", "Enter the client secret.")
        elif kind == Secret.Kind.CERTIFICATE and replacing:
            if data.get("cert_source") == "upload" and not data.get("cert_file"):
                self.add_error("cert_file", "Choose the certificate file.")
            if data.get("cert_source") != "upload" and not data.get("common_name"):
                self.add_error("common_name", "Enter a common name for the certificate.")
        return data
