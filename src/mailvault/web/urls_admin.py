from django.urls import path
from django.views.generic import RedirectView

from mailvault.web.views import (
    admin_domains,
    admin_groups,
    admin_home,
    admin_mailboxes,
    admin_users,
    auth,
)

app_name = "adminaccess"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="adminaccess:dashboard"), name="root"),
    path("login/", auth.admin_login, name="login"),
    path("login/totp/", auth.admin_totp, name="totp"),
    path("logout/", auth.admin_logout, name="logout"),
    path("password/", auth.admin_password, name="password"),
    path("account/mfa/", auth.admin_mfa, name="mfa"),
    path("dashboard/", admin_home.dashboard, name="dashboard"),
    path("users/", admin_users.user_list, name="users"),
    path("users/add/", admin_users.user_create, name="user_create"),
    path("users/<int:user_id>/", admin_users.user_edit, name="user_edit"),
    path("users/<int:user_id>/delete/", admin_users.user_delete, name="user_delete"),
    path(
        "users/<int:user_id>/reset-password/",
        admin_users.user_reset_password,
        name="user_reset_password",
    ),
    path("users/<int:user_id>/reset-mfa/", admin_users.user_reset_mfa, name="user_reset_mfa"),
    path("groups/", admin_groups.group_list, name="groups"),
    path("groups/add/", admin_groups.group_create, name="group_create"),
    path("groups/<int:group_id>/", admin_groups.group_edit, name="group_edit"),
    path("groups/<int:group_id>/roles/", admin_groups.group_roles, name="group_roles"),
    path("groups/<int:group_id>/delete/", admin_groups.group_delete, name="group_delete"),
    path(
        "groups/<int:group_id>/members/<int:user_id>/remove/",
        admin_groups.group_remove_member,
        name="group_remove_member",
    ),
    path("domains/", admin_domains.domain_list, name="domains"),
    path("domains/<int:domain_id>/verify/", admin_domains.domain_verify, name="domain_verify"),
    path("domains/<int:domain_id>/delete/", admin_domains.domain_delete, name="domain_delete"),
    path("mailboxes/", admin_mailboxes.mailbox_list, name="mailboxes"),
    path("mailboxes/add/", admin_mailboxes.mailbox_create, name="mailbox_create"),
    path("mailboxes/<int:mailbox_id>/", admin_mailboxes.mailbox_edit, name="mailbox_edit"),
    path("soon/<slug:slug>/", admin_home.not_built, name="not_built"),
]
