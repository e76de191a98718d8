"""Mailvault: a multi-tenant email archiving service."""

__version__ = "0.1.0"
