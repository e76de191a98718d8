"""Search with the key's permission scope: a Reader key searches its user's mailboxes
(owned and shared with its groups), a Compliance key the whole tenant — the scope of
``search.services``, computed from the key's roles (never more than its user's)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from mailvault.accounts.roles import Role
from mailvault.api.errors import ServiceRefused
from mailvault.api.permissions import CanSearch
from mailvault.api.serializers import search as s
from mailvault.api.views.base import ERRORS, ApiView, principal
from mailvault.compliance import audit
from mailvault.search import services
from mailvault.search.query import QuerySyntaxError


class Search(ApiView):
    permission_classes = [CanSearch]
    serializer_class = s.SearchResultSerializer
    pagination_class = None

    @extend_schema(
        parameters=[s.SearchQuerySerializer], responses={200: s.SearchResultSerializer, **ERRORS}
    )
    def get(self, request: Request) -> Response:
        form = s.SearchQuerySerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        caller = principal(request)
        page, size = data["page"], data["page_size"]
        try:
            result = services.search_for_user(
                caller.acting_user(),
                data["q"],
                sort=data["sort"],
                limit=size,
                offset=(page - 1) * size,
            )
        except QuerySyntaxError as exc:
            raise ServiceRefused({"q": [str(exc)]}) from exc
        if Role.COMPLIANCE in caller.roles:
            # Like a Compliance user's reading in Web Access: searching everyone's mail is
            # recorded.
            audit.record_request(request._request, "search", message=data["q"][:500])
        hits = [
            {
                "message_id": h.message_id,
                "date": h.date,
                "subject": h.subject,
                "sender": {"address": h.sender.address, "name": h.sender.name}
                if h.sender
                else None,
                "mailbox_ids": list(h.mailbox_ids),
                "snippet_html": h.snippet_html,
                "score": h.score,
            }
            for h in result.hits
        ]
        body = {
            "count": result.total,
            "count_is_estimate": result.total_is_estimate,
            "page": page,
            "page_size": size,
            "results": hits,
        }
        return Response(s.SearchResultSerializer(body).data)
