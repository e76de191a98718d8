"""Folder synchronization: mirror the folders of source mailboxes into the archive."""
