"""Admin Access > Archiving > Folder Synchronizations."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import CharField, OuterRef, Subquery
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.jobs import services as jobs
from mailvault.jobs.models import JobRun, Schedule
from mailvault.sources.foldersync import services
from mailvault.sources.models_foldersync import FolderSynchronization
from mailvault.web.access import admin_view, signed_in_user
from mailvault.web.forms_foldersync import FolderSyncForm, initial_for
from mailvault.web.views.admin_jobs import schedule_dialog_url

CONFIG_TYPE = FolderSynchronization._meta.label_lower


@admin_view
@require_GET
def folder_sync_list(request: HttpRequest) -> HttpResponse:
    pk_text = Cast(OuterRef("pk"), output_field=CharField())
    last_run = JobRun.objects.filter(
        process_type=services.PROCESS_TYPE, config_type=CONFIG_TYPE, config_id=pk_text
    ).order_by("-created_at", "-pk")
    syncs = FolderSynchronization.objects.select_related("directory_service").annotate(
        last_status=Subquery(last_run.values("status")[:1]),
        last_run_id=Subquery(last_run.values("pk")[:1]),
    )
    schedules: dict[str, list[Schedule]] = {}
    for s in Schedule.objects.filter(config_type=CONFIG_TYPE).order_by("pk"):
        schedules.setdefault(s.config_id, []).append(s)
    rows = [
        {
            "sync": sync,
            "schedules": schedules.get(str(sync.pk), []),
            "schedule_url": schedule_dialog_url(services.PROCESS_TYPE, sync),
        }
        for sync in syncs
    ]
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
    try:
        run = jobs.run_now(
            services.PROCESS_TYPE, sync, triggered_by=signed_in_user(request).username
        )
    except jobs.AlreadyRunning as exc:
        messages.error(request, str(exc))
        return redirect("adminaccess:run_detail", run_id=exc.run.pk)
    messages.success(request, f"Folder synchronization {sync.name} queued.")
    return redirect("adminaccess:run_detail", run_id=run.pk)


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
