"""The ingest pipeline: sources -> spool -> decoder -> sinks, losing nothing."""

from witskit.pipeline.hub import LiveHub, Subscription
from witskit.pipeline.records import pack_frame, unpack_frame
from witskit.pipeline.runner import Pipeline, PipelineStats
from witskit.pipeline.sinks import CSVSink, JSONLSink, MemorySink, Sink, SQLSink, open_sink

__all__ = [
    "CSVSink",
    "JSONLSink",
    "LiveHub",
    "MemorySink",
    "Pipeline",
    "PipelineStats",
    "SQLSink",
    "Sink",
    "Subscription",
    "open_sink",
    "pack_frame",
    "unpack_frame",
]
