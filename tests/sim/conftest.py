"""Simulator test fixtures: the leak check of the transport tests, since the rig server and the
simulated source open sockets, start tasks and run threads as transports do."""

from support.leaks import _async_no_leaks, _no_leaks  # noqa: F401  (the leak check of every test here)
