"""Security: authentication, authorization, input validation and redacted logging.

Import the submodules directly (``witskit.security.auth``, ``.rbac``, ``.validation``,
``.logging``); this package imports nothing heavy on its own.
"""
