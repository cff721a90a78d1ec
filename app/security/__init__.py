"""Security: the credential vault, log redaction, the audit log and TLS contexts.

Import from the modules (``app.security.vault``, ``app.security.tls`` …): each has one job.
"""
