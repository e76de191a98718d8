"""The side menu of Admin Access: every section of the product, built or not.

A section whose ``url_name`` is ``None`` is not built yet; it is served by the
"not built yet" page under ``/adminaccess/soon/<slug>/`` so that the menu is honest about
it. When a section gets built, give it its url name here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailvault.accounts.roles import Role


@dataclass(frozen=True)
class MenuItem:
    slug: str
    label: str
    url_name: str | None  # None: not built yet
    roles: frozenset[str] = frozenset({Role.ADMIN})
    issue_hint: str = ""


@dataclass(frozen=True)
class MenuSection:
    label: str
    items: tuple[MenuItem, ...]


ADMIN_MENU: tuple[MenuSection, ...] = (
    MenuSection(
        "Overview",
        (
            MenuItem(
                "dashboard",
                "Dashboard",
                "adminaccess:dashboard",
                frozenset({Role.ADMIN, Role.AUDITOR}),
            ),
        ),
    ),
    MenuSection(
        "User Management",
        (
            MenuItem("users", "Users", "adminaccess:users"),
            MenuItem("groups", "Groups", "adminaccess:groups"),
            MenuItem("domains", "Domains", "adminaccess:domains"),
            MenuItem("mailboxes", "Mailboxes", "adminaccess:mailboxes"),
        ),
    ),
    MenuSection(
        "Directory Services",
        (
            MenuItem("directory-services", "Directory Services", "adminaccess:directory_services"),
            MenuItem("secrets", "Secrets", "adminaccess:secrets"),
        ),
    ),
    MenuSection(
        "Archiving",
        (
            MenuItem("journal-endpoints", "Journal Endpoints", "adminaccess:journal_endpoints"),
            MenuItem("archiving-profiles", "Archiving Profiles", "adminaccess:archiving_profiles"),
            MenuItem(
                "folder-synchronizations", "Folder Synchronizations", "adminaccess:folder_syncs"
            ),
            MenuItem("schedules", "Schedules", "adminaccess:schedules"),
            MenuItem("file-import", "File Import", "adminaccess:file_import"),
        ),
    ),
    MenuSection(
        "Compliance",
        (
            MenuItem("process-log", "Process Log", "adminaccess:process_log"),
            MenuItem("retention-policies", "Retention Policies", "adminaccess:retention_policies"),
            MenuItem("legal-holds", "Legal Holds", "adminaccess:legal_holds"),
            MenuItem(
                "audit-log",
                "Audit Log",
                "adminaccess:audit_log",
                frozenset({Role.AUDITOR}),
            ),
            MenuItem("integrity", "Store Verification", "adminaccess:integrity"),
        ),
    ),
    MenuSection(
        "Setup",
        (
            MenuItem("setup-wizards", "Setup Wizards", "adminaccess:setup_wizards"),
            MenuItem("api-keys", "API Keys", "adminaccess:api_keys"),
        ),
    ),
    MenuSection(
        "My Account",
        (
            MenuItem(
                "password",
                "Change Password",
                "adminaccess:password",
                frozenset({Role.ADMIN, Role.AUDITOR}),
            ),
            MenuItem(
                "mfa",
                "Two-Factor Sign-In",
                "adminaccess:mfa",
                frozenset({Role.ADMIN, Role.AUDITOR}),
            ),
        ),
    ),
)

UNBUILT: dict[str, MenuItem] = {
    item.slug: item for section in ADMIN_MENU for item in section.items if item.url_name is None
}
