"""Admin Access > User Management > Mailboxes (configuration only: admins read no mail)."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from mailvault.archive import services
from mailvault.archive.models import Mailbox
from mailvault.web.access import admin_view
from mailvault.web.forms import MailboxForm


@admin_view
def mailbox_list(request: HttpRequest) -> HttpResponse:
    mailboxes = (
        Mailbox.objects.select_related("owner")
        .prefetch_related("addresses", "shared_with")
        .annotate(message_count=Count("placements__message", distinct=True))
    )
    return render(request, "web/admin/mailboxes.html", {"mailboxes": mailboxes})


@admin_view
@require_http_methods(["GET", "POST"])
def mailbox_create(request: HttpRequest) -> HttpResponse:
    form = MailboxForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            mailbox = services.create_mailbox(
                data["primary_address"],
                display_name=data["display_name"],
                kind=data["kind"],
                owner=data["owner"],
                shared_with=data["shared_with"],
                secondary_addresses=services.parse_address_lines(data["secondary_addresses"]),
            )
        except services.MailboxError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Mailbox {mailbox.primary_address} created.")
            return redirect("adminaccess:mailboxes")
    return render(request, "web/admin/mailbox_form.html", {"form": form, "creating": True})


@admin_view
@require_http_methods(["GET", "POST"])
def mailbox_edit(request: HttpRequest, mailbox_id: int) -> HttpResponse:
    mailbox = get_object_or_404(Mailbox.objects, pk=mailbox_id)
    secondaries = mailbox.addresses.filter(is_primary=False).values_list("address", flat=True)
    initial = {
        "display_name": mailbox.display_name,
        "owner": mailbox.owner,
        "shared_with": list(mailbox.shared_with.all()),
        "secondary_addresses": "\n".join(secondaries),
    }
    form = MailboxForm(request.POST or None, initial=initial, editing=mailbox)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.update_mailbox(
                mailbox,
                display_name=data.get("display_name", mailbox.display_name),
                owner=data["owner"],
                shared_with=data["shared_with"],
                secondary_addresses=services.parse_address_lines(data["secondary_addresses"]),
            )
        except services.MailboxError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Mailbox {mailbox.primary_address} saved.")
            return redirect("adminaccess:mailboxes")
    return render(request, "web/admin/mailbox_form.html", {"form": form, "edited": mailbox})
