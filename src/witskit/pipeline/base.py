"""The sink interface: ``write(batch, upto=...)`` and ``aclose()``, and the live sinks fed at receive time.

Kept apart from :mod:`witskit.pipeline.sinks` (which picks a sink by URL), so that a sink defined
in its own module (the relay, MQTT) and ``open_sink`` can both import it without a circle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from witskit.protocol import DecodedFrame

__all__ = ["LiveSink", "Sink"]


class Sink(ABC):
    """A destination for decoded frames."""

    name: str
    #: The most frames this sink takes in one write (None: the pipeline's ``batch_max``).
    batch_max: int | None = None
    #: True: a batch that failed is written again as the same records, after a restart of the
    #: pipeline too (it notes each batch's bounds in the spool's directory before writing it).
    #: For a sink whose messages depend on how the spool was cut into batches (the JetStream
    #: sink's bundles and their message ids), so that a retry is recognised as one.
    stable_batches: bool = False

    def resume_after(self) -> int:
        """The last spool sequence this sink already holds durably (0: none known)."""
        return 0

    @abstractmethod
    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """Store ``batch`` durably; ``upto`` is the spool sequence of its last frame."""

    async def write_sequenced(
        self, batch: Sequence[DecodedFrame], sequences: Sequence[int], *, upto: int
    ) -> None:
        """:meth:`write`, told each frame's spool sequence (``sequences[i]`` is ``batch[i]``'s).

        The pipeline calls this one. A sink that names what it writes by spool sequence (the
        JetStream sink's message ids) overrides it; the others only need :meth:`write`.
        """
        await self.write(batch, upto=upto)

    async def start(self) -> None:  # noqa: B027 - most sinks open on their first write
        """Open what must be open before the first frame (a relay's listening socket)."""

    async def aclose(self) -> None:  # noqa: B027 - most sinks have nothing to release
        """Release resources."""


class LiveSink(Sink):
    """A sink fed at receive time, not from the spool: the WITS relay.

    The pipeline calls :meth:`offer` with each frame as soon as it is spooled and decoded; a live
    sink must never wait there (it queues, or drops and counts). It takes no part in
    acknowledging the spool: what it did not deliver is not replayed to it (live only). Used
    outside a pipeline, :meth:`write` offers each frame of the batch.
    """

    @abstractmethod
    def offer(self, frame: DecodedFrame) -> None:
        """Take one frame now, without waiting."""

    async def write(self, batch: Sequence[DecodedFrame], *, upto: int) -> None:
        """Offer every frame of the batch."""
        for frame in batch:
            self.offer(frame)
