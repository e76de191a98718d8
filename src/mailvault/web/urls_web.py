from django.urls import path

from mailvault.web.views import auth, auth_microsoft, webaccess, webaccess_compliance

app_name = "webaccess"

urlpatterns = [
    path("", webaccess.home, name="home"),
    path("login/", auth.web_login, name="login"),
    path("login/password/", auth.web_login_password, name="login_password"),
    path("login/totp/", auth.web_totp, name="totp"),
    path("login/microsoft/", auth_microsoft.web_login_microsoft, name="login_microsoft"),
    path(
        "login/microsoft/callback/",
        auth_microsoft.web_login_microsoft_callback,
        name="login_microsoft_callback",
    ),
    path("logout/", auth.web_logout, name="logout"),
    path("password/", auth.web_password, name="password"),
    path("account/mfa/", auth.web_mfa, name="mfa"),
    path("search/", webaccess.search, name="search"),
    path("messages/<int:message_id>/", webaccess.message_view, name="message"),
    path("messages/<int:message_id>/body/", webaccess.message_body, name="message_body"),
    path("messages/<int:message_id>/download/", webaccess.message_download, name="download"),
    path(
        "messages/<int:message_id>/attachments/<int:index>/",
        webaccess.attachment_download,
        name="attachment",
    ),
    path("compliance/", webaccess_compliance.search, name="compliance_search"),
    path("compliance/delete/", webaccess_compliance.delete, name="compliance_delete"),
    path("compliance/holds/", webaccess_compliance.hold_list, name="compliance_holds"),
    path(
        "compliance/holds/<int:hold_id>/release/",
        webaccess_compliance.hold_release,
        name="compliance_hold_release",
    ),
    path("compliance/approvals/", webaccess_compliance.approval_list, name="compliance_approvals"),
    path(
        "compliance/approvals/<int:approval_id>/",
        webaccess_compliance.approval_decide,
        name="compliance_approval_decide",
    ),
    path("compliance/exports/", webaccess_compliance.export_list, name="compliance_exports"),
    path(
        "compliance/exports/<int:export_id>/download/",
        webaccess_compliance.export_download,
        name="compliance_export_download",
    ),
]
