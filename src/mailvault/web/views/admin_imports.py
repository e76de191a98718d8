"""Admin Access > Archiving > File Import: import configurations, uploads, run now."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailvault.ingestion import file_import
from mailvault.ingestion.models import ImportConfiguration
from mailvault.jobs import services
from mailvault.web.access import admin_view
from mailvault.web.forms_jobs import ImportConfigForm, ImportUploadForm
from mailvault.web.views.configurations import configuration_rows, run_now


@admin_view
@require_GET
def import_list(request: HttpRequest) -> HttpResponse:
    configs = ImportConfiguration.objects.select_related("mailbox")
    rows = configuration_rows(configs, file_import.PROCESS_TYPE, "config")
    return render(
        request,
        "web/admin/imports.html",
        {"rows": rows, "here": reverse("adminaccess:file_import")},
    )


@admin_view
@require_http_methods(["GET", "POST"])
def import_create(request: HttpRequest) -> HttpResponse:
    form = ImportConfigForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            config = file_import.save_configuration(data["name"], data["mailbox"], data["path"])
        except file_import.ImportConfigError as exc:
            form.add_error(exc.field or None, str(exc))
        else:
            messages.success(request, f"Import {config.name} saved.")
            return redirect("adminaccess:file_import")
    return render(request, "web/admin/import_form.html", {"form": form, "creating": True})


@admin_view
@require_http_methods(["GET", "POST"])
def import_edit(request: HttpRequest, config_id: int) -> HttpResponse:
    config = get_object_or_404(ImportConfiguration.objects, pk=config_id)
    initial = {"name": config.name, "mailbox": config.mailbox, "path": config.path}
    form = ImportConfigForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            file_import.save_configuration(
                data["name"], data["mailbox"], data["path"], config=config
            )
        except file_import.ImportConfigError as exc:
            form.add_error(exc.field or None, str(exc))
        else:
            messages.success(request, f"Import {config.name} saved.")
            return redirect("adminaccess:file_import")
    return render(request, "web/admin/import_form.html", {"form": form, "edited": config})


@admin_view
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest) -> HttpResponse:
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            config = file_import.create_from_upload(data["name"], data["mailbox"], data["file"])
        except file_import.ImportConfigError as exc:
            form.add_error(exc.field or None, str(exc))
        else:
            messages.success(
                request, f"File uploaded; import {config.name} created. Run it now or schedule it."
            )
            return redirect("adminaccess:file_import")
    return render(
        request,
        "web/admin/import_upload.html",
        {"form": form, "limit": file_import.upload_limit()},
    )


@admin_view
@require_POST
def import_run_now(request: HttpRequest, config_id: int) -> HttpResponse:
    config = get_object_or_404(ImportConfiguration.objects, pk=config_id)
    return run_now(request, file_import.PROCESS_TYPE, config, "Import")


@admin_view
@require_http_methods(["GET", "POST"])
def import_delete(request: HttpRequest, config_id: int) -> HttpResponse:
    """GET asks for confirmation (the page without JavaScript), POST deletes."""
    config = get_object_or_404(ImportConfiguration.objects, pk=config_id)
    schedule_count = services.schedules_for(config).count()
    if request.method == "POST":
        name = config.name
        file_import.delete_configuration(config)
        gone = f" and its {schedule_count} schedule(s)" if schedule_count else ""
        messages.success(request, f"Import {name}{gone} deleted.")
        return redirect("adminaccess:file_import")
    return render(
        request,
        "web/admin/import_delete.html",
        {"config": config, "schedule_count": schedule_count},
    )
