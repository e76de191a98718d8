"""Phrases over the body, which the index keeps without positions (see search._phrases).

The index answers "all the words"; the phrase itself is checked against the texts a
loader returns. These tests pin that the results are exactly those of a positional
index, under NOT, OR and wildcards, with exact or estimated totals.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import tantivy
from hypothesis import given, settings
from hypothesis import strategies as st
from tantivy import Query

from mailvault.search import Scope, TenantIndex
from mailvault.search import index as index_module
from mailvault.search._compile import PhraseLeaf
from mailvault.search._phrases import (
    UnverifiableMessages,
    has_phrase,
    index_terms,
    verified_leaves,
)
from mailvault.search._schema import TEXT_ANALYZER, analyze, register_analyzers

from .conftest import make_doc

WHOLE = Scope.whole_tenant()

TEXTS = {
    1: "please send the data frame to me",
    2: "the frame holds data, not a data-frame? no: a frame of data",
    3: "Data Frame objects, and data frames",
    4: "nothing to see here",
    5: "wildcard corner: fooexample.com and bar example.org",
}


def loader(message_ids: list[int]) -> dict[int, str]:
    return {m: TEXTS[m] for m in message_ids if m in TEXTS}


@pytest.fixture
def corpus(index: TenantIndex) -> TenantIndex:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    index.add(
        [
            make_doc(m, body=text, subject=f"s{m}", date=base + timedelta(days=m))
            for m, text in TEXTS.items()
        ]
    )
    return index


def found(index: TenantIndex, query: str) -> list[int]:
    result = index.search(query, WHOLE, text_loader=loader)
    assert not result.total_is_estimate
    assert result.total == len(result.hits)
    return sorted(h.message_id for h in result.hits)


def test_words_in_any_order_match_but_the_phrase_needs_them_adjacent(corpus: TenantIndex) -> None:
    assert found(corpus, "data frame") == [1, 2, 3]
    # message 2 has "data-frame": the tokenizer splits at "-", so it is the phrase too
    assert found(corpus, '"data frame"') == [1, 2, 3]
    assert found(corpus, '"frame holds data"') == [2]
    assert found(corpus, '"frame data"') == []
    assert found(corpus, '"frame of data"') == [2]
    assert found(corpus, 'body:"data frames"') == [3]


def test_negated_and_alternative_phrases_are_exact(corpus: TenantIndex) -> None:
    # A negated phrase must not exclude messages that only have the words.
    assert found(corpus, 'data NOT "send the data"') == [2, 3]
    assert found(corpus, 'NOT "data frame"') == [4, 5]
    assert found(corpus, '"send the data" OR "frame holds"') == [1, 2]
    assert found(corpus, '"send the data" OR subject:s4') == [1, 4]
    assert found(corpus, '("data frame" AND objects) OR "nothing to"') == [3, 4]


def test_wildcard_phrases_over_the_body(corpus: TenantIndex) -> None:
    # a wildcard word with punctuation is a regex phrase: [fooexample, co.*]
    assert found(corpus, "body:fooexample.co*") == [5]
    assert found(corpus, "body:bar.example.o?g") == [5]
    assert found(corpus, "body:foo*.org") == []  # fooexample is followed by com
    # "*example.com" is the regex phrase [.*example, com]: "bar example.org" is not it
    assert found(corpus, "body:*example.com") == [5]


def test_without_a_loader_a_phrase_with_candidates_is_refused(corpus: TenantIndex) -> None:
    with pytest.raises(ValueError, match="text_loader"):
        corpus.search('"data frame"', WHOLE)
    # no candidate, nothing to check: no loader needed
    assert corpus.search('"zebra crossing"', WHOLE).total == 0


def test_messages_whose_text_cannot_be_read(corpus: TenantIndex) -> None:
    def partial(message_ids: list[int]) -> dict[int, str]:
        return {m: TEXTS[m] for m in message_ids if m != 1}

    # Interactive search: an unreadable message matches no phrase ...
    assert [
        h.message_id for h in corpus.search('"send the data"', WHOLE, text_loader=partial).hits
    ] == []
    # ... compliance decisions fail closed instead.
    with pytest.raises(UnverifiableMessages, match="1 message"):
        corpus.matching_ids('"send the data"', WHOLE, text_loader=partial)
    assert corpus.matching_ids('"frame holds data"', WHOLE, text_loader=loader) == {2}
    assert corpus.matching_ids('data NOT "send the data"', WHOLE, text_loader=loader) == {2, 3}


def test_totals_are_exact_or_estimated_and_paging_stays_exact(index: TenantIndex) -> None:
    base = datetime(2020, 1, 1, tzinfo=UTC)
    texts = {m: ("alpha beta gamma" if m % 3 == 0 else "beta alpha gamma") for m in range(1, 3001)}
    index.add([make_doc(m, body=t, date=base + timedelta(hours=m)) for m, t in texts.items()])
    calls: list[int] = []

    def counting(message_ids: list[int]) -> dict[int, str]:
        calls.append(len(message_ids))
        return {m: texts[m] for m in message_ids}

    truth = sorted((m for m, t in texts.items() if t.startswith("alpha beta")), reverse=True)
    first = index.search('"alpha beta"', WHOLE, limit=20, text_loader=counting)
    assert [h.message_id for h in first.hits] == truth[:20]  # newest first, all real
    assert first.total_is_estimate
    assert abs(first.total - len(truth)) <= len(truth) * 0.1
    assert sum(calls) < 3000  # only what the page needed was read
    deep = index.search('"alpha beta"', WHOLE, limit=50, offset=900, text_loader=counting)
    assert [h.message_id for h in deep.hits] == truth[900:950]
    assert index.matching_ids('"alpha beta"', WHOLE, text_loader=counting) == set(truth)
    few = index.search('"alpha beta" date:2020-01-01..2020-01-20', WHOLE, text_loader=counting)
    assert not few.total_is_estimate
    assert few.total == len([m for m in truth if m < 20 * 24])  # the 20th inclusive


def test_checking_stops_after_its_time_budget(
    index: TenantIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Words that are everywhere but rarely together: an interactive search gives up after
    VERIFY_BUDGET_S with what it found, and says its total is an estimate."""
    base = datetime(2020, 1, 1, tzinfo=UTC)
    texts = {m: ("alpha beta" if m == 7 else "beta gamma alpha") for m in range(1, 2001)}
    index.add([make_doc(m, body=t, date=base + timedelta(hours=m)) for m, t in texts.items()])
    checked: list[int] = []

    def counting(message_ids: list[int]) -> dict[int, str]:
        checked.extend(message_ids)
        return {m: texts[m] for m in message_ids}

    monkeypatch.setattr(index_module, "VERIFY_BUDGET_S", 0.0)
    result = index.search('"alpha beta"', WHOLE, text_loader=counting)
    assert len(checked) == 100  # the first batch only
    assert (result.hits, result.total, result.total_is_estimate) == ([], 0, True)
    monkeypatch.setattr(index_module, "VERIFY_BUDGET_S", 60.0)
    result = index.search('"alpha beta"', WHOLE, text_loader=counting)
    assert [h.message_id for h in result.hits] == [7]
    assert (result.total, result.total_is_estimate) == (1, False)


# --- the check agrees with a positional tantivy index ----------------------------------

_VOCAB = ["data", "Frame", "DATA", "grüße", "ÉTÉ", "x" * 70, "ü" * 40, "r2", "σας", "of", "ΣΑΣ"]
_SEPARATORS = [" ", ", ", "-", ".", "\n> ", "…", "_", "", "नमस्ते"]


@st.composite
def texts_and_phrases(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    words = st.sampled_from(_VOCAB)
    texts = []
    for _ in range(draw(st.integers(1, 6))):
        parts = draw(st.lists(st.tuples(words, st.sampled_from(_SEPARATORS)), max_size=12))
        texts.append("".join(w + s for w, s in parts))
    phrase = draw(st.lists(words, min_size=2, max_size=3))
    return texts, phrase


@settings(max_examples=150, deadline=None)
@given(texts_and_phrases())
def test_the_phrase_check_answers_as_a_positional_index_would(
    case: tuple[list[str], list[str]],
) -> None:
    texts, phrase = case
    terms = analyze(" ".join(phrase))
    if len(terms) < 2:
        return  # a dropped long word left a single term: no phrase to check
    schema_builder = tantivy.SchemaBuilder()
    schema_builder.add_unsigned_field("id", indexed=True, fast=True, stored=True)
    schema_builder.add_text_field("body", tokenizer_name=TEXT_ANALYZER)  # with positions
    schema = schema_builder.build()
    reference = tantivy.Index(schema)
    register_analyzers(reference)
    writer = reference.writer(heap_size=15_000_000, num_threads=1)
    for n, text in enumerate(texts):
        writer.add_document(tantivy.Document.from_dict({"id": [n], "body": [text]}, schema))
    writer.commit()
    reference.reload()
    searcher = reference.searcher()
    hits = searcher.search(Query.phrase_query(schema, "body", terms), limit=100).hits
    expected = {searcher.doc(address)["id"][0] for _score, address in hits}
    leaf = PhraseLeaf("body", tuple(terms), False)
    # the fast path (search the text, confirm each place with the tokenizer) ...
    found, _texts = verified_leaves(
        [leaf], list(range(len(texts))), lambda ids: dict(enumerate(texts)), strict=True
    )
    assert set(found[0]) == expected
    # ... and the term-by-term one that wildcard phrases take
    checked = {n for n, text in enumerate(texts) if has_phrase(index_terms(text), leaf)}
    assert checked == expected
