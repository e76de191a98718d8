"""Fetching ahead: the new messages of a list of folders, read in a thread.

The archiving job ingests a batch while the next ones are being fetched: the thread runs
:meth:`ImapSession.new_messages` folder after folder and hands over what happens as
events through a bounded queue (``depth`` events), so at most a few batches (each bounded
in bytes, see ``FETCH_MAX_BYTES``) wait in memory whatever the mailbox size. The thread
only talks IMAP: problems and notices travel as events too, the caller logs them (its
database connection is not the thread's).

The session belongs to the thread until :meth:`Prefetcher.close` returned.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from types import TracebackType

from mailvault.sources.imap.client import ImapError, ImapLoginError
from mailvault.sources.imap.sync import FetchedBatch, FolderInfo, FolderState, ImapSession


@dataclass(frozen=True)
class Batch:
    folder: FolderInfo
    messages: FetchedBatch


@dataclass(frozen=True)
class FolderDone:
    """Every new message of the folder was handed over; ``state`` is where it stands."""

    folder: FolderInfo
    state: FolderState


@dataclass(frozen=True)
class FolderFailed:
    """The folder stopped with ``error`` (FolderGone, ImapLoginError, ImapError)."""

    folder: FolderInfo
    error: ImapError


@dataclass(frozen=True)
class Notice:
    """A text for the process log; ``problem``: a message that could not be fetched."""

    text: str
    problem: bool = False


Event = Batch | FolderDone | FolderFailed | Notice


@dataclass(frozen=True)
class _Crashed:
    error: BaseException


_END = object()


class Prefetcher:
    """Iterate over the events of ``folders`` (each with the state to sync from; copied,
    the caller's stays as it is). Use as a context manager: leaving it stops the thread
    (after the FETCH it may be in) and gives the session back."""

    def __init__(
        self,
        session: ImapSession,
        folders: list[tuple[FolderInfo, FolderState]],
        *,
        batch_size: int,
        newer_than: date | None = None,
        older_than: date | None = None,
        depth: int = 2,
    ) -> None:
        self.session = session
        self.folders = [(folder, replace(state)) for folder, state in folders]
        self.batch_size = batch_size
        self.newer_than = newer_than
        self.older_than = older_than
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imap-prefetch", daemon=True)

    def __enter__(self) -> Prefetcher:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self._queue.get()
            if event is _END:
                return
            if isinstance(event, _Crashed):
                raise event.error
            assert isinstance(event, Batch | FolderDone | FolderFailed | Notice)
            yield event

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(0.05)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    # --- the thread ------------------------------------------------------------------

    def _put(self, event: object) -> bool:
        """Hand ``event`` over, waiting for room; False once the caller stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(event, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _notice(self, text: str) -> None:
        self._put(Notice(text))

    def _problem(self, text: str) -> None:
        self._put(Notice(text, problem=True))

    def _run(self) -> None:
        session = self.session
        on_retry = session._on_retry
        session._on_retry = self._notice
        try:
            for folder, state in self.folders:
                if self._stop.is_set():
                    return
                try:
                    for batch in session.new_messages(
                        folder,
                        state,
                        newer_than=self.newer_than,
                        older_than=self.older_than,
                        batch_size=self.batch_size,
                        on_problem=self._problem,
                        on_notice=self._notice,
                    ):
                        if not self._put(Batch(folder, batch)):
                            return
                except ImapError as exc:
                    self._put(FolderFailed(folder, exc))
                    if isinstance(exc, ImapLoginError):
                        return  # every folder would fail the same way
                    continue
                self._put(FolderDone(folder, replace(state)))
        except BaseException as exc:  # handed to the caller, which raises it
            self._put(_Crashed(exc))
        finally:
            session._on_retry = on_retry
            self._put(_END)
