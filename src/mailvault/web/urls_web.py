from django.urls import path

from mailvault.web.views import auth, webaccess

app_name = "webaccess"

urlpatterns = [
    path("", webaccess.home, name="home"),
    path("login/", auth.web_login, name="login"),
    path("login/password/", auth.web_login_password, name="login_password"),
    path("login/totp/", auth.web_totp, name="totp"),
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
]
