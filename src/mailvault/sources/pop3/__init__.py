"""POP3 source (poplib) for single mailboxes, incremental by UIDL."""

from mailvault.sources.pop3.client import Pop3Error, Pop3LoginError, Pop3Message, Pop3Session

__all__ = ["Pop3Error", "Pop3LoginError", "Pop3Message", "Pop3Session"]
