"""ASGI entry point, served by uvicorn."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailvault.settings")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402 - after Django is set up
from django.urls import reverse  # noqa: E402

from mailvault.web.body_limit import BodyLimit  # noqa: E402

# Multipart framing around an uploaded file (boundaries, part headers, the other fields).
UPLOAD_OVERHEAD = 1 << 20


def _body_limit(path: str) -> int:
    if path == reverse("adminaccess:import_upload"):
        return int(settings.MAILVAULT_IMPORT_UPLOAD_MAX_BYTES) + UPLOAD_OVERHEAD
    return int(settings.MAILVAULT_REQUEST_MAX_BYTES)


application = BodyLimit(django_application, _body_limit)
