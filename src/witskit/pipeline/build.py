"""Build the pieces of a pipeline from settings and a pipeline file (shared by ``stream`` and ``run``)."""

from __future__ import annotations

from witskit.config import PipelineConfig, WitsConfig
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
    """The spool a pipeline file asks for, each unset field taken from the process settings."""
    settings = plan.spool
    return Spool(
        settings.dir or config.spool_dir,
        fsync=settings.fsync or config.spool_fsync,
        fsync_interval_ms=settings.fsync_interval_ms or config.spool_fsync_interval_ms,
        max_bytes=settings.max_bytes or config.spool_max_bytes,
        overflow=settings.overflow or config.spool_overflow,
    )
