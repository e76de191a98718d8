"""Property: a search never leaves its scope or its tenant (hypothesis).

Two tenants share one index root and the same mailbox id space (1..6), so a mix-up of
tenants or mailboxes would surface as a foreign hit.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailvault.search import Scope, TenantIndex

from .conftest import make_doc

WORDS = ["apple", "berry", "cherry", "date", "elder"]
MAILBOXES = st.integers(min_value=1, max_value=6)


@dataclass(frozen=True)
class Msg:
    tenant: int
    mailboxes: frozenset[int]
    words: tuple[str, ...]


messages = st.builds(
    Msg,
    tenant=st.sampled_from([1, 2]),
    mailboxes=st.frozensets(MAILBOXES, min_size=1, max_size=3),
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(tuple),
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(WORDS),
    st.sampled_from(WORDS).map(lambda w: w[:3] + "*"),
    st.sampled_from(WORDS).map(lambda w: "-" + w),
    st.tuples(st.sampled_from(WORDS), st.sampled_from(WORDS)).map(" OR ".join),
)


def expected(msg: Msg, query: str) -> bool:
    if not query:
        return True
    if query.startswith("-"):
        return query[1:] not in msg.words
    if query.endswith("*"):
        return any(w.startswith(query[:-1]) for w in msg.words)
    return any(w in msg.words for w in query.split(" OR "))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    msgs=st.lists(messages, min_size=1, max_size=25),
    scopes=st.lists(st.frozensets(MAILBOXES, max_size=4), min_size=1, max_size=4),
    query=queries,
)
def test_reader_scope_and_tenant_isolation(
    msgs: list[Msg], scopes: list[frozenset[int]], query: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        indexes = {t: TenantIndex.open(t, base_dir=Path(tmp)) for t in (1, 2)}
        ids = {}  # message id -> Msg; ids are unique across both tenants
        for t, index in indexes.items():
            docs = []
            for n, msg in enumerate(msgs):
                if msg.tenant == t:
                    ids[n + 1] = msg
                    docs.append(
                        make_doc(n + 1, mailbox_ids=sorted(msg.mailboxes), body=" ".join(msg.words))
                    )
            index.add(docs)
        for allowed in scopes:
            result = indexes[1].search(query, Scope.mailboxes(allowed), limit=100)
            hits = {h.message_id for h in result.hits}
            for h in result.hits:
                assert ids[h.message_id].tenant == 1
                assert set(h.mailbox_ids) & allowed
            want = {
                i
                for i, m in ids.items()
                if m.tenant == 1 and m.mailboxes & allowed and expected(m, query)
            }
            assert hits == want
            assert result.total == len(want)
        whole = indexes[2].search(query, Scope.whole_tenant(), limit=100)
        assert {h.message_id for h in whole.hits} == {
            i for i, m in ids.items() if m.tenant == 2 and expected(m, query)
        }
