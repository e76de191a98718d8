"""Admin Access > Archiving > Folder Synchronizations."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.jobs import services as jobs
from mailvault.sources.foldersync import services
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.web.access import admin_view
from mailvault.web.forms_foldersync import FolderSyncForm, initial_for
from mailvault.web.views.configurations import configuration_rows, run_now


@admin_view
@require_GET
def folder_sync_list(request: HttpRequest) -> HttpResponse:
    syncs = FolderSynchronization.objects.select_related("directory_service")
    rows = configuration_rows(syncs, services.PROCESS_TYPE, "sync")
    return render(
        request,
        "web/admin/foldersync/list.html",
        {"rows": rows, "here": reverse("adminaccess:folder_syncs")},
    )


def _save(request: HttpRequest, form: FolderSyncForm, sync: FolderSynchronization | None) -> bool:
    try:
        saved = services.save_folder_sync(form.folder_sync_data(), sync=sync)
    except services.FolderSyncError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return False
    messages.success(
        request,
        f"Folder synchronization {saved.name} saved."
        + (" Give it a recurring schedule with the clock icon." if sync is None else ""),
    )
    return True


@admin_view
@require_http_methods(["GET", "POST"])
def folder_sync_create(request: HttpRequest) -> HttpResponse:
    form = FolderSyncForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and _save(request, form, None):
        return redirect("adminaccess:folder_syncs")
    return render(request, "web/admin/foldersync/form.html", {"form": form, "creating": True})


@admin_view
@require_http_methods(["GET", "POST"])
def folder_sync_edit(request: HttpRequest, folder_sync_id: int) -> HttpResponse:
    sync = get_object_or_404(FolderSynchronization.objects, pk=folder_sync_id)
    form = FolderSyncForm(request.POST or None, initial=initial_for(sync), editing=sync)
    if request.method == "POST" and form.is_valid() and _save(request, form, sync):
        return redirect("adminaccess:folder_syncs")
    return render(request, "web/admin/foldersync/form.html", {"form": form, "edited": sync})


@admin_view
@require_POST
def folder_sync_run_now(request: HttpRequest, folder_sync_id: int) -> HttpResponse:
    sync = get_object_or_404(FolderSynchronization.objects, pk=folder_sync_id)
    return run_now(request, services.PROCESS_TYPE, sync, "Folder synchronization")


@admin_view
@require_http_methods(["GET", "POST"])
def folder_sync_delete(request: HttpRequest, folder_sync_id: int) -> HttpResponse:
    """GET asks for confirmation (the page without JavaScript), POST deletes."""
    sync = get_object_or_404(FolderSynchronization.objects, pk=folder_sync_id)
    if request.method == "POST":
        name = sync.name
        try:
            count = services.delete_folder_sync(sync)
        except services.FolderSyncError as exc:
            messages.error(request, str(exc))
        else:
            gone = f" and its {count} schedule(s)" if count else ""
            messages.success(request, f"Folder synchronization {name}{gone} deleted.")
        return redirect("adminaccess:folder_syncs")
    return render(
        request,
        "web/admin/foldersync/delete.html",
        {"sync": sync, "schedule_count": jobs.schedules_for(sync).count()},
    )
