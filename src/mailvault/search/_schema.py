"""The tantivy schema and analyzers (private; see :mod:`mailvault.search`).

Tokenizer choice: text fields use tantivy's ``simple`` tokenizer (splits on anything that
is not a Unicode letter or digit, so "Müller", "Ελλάδα" and "Łódź" stay whole words), drop
tokens of 64 bytes or more (base64 junk, hashes) and lowercase. There is deliberately no
stemming and no accent folding: a wildcard such as ``Me?er`` or ``auto*`` is matched
against the indexed terms themselves, and with a stemmer those would be truncated stems
("automat" for "automation") that users never typed, so wildcards would surprise them.
Exact words are what an archive search is expected to find (legal hold, e-discovery).

Addresses, folder paths and attachment names are additionally indexed whole, lowercased,
as one term in a ``*_raw`` field, so ``from:*example.com``, ``from:alice@example.com``,
``folder:"Sent Items"`` and ``attachment:*.pdf`` match exactly; their tokenized parts go
into the matching text field so ``from:alice`` or ``from:example`` also work.

The body is indexed without positions (``POSITIONLESS``): positions were the largest part
of the index (on R-help 72 of 174 MB, with the whole index at 0.44 of the raw mail), and
issue 3 caps store plus index at 0.6 of the raw size. A phrase over the body therefore
matches first as "all its words in the body"; :mod:`._phrases` then checks the phrase
itself against the messages' body texts, split by this same tokenizer, so the results
are exact (see :meth:`TenantIndex.search`). Subject, addresses, attachment text
and folder names keep their positions.
"""

from __future__ import annotations

import tantivy
from tantivy import Filter, TextAnalyzerBuilder, Tokenizer

SCHEMA_VERSION = 2  # 2: the body without positions
TEXT_ANALYZER = "mv_text"
RAW_ANALYZER = "mv_raw"
MAX_TOKEN_BYTES = 64  # tantivy's remove_long counts UTF-8 bytes

_text_analyzer = (
    TextAnalyzerBuilder(Tokenizer.simple())
    .filter(Filter.remove_long(MAX_TOKEN_BYTES))
    .filter(Filter.lowercase())
    .build()
)
_raw_analyzer = TextAnalyzerBuilder(Tokenizer.raw()).filter(Filter.lowercase()).build()

# Fields searched by tokenized terms ("text") and by whole lowercased values ("raw").
TEXT = ("subject", "body", "att_name", "att_text", "folder")
PARTY = ("from", "to", "cc", "bcc", "env")  # each has PARTY_text and PARTY_raw
RAW = ("folder_raw", "att_name_raw")
# Indexed without positions; phrases there are verified against the text (see above).
POSITIONLESS = frozenset({"body"})


def analyze(text: str) -> list[str]:
    """Index terms of ``text`` exactly as the text fields see them."""
    return list(_text_analyzer.analyze(text))


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_unsigned_field("message_id", stored=True, indexed=True, fast=True)
    sb.add_text_field("tenant", tokenizer_name="raw", index_option="basic")
    sb.add_unsigned_field("mailbox", stored=True, indexed=True, fast=True)
    sb.add_date_field("date", stored=True, indexed=True, fast=True)
    sb.add_date_field("archived_at", stored=True, fast=True)
    sb.add_unsigned_field("size", stored=True, indexed=True, fast=True)
    sb.add_boolean_field("has_attachment", stored=True, indexed=True, fast=True)
    sb.add_text_field("subject", stored=True, tokenizer_name=TEXT_ANALYZER)
    sb.add_text_field("body", tokenizer_name=TEXT_ANALYZER, index_option="freq")
    sb.add_text_field("att_name", tokenizer_name=TEXT_ANALYZER)
    sb.add_text_field("att_text", tokenizer_name=TEXT_ANALYZER)
    sb.add_text_field("folder", tokenizer_name=TEXT_ANALYZER)
    sb.add_text_field("folder_raw", tokenizer_name=RAW_ANALYZER, index_option="basic")
    sb.add_text_field("att_name_raw", tokenizer_name=RAW_ANALYZER, index_option="basic")
    for party in PARTY:
        sb.add_text_field(f"{party}_text", tokenizer_name=TEXT_ANALYZER)
        sb.add_text_field(
            f"{party}_raw",
            stored=party == "from",
            tokenizer_name=RAW_ANALYZER,
            index_option="basic",
        )
    # Stored only: what a hit shows without touching the archive store.
    sb.add_bytes_field("from_name", stored=True)
    sb.add_bytes_field("preview", stored=True)
    return sb.build()


def register_analyzers(index: tantivy.Index) -> None:
    index.register_tokenizer(TEXT_ANALYZER, _text_analyzer)
    index.register_tokenizer(RAW_ANALYZER, _raw_analyzer)
