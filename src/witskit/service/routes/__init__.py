"""The API's routers: ``auth``, ``data``, ``connections``, ``users`` (with API keys and audit), ``ops``."""
