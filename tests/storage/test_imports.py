"""The import progress table on every backend: read, replace, keys of any path."""

from __future__ import annotations

from pathlib import Path

from witskit.storage import Store
from witskit.storage.imports import ImportMark, file_identity, file_key, head_sha256


async def test_a_mark_is_saved_replaced_and_read_back(fresh_url: str, tmp_path: Path) -> None:
    log = tmp_path.joinpath(*["a-long-directory-name-" * 10] * 4, "rig 7 (2025).wits")  # > 768 chars
    log.parent.mkdir(parents=True)
    log.write_bytes(b"&&\r\n01083650.40\r\n!!\r\n" * 10)
    ident = file_identity(log)
    key = file_key("rig-7", ident.path)
    assert len(key) == 64
    store = await Store.open(fresh_url, timeout=10)
    try:
        assert await store.import_mark(key) is None
        mark = ImportMark(
            key, "rig-7", ident.path, ident.size, ident.mtime_ns, 100, head_sha256(log, 100), 42, 4, 2
        )
        await store.save_import_mark(mark)
        later = ImportMark(
            key, "rig-7", ident.path, ident.size, ident.mtime_ns, 100, mark.head_sha256, 84, 7, 4
        )
        await store.save_import_mark(later)
        got = await store.import_mark(key)
        assert got is not None
        assert (got.byte_offset, got.line, got.frames, got.path, got.size) == (
            84,
            7,
            4,
            ident.path,
            ident.size,
        )
        assert got.mtime_ns == ident.mtime_ns
        assert got.updated_at is not None
        assert await store.import_mark(file_key("rig-8", ident.path)) is None
    finally:
        await store.aclose()
