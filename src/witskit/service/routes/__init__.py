"""The API's routers: ``auth``, ``data``, ``exports`` (LAS and WITSML), ``connections``, ``users``
(with API keys and audit), ``ops``."""
