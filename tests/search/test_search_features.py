"""Each feature of the query language against a small real tantivy index."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from mailvault.search import Address, QuerySyntaxError, Scope, TenantIndex

from .conftest import make_doc

WHOLE = Scope.whole_tenant()
MB = 1024 * 1024


@pytest.fixture
def corpus(index: TenantIndex) -> TenantIndex:
    index.add(
        [
            make_doc(
                1,
                subject="Quarterly report",
                sender=Address("hans.meier@example.com", "Hans Meier"),
                to=[Address("bob@corp.org", "Bob Builder")],
                body="The automobile budget for the quarterly report is attached.",
                attachment_names=["Budget 2024.pdf"],
                attachment_text="total revenue grew",
                has_attachment=True,
                size=2 * MB,
                folder_paths=["Inbox/Projects"],
                date=datetime(2024, 1, 15, 9, tzinfo=UTC),
            ),
            make_doc(
                2,
                subject="Lunch",
                sender=Address("k.meyer@sub.example.com", "Karl Meyer"),
                cc=[Address("carol@corp.org")],
                bcc=[Address("secret.boss@corp.org", "The Boss")],
                body="Automatic reminder: report lunch plans. hello world",
                size=40 * 1024,
                folder_paths=["Inbox"],
                date=datetime(2024, 2, 20, 9, tzinfo=UTC),
            ),
            make_doc(
                3,
                subject="Hello from Maier",
                sender=Address("maier@other.org", "Otto Maier"),
                to=[Address("alice@example.com")],
                envelope_recipients=["journal-hidden@corp.org"],
                body="world hello, said Maier. <script>alert(1)</script> & more",
                size=300 * 1024,
                folder_paths=["Sent Items"],
                date=datetime(2024, 4, 2, 9, tzinfo=UTC),
            ),
            make_doc(
                4,
                subject="Grüße aus München",
                sender=Address("jürgen@beispiel.de", "Jürgen Müller"),
                body="Viele Grüße und bis bald",
                size=1000,
                date=datetime(2023, 12, 31, 23, 30, tzinfo=UTC),
            ),
        ]
    )
    return index


BODIES = {
    1: "The automobile budget for the quarterly report is attached.",
    2: "Automatic reminder: report lunch plans. hello world",
    3: "world hello, said Maier. <script>alert(1)</script> & more",
    4: "Viele Grüße und bis bald",
}


def bodies(message_ids: list[int]) -> dict[int, str]:
    """The archive's side of a phrase check: body texts by message id."""
    return {m: BODIES[m] for m in message_ids if m in BODIES}


def ids(index: TenantIndex, query: str, scope: Scope = WHOLE, **kw: object) -> list[int]:
    kw.setdefault("text_loader", bodies)
    return sorted(h.message_id for h in index.search(query, scope, **kw).hits)  # type: ignore[arg-type]


def test_bare_words_search_all_text_fields(corpus: TenantIndex) -> None:
    assert ids(corpus, "automobile") == [1]  # body
    assert ids(corpus, "quarterly") == [1]  # subject and body
    assert ids(corpus, "revenue") == [1]  # attachment text
    assert ids(corpus, "budget") == [1]  # attachment name (and body)
    assert ids(corpus, "builder") == [1]  # a To display name
    assert ids(corpus, "karl") == [2]  # a From display name
    assert ids(corpus, "REPORT") == [1, 2]  # case-insensitive
    assert ids(corpus, "nonexistentword") == []


def test_words_are_anded(corpus: TenantIndex) -> None:
    assert ids(corpus, "report lunch") == [2]
    assert ids(corpus, "report AND automobile") == [1]


def test_international_words(corpus: TenantIndex) -> None:
    assert ids(corpus, "grüße") == [4]
    assert ids(corpus, "MÜNCHEN") == [4]
    assert ids(corpus, "from:müller") == [4]
    assert ids(corpus, "gruse") == []  # no accent folding, by design
    assert ids(corpus, "Gr??e") == [4]  # "?" is one character, not one byte
    assert ids(corpus, "*ünchen") == [4]
    assert ids(corpus, "from:jürgen@*") == [4]


def test_phrase_vs_words(corpus: TenantIndex) -> None:
    assert ids(corpus, "hello world") == [2, 3]
    assert ids(corpus, '"hello world"') == [2]
    assert ids(corpus, '"world hello"') == [3]
    assert ids(corpus, 'subject:"quarterly report"') == [1]
    assert ids(corpus, 'body:"quarterly report"') == [1]
    assert ids(corpus, 'body:"report quarterly"') == []


def test_question_mark_matches_exactly_one_character(corpus: TenantIndex) -> None:
    assert ids(corpus, "Me?er") == [1, 2]  # Meier, Meyer; not Maier
    assert ids(corpus, "from:Me?er") == [1, 2]
    assert ids(corpus, "M?ier") == [1, 3]
    assert ids(corpus, "Me??er") == []


def test_star_wildcards(corpus: TenantIndex) -> None:
    assert ids(corpus, "auto*") == [1, 2]  # automobile, automatic
    assert ids(corpus, "automo*") == [1]
    assert ids(corpus, "*mobile") == [1]
    assert ids(corpus, "from:*example.com") == [1, 2]
    assert ids(corpus, "*example.com") == [1, 2, 3]  # from or to
    assert ids(corpus, "to:*example.com") == [3]
    assert ids(corpus, "from:*.org") == [3]
    assert ids(corpus, "attachment:*.pdf") == [1]
    assert ids(corpus, "attachment:*.docx") == []


def test_regex_metacharacters_in_user_text_are_literal(corpus: TenantIndex) -> None:
    # "." must not match any character: "hans?meier" would, "hans.meier" only literally.
    assert ids(corpus, "from:hans.meier@example.com") == [1]
    assert ids(corpus, "from:hans.meier@example.co*") == [1]
    assert ids(corpus, "from:hansxmeier@example.co*") == []
    assert ids(corpus, "from:hans|x*") == []
    assert ids(corpus, "from:hans.+*") == []  # "+" is not "one or more"
    assert ids(corpus, "from:[a-z]*") == []
    assert ids(corpus, "to:bob\\*") == []


def test_address_fields(corpus: TenantIndex) -> None:
    assert ids(corpus, "from:meier") == [1]
    assert ids(corpus, "from:k.meyer@sub.example.com") == [2]
    assert ids(corpus, "from:example") == [1, 2]
    assert ids(corpus, "to:bob@corp.org") == [1]
    assert ids(corpus, "to:carol") == []
    assert ids(corpus, "cc:carol") == [2]
    assert ids(corpus, "subject:hello") == [3]
    assert ids(corpus, "body:hello") == [2, 3]
    assert ids(corpus, "attachment:revenue") == [1]
    assert ids(corpus, "attachment:budget") == [1]
    assert ids(corpus, "attachment:automobile") == []


def test_folder_field(corpus: TenantIndex) -> None:
    assert ids(corpus, "folder:inbox") == [1, 2]
    assert ids(corpus, "folder:projects") == [1]
    assert ids(corpus, "folder:inbox/projects") == [1]
    assert ids(corpus, 'folder:"sent items"') == [3]
    assert ids(corpus, "folder:Sent*") == [3]


def test_date_ranges(corpus: TenantIndex) -> None:
    assert ids(corpus, "date:2024-01-01..2024-03-31") == [1, 2]
    assert ids(corpus, "date:2024-02") == [2]
    assert ids(corpus, "date:2024") == [1, 2, 3]
    assert ids(corpus, "after:2024-02-20") == [2, 3]  # inclusive of the day
    assert ids(corpus, "before:2024-02-20") == [1, 4]  # exclusive
    assert ids(corpus, "after:2024-01-01 before:2024-02-01") == [1]
    assert ids(corpus, "date:2024-03-01..") == [3]


def test_dates_are_calendar_days_in_the_given_time_zone(corpus: TenantIndex) -> None:
    # Message 4 is 2023-12-31 23:30 UTC, already 2024-01-01 in Berlin.
    berlin = ZoneInfo("Europe/Berlin")
    assert ids(corpus, "date:2023-12-31", tz=UTC) == [4]
    assert ids(corpus, "date:2024-01-01", tz=berlin) == [4]
    assert ids(corpus, "date:2023-12-31", tz=berlin) == []


def test_has_attachment_and_size(corpus: TenantIndex) -> None:
    assert ids(corpus, "has:attachment") == [1]
    assert ids(corpus, "-has:attachment") == [2, 3, 4]
    assert ids(corpus, "size:>1MB") == [1]
    assert ids(corpus, "size:<100KB") == [2, 4]
    assert ids(corpus, "size:>=40KB size:<=300KB") == [2, 3]
    assert ids(corpus, "size:100KB..1MB") == [3]


def test_or_not_and_parentheses(corpus: TenantIndex) -> None:
    assert ids(corpus, "automobile OR lunch") == [1, 2]
    assert ids(corpus, "report -lunch") == [1]
    assert ids(corpus, "report NOT lunch") == [1]
    assert ids(corpus, "-report") == [3, 4]
    assert ids(corpus, "(automobile OR maier) hello") == [3]
    assert ids(corpus, "from:(meier OR maier)") == [1, 3]
    assert ids(corpus, "report (-lunch OR hello)") == [1, 2]


def test_punctuation_words_do_not_empty_the_result(corpus: TenantIndex) -> None:
    assert ids(corpus, "lunch & plans") == [2]


def test_bcc_and_envelope_only_under_whole_tenant(corpus: TenantIndex) -> None:
    assert ids(corpus, "bcc:secret.boss@corp.org") == [2]
    assert ids(corpus, "bcc:boss") == [2]
    assert ids(corpus, "bcc:journal-hidden@corp.org") == [3]
    assert ids(corpus, "journal") == [3]  # bare words include them for Compliance
    reader = Scope.mailboxes([1])
    with pytest.raises(QuerySyntaxError, match="Compliance"):
        corpus.search("bcc:boss", reader)
    assert ids(corpus, "boss", reader) == []
    assert ids(corpus, "journal", reader) == []
    assert ids(corpus, "*corp.org", reader) == [1, 2]  # to/cc, never the Bcc


def test_sort_by_date_and_relevance(corpus: TenantIndex) -> None:
    by_date = corpus.search("report OR hello", WHOLE, sort="date")
    assert [h.message_id for h in by_date.hits] == [3, 2, 1]
    assert all(h.score is None for h in by_date.hits)
    by_rel = corpus.search("quarterly OR hello", WHOLE, sort="relevance")
    assert by_rel.hits[0].message_id == 1  # two fields match "quarterly"
    scores = [h.score for h in by_rel.hits]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_paging_and_total(corpus: TenantIndex) -> None:
    first = corpus.search("", WHOLE, limit=2)
    second = corpus.search("", WHOLE, limit=2, offset=2)
    assert first.total == second.total == 4
    assert [h.message_id for h in first.hits] == [3, 2]
    assert [h.message_id for h in second.hits] == [1, 4]


def test_hits_carry_display_fields(corpus: TenantIndex) -> None:
    (hit,) = corpus.search("automobile", WHOLE).hits
    assert hit.subject == "Quarterly report"
    assert hit.sender == Address("hans.meier@example.com", "Hans Meier")
    assert hit.date == datetime(2024, 1, 15, 9, tzinfo=UTC)
    assert hit.mailbox_ids == (1,)


def test_snippets_highlight_and_escape(corpus: TenantIndex) -> None:
    (hit,) = corpus.search('"world hello"', WHOLE, text_loader=bodies).hits
    assert "<b>world</b> <b>hello</b>" in hit.snippet_html
    assert "<script>" not in hit.snippet_html
    assert "&lt;script&gt;" in hit.snippet_html
    assert hit.subject_html == "<b>Hello</b> from Maier"
    (plain,) = corpus.search("from:müller", WHOLE).hits
    assert plain.snippet_html == "Viele Grüße und bis bald"  # no match in body: its start


def test_wildcard_matches_are_highlighted(corpus: TenantIndex) -> None:
    (hit,) = corpus.search("automo*", WHOLE).hits
    assert "<b>automobile</b>" in hit.snippet_html
    (hit,) = corpus.search("Quarte?ly", WHOLE).hits
    assert hit.subject_html == "<b>Quarterly</b> report"


def test_leading_wildcards_use_regex_queries_and_cache_them(corpus: TenantIndex) -> None:
    assert ids(corpus, "*mobile") == [1]
    cached = len(corpus._regex_cache)
    assert cached > 0
    assert ids(corpus, "*mobile") == [1]
    assert len(corpus._regex_cache) == cached


def test_wildcards_fall_back_to_regex_when_expansion_is_too_large(
    corpus: TenantIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailvault.search import _compile

    monkeypatch.setattr(_compile, "EXPANSION_LIMIT", 0)
    assert ids(corpus, "Me?er") == [1, 2]
    assert ids(corpus, "auto*") == [1, 2]
    assert ids(corpus, "from:hans.meier@example.co*") == [1]
    assert any(regex == "me.er" for _, regex in corpus._regex_cache)


def test_a_phrase_check_supplies_full_text_for_snippets(corpus: TenantIndex) -> None:
    def loader(message_ids: list[int]) -> dict[int, str]:
        return {m: "far away the automobile <sits>" for m in message_ids}

    (hit,) = corpus.search('"the automobile"', WHOLE, text_loader=loader).hits
    # tantivy ends a fragment at its last token, so the trailing "&gt;" is cut.
    assert hit.snippet_html.startswith("far away <b>the</b> <b>automobile</b> &lt;sits")


def test_search_refuses_bad_arguments(corpus: TenantIndex) -> None:
    with pytest.raises(TypeError):
        corpus.search("x", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Scope(object(), None)
    with pytest.raises(ValueError, match="sort"):
        corpus.search("x", WHOLE, sort="size")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        corpus.search("x", WHOLE, limit=0)
    with pytest.raises(QuerySyntaxError):
        corpus.search("unknown:field", WHOLE)
