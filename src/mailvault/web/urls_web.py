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
]
