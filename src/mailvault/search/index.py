"""A tenant's full-text index: one tantivy index directory per tenant.

The index is a projection of the archive: it can be dropped and rebuilt (``reindex``),
and ``message_ids()`` lets a reconcile step find messages that are archived but missing
here. Every search carries a :class:`Scope`; there is no method that searches without one.
Each document also carries its tenant id, and every query requires it, so even a
misplaced directory could not answer for another tenant.

Writers: tantivy allows one writer per index directory across processes (a lock file);
``add``/``delete``/``reindex`` open one, commit, and release it, retrying while another
process holds it. Readers notice commits from any process by checking ``meta.json``
before each search, so new mail is searchable as soon as its batch is committed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import html
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar

import tantivy
from tantivy import Occur, Order, Query

from mailvault.search import query as q
from mailvault.search._compile import Compiler
from mailvault.search._pageout import MergePageOut
from mailvault.search._phrases import TextLoader, verified_leaves
from mailvault.search._schema import SCHEMA_VERSION, build_schema, register_analyzers
from mailvault.search.query import QuerySyntaxError, parse
from mailvault.search.types import (
    Address,
    IndexDocument,
    Scope,
    SearchHit,
    SearchResult,
    SortOrder,
)

WRITER_HEAP_BYTES = 64 * 1024 * 1024
# One indexing thread: tantivy splits the heap per thread and each thread writes its own
# segment per commit, so the default (one per core) doubled the segments and the merges.
# Measured on 170,000 R-help documents: peak RSS 274 -> 228 MB, CPU 0.11 -> 0.08 s per
# 1,000, same wall time (bench/index_memory.py).
WRITER_THREADS = 1
WRITER_LOCK_TIMEOUT = 30.0
_DELETE_CHUNK = 10_000  # message ids per replace-delete query
MAX_INDEXED_CHARS = 4_000_000  # per text field; extraction limits should bite earlier
PREVIEW_CHARS = 320  # body prefix kept in the index for snippets (size matters: issue 3)
SNIPPET_CHARS = 200
MAX_LIMIT = 1000
_VERSION_FILE = "mailvault-index.json"
_TENANT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Where phrase checks get body texts when search() is not given a loader: set by the
# Django app (search.apps) to read them from the archive; the library knows no archive.
# Tenant key -> loader, or None when that tenant has none.
default_text_loader: Callable[[str], TextLoader | None] | None = None

# Phrases over the body are checked in batches of candidates (see search()): the first
# batch covers a page twice over, later ones double up to this size.
VERIFY_FIRST_BATCH = 100
VERIFY_MAX_BATCH = 5_000
# Up to this many candidates, every one is checked so the total is exact, not estimated.
VERIFY_EXACT_TOTAL_UP_TO = 1_000
# An interactive search stops checking after this long (a phrase of words that are each
# everywhere but rarely together, say), with the hits found so far and an estimate.
VERIFY_BUDGET_S = 2.0

# tantivy keeps dates as 64-bit nanoseconds (1677..2262); real mail says "year 102" too.
_MIN_DATE = datetime(1678, 1, 1, tzinfo=UTC)
_MAX_DATE = datetime(2262, 1, 1, tzinfo=UTC)


def _index_date(value: datetime) -> datetime:
    """``value`` clamped into the range tantivy can store."""
    try:
        return min(max(value, _MIN_DATE), _MAX_DATE)
    except OverflowError:  # an offset pushes a year-1 date below datetime's range
        return _MIN_DATE


def _release_freed_memory() -> None:
    """Hand the heap a writer freed back to the OS. glibc keeps freed memory of big
    allocations for reuse, so without this every commit of a long import left the
    process tens of MB bigger (measured: 220 MB after 20,000 R-help messages, 150 with)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _find_malloc_trim()


class IndexSchemaMismatch(RuntimeError):
    """The directory holds an index of another schema version: run ``mailvault reindex``."""


def _tenant_key(tenant_id: object) -> str:
    key = str(tenant_id)
    if not _TENANT_ID_RE.match(key):
        raise ValueError(f"invalid tenant id for an index directory: {key!r}")
    return key


def _default_base_dir() -> Path:
    from django.conf import settings

    return Path(settings.MAILVAULT_INDEX_DIR)


def _default_tz() -> tzinfo:
    from django.conf import settings

    if settings.configured:
        from django.utils import timezone

        return timezone.get_default_timezone()
    return UTC  # pragma: no cover


class TenantIndex:
    """Open with :meth:`open`; instances are shared per directory within a process."""

    _instances: ClassVar[dict[Path, TenantIndex]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, tenant_id: str, path: Path) -> None:
        self.tenant_id = tenant_id
        self.path = path
        self._schema = build_schema()
        self._index = self._open_or_create()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._meta_stamp: tuple[int, int] | None = None
        self._regex_cache: dict[tuple[str, str], Query] = {}
        self._reload()

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, tenant_id: object, *, base_dir: Path | None = None) -> TenantIndex:
        """The index of ``tenant_id`` under ``base_dir`` (default MAILVAULT_INDEX_DIR)."""
        key = _tenant_key(tenant_id)
        path = (Path(base_dir) if base_dir else _default_base_dir()).resolve() / key
        with cls._instances_lock:
            inst = cls._instances.get(path)
            if inst is None:
                inst = cls(key, path)
                cls._instances[path] = inst
            return inst

    @classmethod
    def destroy(cls, tenant_id: object, *, base_dir: Path | None = None) -> None:
        """Delete a tenant's index directory (tenant removal, or a schema change)."""
        key = _tenant_key(tenant_id)
        path = (Path(base_dir) if base_dir else _default_base_dir()).resolve() / key
        with cls._instances_lock:
            cls._instances.pop(path, None)
        shutil.rmtree(path, ignore_errors=True)

    def _open_or_create(self) -> tantivy.Index:
        self.path.mkdir(parents=True, exist_ok=True)
        version_file = self.path / _VERSION_FILE
        exists = tantivy.Index.exists(str(self.path))
        if exists:
            try:
                version = json.loads(version_file.read_text())["schema_version"]
            except (OSError, ValueError, KeyError):
                version = None
            if version != SCHEMA_VERSION:
                raise IndexSchemaMismatch(
                    f"{self.path} holds search index schema {version}, this version "
                    f"needs {SCHEMA_VERSION}; rebuild it with `mailvault reindex`"
                )
        else:  # written first, so a crash mid-creation never leaves an unversioned index
            version_file.write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
        index = tantivy.Index(self._schema, path=str(self.path), reuse=True)
        register_analyzers(index)
        index.config_reader(reload_policy="Manual")
        return index

    # --- writing -------------------------------------------------------------------------

    @contextmanager
    def _writer(self) -> Iterator[tantivy.IndexWriter]:
        with self._write_lock:
            writer = self._acquire_writer()
            with MergePageOut(self.path):
                try:
                    yield writer
                    writer.commit()
                except BaseException:
                    writer.rollback()
                    raise
                finally:
                    writer.wait_merging_threads()  # also releases the directory lock
                    del writer
                    _release_freed_memory()
            with self._read_lock:
                self._meta_stamp = None  # the next search reloads (a bulk import never does)

    def _acquire_writer(self) -> tantivy.IndexWriter:
        deadline = time.monotonic() + WRITER_LOCK_TIMEOUT
        while True:
            try:
                return self._index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=WRITER_THREADS)
            except ValueError as exc:  # another process holds the writer lock
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def add(self, docs: Iterable[IndexDocument], *, replace: bool = True) -> int:
        """Index ``docs`` in one batch and commit; returns how many were added.

        With ``replace`` (the default) a message already indexed is replaced, so adding
        it again after it was filed into another mailbox updates its mailbox list. The
        old documents are deleted by one query per few thousand ids before the new ones
        are added (a delete applies only to documents added before it), and a message
        given twice is added once, as given last.
        """
        latest = {doc.message_id: doc for doc in docs}
        with self._writer() as writer:
            if replace:
                ids = list(latest)
                for start in range(0, len(ids), _DELETE_CHUNK):
                    chunk = ids[start : start + _DELETE_CHUNK]
                    writer.delete_documents_by_query(
                        Query.term_set_query(self._schema, "message_id", chunk)
                    )
            for doc in latest.values():
                writer.add_document(self._document(doc))
        return len(latest)

    def delete(self, message_ids: Iterable[int]) -> None:
        with self._writer() as writer:
            for mid in message_ids:
                writer.delete_documents_by_query(self._id_query(int(mid)))

    def reindex(self, docs: Iterable[IndexDocument]) -> int:
        """Replace the whole index by ``docs`` in one commit (searches see old or new)."""
        count = 0
        with self._writer() as writer:
            writer.delete_all_documents()
            for doc in docs:
                writer.add_document(self._document(doc))
                count += 1
        return count

    def _id_query(self, message_id: int) -> Query:
        return Query.term_query(self._schema, "message_id", message_id)

    def clear(self) -> None:
        with self._writer() as writer:
            writer.delete_all_documents()

    def _document(self, d: IndexDocument) -> tantivy.Document:
        # One dict handed over at once: about half the cost of one add_* call per value.
        fields: dict[str, list[object]] = {
            "message_id": [d.message_id],
            "tenant": [self.tenant_id],
            "date": [_index_date(d.date)],
            "size": [d.size],
            "has_attachment": [d.has_attachment],
        }
        if d.mailbox_ids:
            fields["mailbox"] = [*sorted(set(d.mailbox_ids))]
        if d.archived_at is not None:
            fields["archived_at"] = [_index_date(d.archived_at)]
        if d.subject:
            fields["subject"] = [d.subject[:MAX_INDEXED_CHARS]]
        if d.body:
            fields["body"] = [d.body[:MAX_INDEXED_CHARS]]
            fields["preview"] = [d.body[:PREVIEW_CHARS].encode("utf-8", "replace")]
        if d.attachment_text:
            fields["att_text"] = [d.attachment_text[:MAX_INDEXED_CHARS]]
        if d.attachment_names:
            fields["att_name"] = fields["att_name_raw"] = list(d.attachment_names)
        if d.folder_paths:
            fields["folder"] = fields["folder_raw"] = list(d.folder_paths)
        if d.sender is not None:
            _add_party(fields, "from", [d.sender])
            fields["from_name"] = [d.sender.name.encode("utf-8", "replace")]
        _add_party(fields, "to", d.to)
        _add_party(fields, "cc", d.cc)
        _add_party(fields, "bcc", d.bcc)
        if d.envelope_recipients:
            fields["env_text"] = fields["env_raw"] = list(d.envelope_recipients)
        return tantivy.Document.from_dict(fields, self._schema)

    # --- reading -------------------------------------------------------------------------

    def _reload(self, *, force: bool = False) -> None:
        """Reload the reader if any process committed since the last look."""
        try:
            st = os.stat(self.path / "meta.json")
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        with self._read_lock:
            if force or stamp != self._meta_stamp or stamp is None:
                self._index.reload()
                self._meta_stamp = stamp

    def _searcher(self) -> tantivy.Searcher:
        self._reload()
        return self._index.searcher()

    def count(self) -> int:
        return int(self._searcher().num_docs)

    def message_ids(self) -> set[int]:
        """Every indexed message id (for reconciling the index with the archive)."""
        searcher = self._searcher()
        total = searcher.num_docs
        if not total:
            return set()
        result = searcher.search(Query.all_query(), limit=total, count=False)
        addrs = [addr for _, addr in result.hits]
        values = searcher.fast_field_values("message_id", addrs)
        return {int(v) for v in values if v is not None}

    def _scope_query(self, scope: Scope) -> Query:
        tenant = Query.term_query(self._schema, "tenant", self.tenant_id)
        ids = scope.mailbox_ids
        if ids is None:
            return tenant
        mailboxes = Query.term_set_query(self._schema, "mailbox", sorted(ids))
        return Query.boolean_query([(Occur.Must, tenant), (Occur.Must, mailboxes)])

    def search(
        self,
        query: str,
        scope: Scope,
        *,
        sort: SortOrder = "date",
        limit: int = 50,
        offset: int = 0,
        tz: tzinfo | None = None,
        text_loader: TextLoader | None = None,
    ) -> SearchResult:
        """Run the user's ``query`` within ``scope``.

        Raises :class:`QuerySyntaxError` (with a message for the user) for a malformed
        query. Dates in the query are calendar days in ``tz`` (default TIME_ZONE).

        ``text_loader`` gives body texts by message id (default: ``default_text_loader``
        for this tenant). A phrase over the body needs it:
        the body is indexed without positions, so the candidates (all the phrase's words)
        are checked against their texts, in batches, in result order, until the page is
        full. The hits are exact; the total is exact up to VERIFY_EXACT_TOTAL_UP_TO
        candidates and estimated from the share checked beyond (``total_is_estimate``).
        Checking stops after VERIFY_BUDGET_S: the page may then hold fewer hits than
        there are.
        Snippets come from the first PREVIEW_CHARS characters kept in the index, or from
        the whole text where a phrase check loaded it.
        """
        if not isinstance(scope, Scope):
            raise TypeError("search() needs a Scope: Scope.mailboxes(...) or whole_tenant()")
        if sort not in ("date", "relevance"):
            raise ValueError(f"unknown sort {sort!r}")
        if not 0 < limit <= MAX_LIMIT or offset < 0:
            raise ValueError("limit must be 1..1000 and offset >= 0")
        node = parse(query)
        if scope.mailbox_ids is not None and not scope.mailbox_ids:
            return SearchResult(total=0, hits=[])
        searcher = self._searcher()
        compiler = self._compiler(searcher, tz, scope.is_whole_tenant)
        user_query = _compiled(compiler, node)
        scope_query = Query.const_score_query(self._scope_query(scope), 0.0)
        final = _all_of(user_query, scope_query)
        if compiler.phrase_leaves:
            if text_loader is None and default_text_loader is not None:
                text_loader = default_text_loader(self.tenant_id)
            return self._search_checked(
                searcher, compiler, node, final, scope_query, sort, limit, offset, text_loader
            )
        result = self._run(searcher, final, sort, limit, offset, count=True)
        hits = self._hits(searcher, user_query, compiler.term_fields, result.hits, sort, {})
        # ``count`` is missing from tantivy's type stubs, not from the object.
        total = int(getattr(result, "count", None) or 0)
        return SearchResult(total=total, hits=hits)

    def matching_ids(
        self, query: str, scope: Scope, *, text_loader: TextLoader, strict: bool = True
    ) -> set[int]:
        """Ids of every message ``query`` matches within ``scope`` (no paging, no snippets).

        Phrases over the body are checked for every candidate. With ``strict`` (decisions
        about deletion and holds) a candidate whose text cannot be read raises
        ``UnverifiableMessages`` instead of counting as not matching.
        """
        node = parse(query)
        if scope.mailbox_ids is not None and not scope.mailbox_ids:
            return set()
        searcher = self._searcher()
        total = int(searcher.num_docs)
        if not total:
            return set()
        compiler = self._compiler(searcher, None, scope.is_whole_tenant)
        scope_query = Query.const_score_query(self._scope_query(scope), 0.0)
        final = _all_of(_compiled(compiler, node), scope_query)
        result = searcher.search(final, limit=total, count=False)
        ids = self._message_ids(searcher, [address for _score, address in result.hits])
        if not compiler.phrase_leaves:
            return set(ids)
        matched: set[int] = set()
        for start in range(0, len(ids), VERIFY_MAX_BATCH):
            batch = ids[start : start + VERIFY_MAX_BATCH]
            found, _texts = verified_leaves(
                compiler.phrase_leaves, batch, text_loader, strict=strict
            )
            exact = self._exact(searcher, compiler, node, found, scope_query, batch)
            hits = searcher.search(exact, limit=len(batch), count=False).hits
            matched.update(self._message_ids(searcher, [address for _score, address in hits]))
        return matched

    def _compiler(
        self,
        searcher: tantivy.Searcher,
        tz: tzinfo | None,
        privileged: bool,
        verified: dict[int, list[int]] | None = None,
    ) -> Compiler:
        return Compiler(
            self._schema,
            tz or _default_tz(),
            privileged,
            searcher=searcher,
            regex_cache=self._regex_cache,
            verified=verified,
        )

    def _run(
        self,
        searcher: tantivy.Searcher,
        query: Query,
        sort: SortOrder,
        limit: int,
        offset: int,
        *,
        count: bool,
    ) -> tantivy.SearchResult:
        if sort == "date":
            return searcher.search(
                query, limit, count=count, order_by_field="date", offset=offset, order=Order.Desc
            )
        return searcher.search(query, limit, count=count, offset=offset)

    @staticmethod
    def _message_ids(searcher: tantivy.Searcher, addresses: list[tantivy.DocAddress]) -> list[int]:
        if not addresses:
            return []
        return [
            int(v) for v in searcher.fast_field_values("message_id", addresses) if v is not None
        ]

    def _exact(
        self,
        searcher: tantivy.Searcher,
        compiler: Compiler,
        node: q.Node,
        found: dict[int, list[int]],
        scope_query: Query,
        batch: list[int],
    ) -> Query:
        """The query, exact for the messages of ``batch`` whose phrases were checked."""
        exact = self._compiler(searcher, compiler.tz, compiler.privileged, verified=found)
        in_batch = Query.term_set_query(self._schema, "message_id", sorted(batch))
        return Query.boolean_query(
            [
                (Occur.Must, _compiled(exact, node)),
                (Occur.Must, scope_query),
                (Occur.Must, Query.const_score_query(in_batch, 0.0)),
            ]
        )

    def _search_checked(
        self,
        searcher: tantivy.Searcher,
        compiler: Compiler,
        node: q.Node,
        superset: Query,
        scope_query: Query,
        sort: SortOrder,
        limit: int,
        offset: int,
        text_loader: TextLoader | None,
    ) -> SearchResult:
        """A search whose body phrases are checked batch by batch (see :meth:`search`).

        Batches are consecutive ranges of the superset's order, so for date order the
        exact hits come out in order; for relevance each batch is ordered by its exact
        scores.
        """
        wanted = offset + limit
        size = max(VERIFY_FIRST_BATCH, 2 * wanted)
        result = self._run(searcher, superset, sort, size, 0, count=True)
        candidates = int(getattr(result, "count", None) or 0)
        check_all = candidates <= VERIFY_EXACT_TOTAL_UP_TO
        hits: list[tuple[Any, tantivy.DocAddress]] = []
        texts: dict[int, str] = {}
        checked = 0
        started = time.monotonic()
        if result.hits and text_loader is None:
            raise ValueError("a phrase over the body needs a text_loader to be checked")
        while result.hits and text_loader is not None:
            batch = self._message_ids(searcher, [address for _key, address in result.hits])
            found, loaded = verified_leaves(
                compiler.phrase_leaves, batch, text_loader, strict=False
            )
            exact = self._exact(searcher, compiler, node, found, scope_query, batch)
            page = self._run(searcher, exact, sort, len(batch), 0, count=False).hits
            if len(hits) < wanted:  # keep the texts of hits up to the page's end (snippets)
                upto = page[: wanted - len(hits)]
                for message_id in self._message_ids(searcher, [a for _k, a in upto]):
                    texts[message_id] = loaded.get(message_id, "")
            hits.extend(page)
            checked += len(result.hits)
            if checked >= candidates or (len(hits) >= wanted and not check_all):
                break
            if time.monotonic() - started > VERIFY_BUDGET_S:
                break  # fewer hits than the page may hold; the total says "About"
            size = min(VERIFY_MAX_BATCH, size * 2)
            result = self._run(searcher, superset, sort, size, checked, count=False)
        estimate = checked < candidates
        total = len(hits)
        if estimate and checked:
            total = max(total, round(candidates * len(hits) / checked))
        shown = self._hits(
            searcher, superset, compiler.term_fields, hits[offset:wanted], sort, texts
        )
        return SearchResult(total=total, hits=shown, total_is_estimate=estimate)

    def _hits(
        self,
        searcher: tantivy.Searcher,
        user_query: Query,
        term_fields: set[str],
        found: list[tuple[Any, tantivy.DocAddress]],
        sort: SortOrder,
        texts: dict[int, str],
    ) -> list[SearchHit]:
        if not found:
            return []
        stored = [(key, searcher.doc(addr).to_dict()) for key, addr in found]
        body_gen = subject_gen = None
        if "body" in term_fields:
            body_gen = tantivy.SnippetGenerator.create(searcher, user_query, self._schema, "body")
            body_gen.set_max_num_chars(SNIPPET_CHARS)
        if "subject" in term_fields:
            subject_gen = tantivy.SnippetGenerator.create(
                searcher, user_query, self._schema, "subject"
            )
            subject_gen.set_max_num_chars(1000)
        hits = []
        for key, d in stored:
            mid = int(d["message_id"][0])
            subject = (d.get("subject") or [""])[0]
            text = texts.get(mid)
            if not text:
                text = b"".join(d.get("preview") or []).decode("utf-8", "replace")
            hits.append(
                SearchHit(
                    message_id=mid,
                    date=d["date"][0],
                    subject=subject,
                    sender=_sender(d),
                    mailbox_ids=tuple(int(m) for m in d.get("mailbox", [])),
                    snippet_html=_highlight(body_gen, "body", text, SNIPPET_CHARS),
                    subject_html=_highlight(subject_gen, "subject", subject, 1000),
                    score=float(key) if sort == "relevance" else None,
                )
            )
        return hits


def _compiled(compiler: Compiler, node: q.Node) -> Query:
    try:
        return compiler.compile(node)
    except QuerySyntaxError:
        raise
    except ValueError as exc:  # e.g. a wildcard too large for the regex automaton
        raise QuerySyntaxError(f"The query is too complex ({exc})") from None


def _all_of(*queries: Query) -> Query:
    return Query.boolean_query([(Occur.Must, x) for x in queries])


def _add_party(fields: dict[str, list[object]], party: str, addresses: list[Address]) -> None:
    if addresses:
        fields[f"{party}_text"] = [
            f"{a.name} {a.address}" if a.name else a.address for a in addresses
        ]
        fields[f"{party}_raw"] = [a.address for a in addresses]


def _sender(d: dict[str, list]) -> Address | None:
    address = d.get("from_raw")
    if not address:
        return None
    name = b"".join(d.get("from_name") or []).decode("utf-8", "replace")
    return Address(address=address[0], name=name)


def _highlight(gen: tantivy.SnippetGenerator | None, field: str, text: str, chars: int) -> str:
    if not text:
        return ""
    if gen is not None:
        snippet = gen.snippet_from_doc(tantivy.Document(**{field: text}))
        if snippet.highlighted():
            return str(snippet.to_html())
    head = text[:chars]
    return html.escape(head) + ("…" if len(text) > chars else "")
