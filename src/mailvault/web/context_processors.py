from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from mailvault.web.navigation import ADMIN_MENU


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    roles: frozenset[str] = (
        getattr(user, "roles", frozenset()) if user.is_authenticated else frozenset()
    )
    menu = []
    for section in ADMIN_MENU:
        items = [item for item in section.items if item.roles & roles]
        if items:
            menu.append((section.label, items))
    return {"admin_menu": menu, "user_roles": roles}
