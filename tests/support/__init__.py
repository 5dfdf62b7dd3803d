"""Helpers shared by the test directories (one copy of each; import ``from support.<module> import ...``).

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject's pytest options), so every test file and
conftest reaches this package the same way, whichever directory it is in.

- ``ci``: whether the run is a CI run (``CI=true``), where nothing may be skipped.
- ``waiting``: bounded polling until a condition holds (async and blocking).
- ``leaks``: the check that a test left no socket open and no thread running.
- ``databases``: the PostgreSQL and MariaDB servers on 127.0.0.1 and throw-away databases on them.
- ``auth``: cheap Argon2id for tests, and logging in to a running service for a token.
- ``commands``: ``python -m witskit`` and the documents' console lines as a user runs them.
- ``edr``: a scriptable EDR server, a trustme PKI and small helpers for the transport tests.
- ``energistics``: validation of WITSML documents against the Energistics schemas (the exports).
- ``mosquitto``: a Mosquitto broker of the test's own on a free port, that it may stop and restart.
"""
