"""Admin Access > Archiving > Archiving Profiles: Microsoft 365, IMAP and POP3 mailboxes."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.jobs import services as jobs
from mailvault.sources.models_profiles import ArchivingProfile
from mailvault.sources.profiles import services
from mailvault.web.access import admin_view
from mailvault.web.forms_profiles import ProfileForm, initial_for
from mailvault.web.views.configurations import configuration_rows, run_now


@admin_view
@require_GET
def profile_list(request: HttpRequest) -> HttpResponse:
    profiles = ArchivingProfile.objects.select_related("mailbox", "secret")
    rows = configuration_rows(profiles, services.PROCESS_TYPE, "profile")
    return render(
        request,
        "web/admin/profiles/list.html",
        {"rows": rows, "here": reverse("adminaccess:archiving_profiles")},
    )


def _save(request: HttpRequest, form: ProfileForm, profile: ArchivingProfile | None) -> bool:
    try:
        saved = services.save_profile(form.profile_data(), profile=profile)
    except services.ProfileError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return False
    if profile is None:
        messages.success(
            request,
            f"Archiving profile {saved.name} saved. Run it now, or give it a schedule "
            "(a Once schedule for the initial import).",
        )
    else:
        messages.success(request, f"Archiving profile {saved.name} saved.")
    return True


@admin_view
@require_http_methods(["GET", "POST"])
def profile_create(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and _save(request, form, None):
        return redirect("adminaccess:archiving_profiles")
    return render(request, "web/admin/profiles/form.html", {"form": form, "creating": True})


@admin_view
@require_http_methods(["GET", "POST"])
def profile_edit(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = get_object_or_404(ArchivingProfile.objects, pk=profile_id)
    form = ProfileForm(request.POST or None, initial=initial_for(profile), editing=profile)
    if request.method == "POST" and form.is_valid() and _save(request, form, profile):
        return redirect("adminaccess:archiving_profiles")
    return render(request, "web/admin/profiles/form.html", {"form": form, "edited": profile})


@admin_view
@require_POST
def profile_run_now(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = get_object_or_404(ArchivingProfile.objects, pk=profile_id)
    return run_now(request, services.PROCESS_TYPE, profile, "Archiving profile")


@admin_view
@require_http_methods(["GET", "POST"])
def profile_delete(request: HttpRequest, profile_id: int) -> HttpResponse:
    """GET asks for confirmation (the page without JavaScript), POST deletes."""
    profile = get_object_or_404(ArchivingProfile.objects, pk=profile_id)
    schedule_count = jobs.schedules_for(profile).count()
    if request.method == "POST":
        name = profile.name
        try:
            count = services.delete_profile(profile)
        except services.ProfileError as exc:
            messages.error(request, str(exc))
        else:
            gone = f" and its {count} schedule(s)" if count else ""
            messages.success(request, f"Archiving profile {name}{gone} deleted.")
        return redirect("adminaccess:archiving_profiles")
    return render(
        request,
        "web/admin/profiles/delete.html",
        {"profile": profile, "schedule_count": schedule_count},
    )
