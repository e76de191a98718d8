"""Archiving profiles: configuration, the ``sources.archiving_profile`` job, deleting in
the source mailbox after a verified archive copy."""
