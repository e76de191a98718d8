"""Page-number pagination with a caller-chosen page size up to a maximum."""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import PageNumberPagination


class ApiPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    @property
    def page_size(self) -> int:
        return int(settings.MAILVAULT_API_PAGE_SIZE)

    @property
    def max_page_size(self) -> int:
        return int(settings.MAILVAULT_API_MAX_PAGE_SIZE)
