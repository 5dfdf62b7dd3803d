"""The fleet tests' NATS cluster fixture itself: a port picked free and taken before its node binds
it (CI saw a route port taken by another process meanwhile) starts the cluster again on new ports,
and nothing is left running."""

from __future__ import annotations

import socket
from pathlib import Path

from support.natscluster import NatsCluster


def test_a_taken_route_port_starts_the_cluster_again_on_new_ports(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "nats", 3)
    taken = socket.socket()
    taken.bind(("127.0.0.1", cluster.cluster_ports[0]))
    taken.listen()
    first = list(cluster.client_ports)
    try:
        with cluster:
            assert cluster.client_ports != first
            assert all(p is not None and p.poll() is None for p in cluster.procs)
    finally:
        taken.close()
    assert cluster.procs == [None, None, None]
