from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/webaccess/"), name="root"),
    path("adminaccess/", include("mailvault.web.urls_admin")),
    path("webaccess/", include("mailvault.web.urls_web")),
]

handler404 = "mailvault.web.errors.not_found"
handler500 = "mailvault.web.errors.server_error"
