"""Admin Access > Directory Services > Secrets: write-only credentials and certificates."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.accounts import secrets
from mailvault.accounts.secrets import Secret, SecretError
from mailvault.web.access import admin_view
from mailvault.web.forms_secrets import SecretForm


def _values(kind: str, data: dict[str, Any], *, editing: bool) -> dict[str, str]:
    """The value fields for the service; when editing, empty means "keep the value"."""
    if kind == Secret.Kind.BASIC:
        if editing and not data.get("password"):
            return {}
        return {"username": data["username"], "password": data["password"]}
    if kind == Secret.Kind.OAUTH_CLIENT:
        if editing and not data.get("client_secret"):
            return {}
        return {
            "client_id": data["client_id"],
            "client_secret": data["client_secret"],
            "token_endpoint": data.get("token_endpoint") or "",
            "scope": data.get("scope") or "",
        }
    upload = data.get("cert_file")
    if data.get("cert_source") == "upload" and upload is not None:
        cert, key = secrets.load_uploaded_certificate(upload.read(), data.get("cert_password", ""))
    elif not editing and data.get("common_name"):
        cert, key = secrets.generate_certificate(data["common_name"])
    else:
        return {}
    return {"certificate_pem": cert, "private_key_pem": key}


@admin_view
@require_GET
def secret_list(request: HttpRequest) -> HttpResponse:
    rows = [{"secret": s, "usages": secrets.secret_usages(s)} for s in Secret.objects.all()]
    return render(request, "web/admin/secrets/list.html", {"rows": rows})


@admin_view
@require_http_methods(["GET", "POST"])
def secret_create(request: HttpRequest) -> HttpResponse:
    form = SecretForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            secret = secrets.create_secret(
                data["name"], data["kind"], **_values(data["kind"], data, editing=False)
            )
        except SecretError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Secret {secret.name} saved. Its value is not shown again.")
            return redirect("adminaccess:secrets")
    return render(request, "web/admin/secrets/form.html", {"form": form, "creating": True})


@admin_view
@require_http_methods(["GET", "POST"])
def secret_edit(request: HttpRequest, secret_id: int) -> HttpResponse:
    secret = get_object_or_404(Secret.objects, pk=secret_id)
    initial = {"name": secret.name, "kind": secret.kind}
    if secret.kind == Secret.Kind.BASIC:
        initial["username"] = secret.username
    elif secret.kind == Secret.Kind.OAUTH_CLIENT:
        initial.update(client_id=secret.username, **secret.public_info)
    form = SecretForm(request.POST or None, request.FILES or None, initial=initial, editing=secret)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            secrets.replace_secret(secret, data["name"], **_values(secret.kind, data, editing=True))
        except SecretError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Secret {secret.name} saved.")
            return redirect("adminaccess:secrets")
    return render(request, "web/admin/secrets/form.html", {"form": form, "edited": secret})


@admin_view
def secret_certificate(request: HttpRequest, secret_id: int) -> HttpResponse:
    """The public certificate (PEM), e.g. to upload to an Entra ID app registration."""
    secret = get_object_or_404(Secret.objects, pk=secret_id)  # a foreign id: 404 first
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    pem = secret.public_info.get("certificate_pem")
    if secret.kind != Secret.Kind.CERTIFICATE or not pem:
        raise Http404("not a certificate")
    response = HttpResponse(pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="secret-{secret.pk}.cer"'
    return response


@admin_view
@require_POST
def secret_delete(request: HttpRequest, secret_id: int) -> HttpResponse:
    secret = get_object_or_404(Secret.objects, pk=secret_id)
    name = secret.name
    try:
        secrets.delete_secret(secret)
    except SecretError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Secret {name} deleted.")
    return redirect("adminaccess:secrets")
