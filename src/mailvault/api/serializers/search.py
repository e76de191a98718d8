"""Search queries and hits."""

from __future__ import annotations

from rest_framework import serializers


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=2000, help_text="The query, as in Web Access search.")
    sort = serializers.ChoiceField(choices=["date", "relevance"], required=False, default="date")
    page = serializers.IntegerField(min_value=1, max_value=10_000, required=False, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=200, required=False, default=50)


class AddressSerializer(serializers.Serializer):
    address = serializers.CharField()
    name = serializers.CharField(allow_blank=True)


class SearchHitSerializer(serializers.Serializer):
    message_id = serializers.IntegerField()
    date = serializers.DateTimeField()
    subject = serializers.CharField(allow_blank=True)
    sender = AddressSerializer(allow_null=True)
    mailbox_ids = serializers.ListField(child=serializers.IntegerField())
    snippet_html = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(allow_null=True)


class SearchResultSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    count_is_estimate = serializers.BooleanField(
        help_text="True when a phrase over the body was checked only as far as this page "
        "needed: the results are exact, the count is an estimate."
    )
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = SearchHitSerializer(many=True)
