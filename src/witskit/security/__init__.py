"""Security: authentication, authorization, input validation and redacted logging.

Import the submodules directly (``witskit.security.auth``, ``.credentials`` (the user name and
password rules), ``.rbac``, ``.validation``, ``.logging``); this package imports nothing heavy on
its own.
"""
