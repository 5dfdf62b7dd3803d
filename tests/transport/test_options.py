"""One grammar for URL options: URLOptions, and every scheme (sources, the rig server, sinks) using it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from witskit.errors import UsageError
from witskit.pipeline import CSVSink, JSONLSink, MemorySink, open_sink
from witskit.sim.server import RigServer
from witskit.sim.source import SimulatorSource
from witskit.transport import open_source
from witskit.transport.options import URLOptions, redact_url


# The reader -------------------------------------------------------------------------------------
def test_each_reader_returns_its_type_or_none_when_absent() -> None:
    query = URLOptions(
        "x://h?t=abc&f=off&i=-3&c=7&n=2.5&s=0.25&z=0&k=E&l=8,1&p=pw",
        ("t", "f", "i", "c", "n", "s", "z", "k", "l", "p", "absent"),
    )
    assert query.text("t") == "abc"
    assert query.flag("f") is False
    assert query.integer("i") == -3
    assert query.count("c") == 7
    assert query.number("n") == 2.5
    assert query.seconds("s") == 0.25
    assert query.seconds("z", zero_is_none=True) is None
    assert query.choice("k", {"N": "none", "E": "even"}) == "even"
    assert query.integers("l", (1, 2, 8)) == (8, 1)
    assert query.secret("p") == "pw"
    assert "t" in query
    assert "absent" not in query
    for read in (query.text, query.flag, query.integer, query.count, query.number, query.seconds):
        assert read("absent") is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("a=1&a=2", "x://h?a=1&a=2: option 'a' is given twice"),
        ("b=1", "x://h?b=1: unknown option 'b' for x:// (known: a, f, i)"),
        ("b=1&c=2", "unknown options 'b', 'c' for x://"),
        ("a", "malformed query string"),
        ("f=banana", "x://h?f=banana: bad option value: f='banana' is not a boolean (use 1 or 0)"),
        ("f=", "f='' is not a boolean"),
        ("i=1.5", "bad option value: i='1.5' is not an integer"),
        ("i=--1", "i='--1' is not an integer"),
        ("i=%C2%B2", "is not an integer"),  # a superscript two: str.isdigit says yes, int() says no
        ("i=" + "9" * 5000, "is not an integer"),  # past int()'s digit limit: an error, not a ValueError
    ],
)
def test_one_error_style_naming_the_url_the_option_and_what_was_expected(query: str, message: str) -> None:
    def read(url: str) -> None:
        parsed = URLOptions(url, ("a", "f", "i"))
        parsed.flag("f")
        parsed.integer("i")

    with pytest.raises(UsageError, match=re.escape(message)):
        read(f"x://h?{query}")


@pytest.mark.parametrize(
    ("read", "value", "expected"),
    [
        ("count", "0", "is not a positive integer"),
        ("count", "-1", "is not a positive integer"),
        ("number", "0", "is not a positive number"),
        ("number", "inf", "is not a positive number"),
        ("number", "nan", "is not a positive number"),
        ("seconds", "none", "is not a positive number of seconds"),
        ("text", "", "is empty"),
    ],
)
def test_bad_values_of_each_type(read: str, value: str, expected: str) -> None:
    query = URLOptions(f"x://h?v={value}", ("v",))
    with pytest.raises(
        UsageError, match=re.escape(f"x://h?v={value}: bad option value: v='{value}' {expected}")
    ):
        getattr(query, read)("v")


def test_a_secret_is_never_shown() -> None:
    url = "tls://h:1?key_password=s3cret&key_password=s3cret"
    with pytest.raises(UsageError) as info:
        URLOptions(url, ("key_password",))
    assert "s3cret" not in str(info.value)
    assert str(info.value).startswith(redact_url(url))
    query = URLOptions("tls://u:pw@h:1?key_password=s3cret", ("key_password",))
    assert "s3cret" not in str(query.bad("key_password", "is wrong"))
    assert "pw" not in query.url
    assert "pw" not in repr(query)
    with pytest.raises(UsageError, match="key_password is empty"):
        URLOptions("tls://h:1?key_password=", ("key_password",)).secret("key_password")


# sim:// -----------------------------------------------------------------------------------------
def test_the_sim_url_of_the_issue_is_refused_not_read_as_metric_off_seed_2() -> None:
    with pytest.raises(
        UsageError, match=re.escape("sim://rig-1?metric=banana&seed=1&seed=2: option 'seed' is given twice")
    ):
        open_source("sim://rig-1?metric=banana&seed=1&seed=2")
    with pytest.raises(
        UsageError,
        match=re.escape(
            "sim://rig-1?metric=banana&seed=1: bad option value: metric='banana' is not a boolean"
        ),
    ):
        open_source("sim://rig-1?metric=banana&seed=1")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "sim://x?colour=red",
            "unknown option 'colour' for sim:// (known: frames, metric, name, rate, records",
        ),
        ("sim://x?seed=1.5", "seed='1.5' is not an integer"),
        ("sim://x?rate=fast", "rate='fast' is not a positive number"),
        ("sim://x?rate=0", "rate='0' is not a positive number"),
        ("sim://x?speed=-2", "speed='-2' is not a positive number"),
        ("sim://x?records=1,3", "records='1,3' is not a comma-separated list of 1, 2, 8"),
        ("sim://x?records=", "records=''"),
        ("sim://x?records=1," + "1" * 5000, "is not a comma-separated list"),
        ("sim://x?frames=-1", "frames='-1' is not a non-negative integer"),
        ("sim://x?metric=2", "metric='2' is not a boolean"),
        ("sim://x?name=", "name='' is empty"),
        ("sim://x#frag", "unexpected fragment"),
    ],
)
def test_sim_refuses_bad_options(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        open_source(url)
    assert str(info.value).startswith(url)


def test_sim_reads_good_options() -> None:
    src = open_source("sim://rig-7?seed=-4&rate=2.5&speed=10&metric=yes&records=8,1&frames=0")
    assert isinstance(src, SimulatorSource)
    assert (src.name, src.seed, src.rate, src.speed, src.metric) == ("rig-7", -4, 2.5, 10.0, True)
    assert (src.records, src.frames) == ((8, 1), 0)
    defaults = SimulatorSource.from_url("sim://")
    assert (defaults.name, defaults.seed, defaults.rate, defaults.records, defaults.metric) == (
        "rig-1",
        0,
        1.0,
        (1, 2, 8),
        False,
    )
    assert SimulatorSource.from_url("sim://a?name=b").name == "b"
    assert SimulatorSource.from_url("sim://a?name=b&seed=1", name="c", seed=2).seed == 2


# The rig server's push URLs -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("tcp://127.0.0.1:5000?ca=x.pem", "unknown option 'ca' for tcp:// (known: none)"),
        ("tls://127.0.0.1:5000?ca=a.pem&ca=b.pem", "option 'ca' is given twice"),
        ("tls://127.0.0.1:5000?cafile=a.pem", "unknown option 'cafile' for tls:// (known: ca, hostname)"),
        ("tls://127.0.0.1:5000?hostname=", "bad option value: hostname='' is empty"),
    ],
)
def test_push_refuses_bad_options(url: str, message: str) -> None:
    async def push() -> None:
        async with RigServer() as server:
            await server.push(url)

    with pytest.raises(UsageError, match=re.escape(message)) as info:
        asyncio.run(push())
    assert str(info.value).startswith(url)


# Sinks ------------------------------------------------------------------------------------------
def test_file_sinks_take_fsync_and_a_decoded_path(tmp_path: Path) -> None:
    jsonl = open_sink(f"jsonl://{tmp_path}/rig%20one.jsonl?fsync=0")
    assert isinstance(jsonl, JSONLSink)
    assert (jsonl.path, jsonl.fsync) == (tmp_path / "rig one.jsonl", False)
    csv = open_sink(f"csv://{tmp_path}/rig.csv")
    assert isinstance(csv, CSVSink)
    assert csv.fsync
    synced = open_sink(f"csv://{tmp_path}/synced.csv?fsync=0", fsync=True)
    assert isinstance(synced, CSVSink)
    assert synced.fsync  # keyword options override the query
    memory = open_sink("memory://tap")
    assert isinstance(memory, MemorySink)
    assert memory.name == "tap"
    for sink in (jsonl, csv, synced):
        asyncio.run(sink.aclose())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "jsonl://out.jsonl?fsync=maybe",
            "jsonl://out.jsonl?fsync=maybe: bad option value: fsync='maybe' is not a boolean",
        ),
        ("csv://out.csv?fsync=0&fsync=1", "csv://out.csv?fsync=0&fsync=1: option 'fsync' is given twice"),
        ("csv://out.csv?sync=0", "unknown option 'sync' for csv:// (known: fsync)"),
        ("memory://tap?fsync=0", "unknown option 'fsync' for memory:// (known: none)"),
        ("jsonl://out.jsonl#x", "unexpected fragment"),
        ("jsonl://?fsync=1", "a jsonl sink needs a path"),
    ],
)
def test_sinks_refuse_bad_options(
    url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing is created, and if it were, not in the source tree
    with pytest.raises(UsageError, match=re.escape(message)):
        open_sink(url)
    assert list(tmp_path.iterdir()) == []


def test_a_pipeline_file_check_finds_bad_options_in_sources_and_sinks_before_anything_starts(
    tmp_path: Path,
) -> None:
    from witskit.config import load_pipeline
    from witskit.errors import ConfigError
    from witskit.pipeline.build import check_plan

    path = tmp_path / "pipe.yaml"
    path.write_text(
        "sources:\n  - url: sim://rig-1?metric=banana\n"
        f"sinks:\n  - url: jsonl://{tmp_path}/out.jsonl?fsync=maybe\n  - url: memory://tap?x=1\n"
    )
    with pytest.raises(ConfigError) as info:
        check_plan(load_pipeline(path), path)
    message = str(info.value)
    assert "sources.0.url: sim://rig-1?metric=banana: bad option value: metric='banana'" in message
    assert "sinks.0.url:" in message
    assert "fsync='maybe' is not a boolean" in message
    assert "sinks.1.url: memory://tap?x=1: unknown option 'x' for memory://" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.yaml"]
