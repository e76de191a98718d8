"""Admin Access > User Management > Groups (the wrench icon sets a group's roles)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from mailvault.accounts import services
from mailvault.accounts.models import Group, User
from mailvault.web.access import admin_view
from mailvault.web.forms import GroupForm, GroupRolesForm


@admin_view
def group_list(request: HttpRequest) -> HttpResponse:
    groups = Group.objects.prefetch_related("grants", "members").order_by("name")
    return render(request, "web/admin/groups.html", {"groups": groups})


@admin_view
@require_http_methods(["GET", "POST"])
def group_create(request: HttpRequest) -> HttpResponse:
    form = GroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = services.create_group(
                form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                members=form.cleaned_data["members"],
            )
        except services.AccountError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Group {group.name} created. Now choose its roles.")
            return redirect("adminaccess:group_roles", group_id=group.pk)
    return render(request, "web/admin/group_form.html", {"form": form, "creating": True})


@admin_view
@require_http_methods(["GET", "POST"])
def group_edit(request: HttpRequest, group_id: int) -> HttpResponse:
    group = get_object_or_404(Group.objects, pk=group_id)
    initial = {
        "name": group.name,
        "description": group.description,
        "members": list(group.members.all()),
    }
    form = GroupForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_group(
                group,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                members=form.cleaned_data["members"],
            )
        except services.AccountError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Group {group.name} saved.")
            return redirect("adminaccess:groups")
    return render(request, "web/admin/group_form.html", {"form": form, "edited": group})


@admin_view
@require_http_methods(["GET", "POST"])
def group_roles(request: HttpRequest, group_id: int) -> HttpResponse:
    group = get_object_or_404(Group.objects, pk=group_id)
    form = GroupRolesForm(request.POST or None, initial={"roles": sorted(group.role_set)})
    if request.method == "POST" and form.is_valid():
        try:
            services.set_group_roles(group, form.cleaned_data["roles"])
        except services.AccountError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Roles of {group.name} saved.")
            return redirect("adminaccess:groups")
    return render(request, "web/admin/group_roles.html", {"form": form, "group": group})


@admin_view
@require_POST
def group_remove_member(request: HttpRequest, group_id: int, user_id: int) -> HttpResponse:
    group = get_object_or_404(Group.objects, pk=group_id)
    user = get_object_or_404(User.objects, pk=user_id)
    try:
        services.remove_member(group, user)
    except services.AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{user.username} removed from {group.name}.")
    return redirect("adminaccess:group_edit", group_id=group.pk)


@admin_view
@require_POST
def group_delete(request: HttpRequest, group_id: int) -> HttpResponse:
    group = get_object_or_404(Group.objects, pk=group_id)
    try:
        services.delete_group(group)
    except services.AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Group {group.name} deleted.")
    return redirect("adminaccess:groups")
