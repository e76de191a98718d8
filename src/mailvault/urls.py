from django.urls import include, path
from django.views.generic import RedirectView

from mailvault.api.urls import operator_patterns as api_operator_patterns

urlpatterns = [
    path("", RedirectView.as_view(url="/webaccess/"), name="root"),
    path("adminaccess/", include("mailvault.web.urls_admin")),
    path("webaccess/", include("mailvault.web.urls_web")),
    path("api/v1/", include("mailvault.api.urls")),
    path("api/operator/v1/", include((api_operator_patterns, "api-operator"))),
]

handler404 = "mailvault.web.errors.not_found"
handler500 = "mailvault.web.errors.server_error"
