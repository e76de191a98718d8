"""Admin Access > User Management > Users."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from mailvault.accounts import services
from mailvault.accounts.models import User
from mailvault.web.access import admin_view
from mailvault.web.forms import UserCreateForm, UserEditForm


@admin_view
def user_list(request: HttpRequest) -> HttpResponse:
    users = User.objects.prefetch_related("user_groups").order_by("username")
    query = request.GET.get("q", "").strip()
    if query:
        users = users.filter(username__icontains=query) | users.filter(
            display_name__icontains=query
        )
    return render(request, "web/admin/users.html", {"users": users, "q": query})


@admin_view
@require_http_methods(["GET", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user, password = services.create_user(
                data["local_part"],
                data["domain"],
                display_name=data["display_name"],
                password=data["password"] or None,
                groups=data["groups"],
            )
        except ValidationError as exc:
            form.add_error("password", exc)
        except services.AccountError as exc:
            form.add_error(None, str(exc))
        else:
            return render(
                request,
                "web/admin/user_created.html",
                {"created": user, "password": password, "generated": not data["password"]},
            )
    return render(request, "web/admin/user_form.html", {"form": form, "creating": True})


@admin_view
@require_http_methods(["GET", "POST"])
def user_edit(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User.objects, pk=user_id)
    initial = {
        "display_name": user.display_name,
        "is_active": user.is_active,
        "groups": list(user.user_groups.all()),
    }
    form = UserEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_user(
                user,
                display_name=form.cleaned_data["display_name"],
                is_active=form.cleaned_data["is_active"],
                groups=form.cleaned_data["groups"],
            )
        except services.AccountError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{user.username} saved.")
            return redirect("adminaccess:users")
    return render(request, "web/admin/user_form.html", {"form": form, "edited": user})


@admin_view
@require_POST
def user_delete(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User.objects, pk=user_id)
    try:
        services.delete_user(user)
    except services.AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{user.username} deleted.")
    return redirect("adminaccess:users")


@admin_view
@require_POST
def user_reset_password(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User.objects, pk=user_id)
    password = services.reset_password(user)
    return render(
        request,
        "web/admin/user_created.html",
        {"created": user, "password": password, "generated": True, "reset": True},
    )


@admin_view
@require_POST
def user_reset_mfa(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User.objects, pk=user_id)
    services.reset_mfa(user)
    messages.success(request, f"Two-factor sign-in turned off for {user.username}.")
    return redirect("adminaccess:users")
