"""Build the pieces of a pipeline from settings and a pipeline file (shared by ``stream`` and ``run``)."""

from __future__ import annotations

from witskit.config import ConfigError, PipelineConfig, WitsConfig
from witskit.protocol import WITSDecoder
from witskit.storage.spool import Spool

__all__ = ["decoder_from", "spool_from"]


def decoder_from(plan: PipelineConfig, config: WitsConfig) -> WITSDecoder:
    """The decoder a pipeline file asks for (its overlay loaded); the process zone when it names none."""
    settings = plan.decoder
    if settings.overlay is not None:
        from witskit.symbols import load_overlay

        load_overlay(settings.overlay)
    timezone = settings.timezone
    if "timezone" not in settings.model_fields_set:
        timezone = config.timezone  # the file did not say: WITS_TIMEZONE applies
    return WITSDecoder(settings.metric, settings.strict, timezone=timezone)


def spool_from(plan: PipelineConfig, config: WitsConfig) -> Spool:
    """The spool a pipeline file asks for, each unset field taken from the process settings.

    A combination that does not fit (a segment larger than the bound, from the file and the
    environment together) is a :class:`ConfigError` naming both settings.
    """
    settings = plan.spool
    max_bytes = settings.max_bytes or config.spool_max_bytes
    segment_bytes = settings.segment_bytes or config.spool_segment_bytes
    if segment_bytes is not None and segment_bytes > max_bytes:
        raise ConfigError(
            f"spool.segment_bytes or WITS_SPOOL_SEGMENT_BYTES ({segment_bytes:,}) must not exceed "
            f"spool.max_bytes or WITS_SPOOL_MAX_BYTES ({max_bytes:,}): several segments must fit in "
            "the bound (leave the segment size unset for max_bytes / 8)"
        )
    return Spool(
        settings.dir or config.spool_dir,
        fsync=settings.fsync or config.spool_fsync,
        fsync_interval_ms=settings.fsync_interval_ms or config.spool_fsync_interval_ms,
        max_bytes=max_bytes,
        overflow=settings.overflow or config.spool_overflow,
        segment_bytes=segment_bytes,
    )
