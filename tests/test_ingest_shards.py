"""The image store's shards: records read back exactly, and compaction really removes unwanted pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.common.shards import Record, ShardWriter, compact_each, holds, read_image, shard_sizes


def _write_shard(images: Path, arrays: dict[str, np.ndarray]) -> list[Record]:
    writer = ShardWriter(images)
    places = {image_id: writer.add(image_id, pixels) for image_id, pixels in arrays.items()}
    name = writer.finish()
    return [Record(image_id, name, offset, nbytes) for image_id, (offset, nbytes) in places.items()]


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "a" * 16: rng.integers(0, 4096, (9, 7), dtype=np.uint16),
        "b" * 16: rng.normal(size=(5, 6, 3)).astype(np.float32),
        "c" * 16: rng.integers(-1000, 1000, (4, 4), dtype=np.int16),
    }


def test_every_record_reads_back_exactly(tmp_path: Path) -> None:
    arrays = _arrays()
    records = _write_shard(tmp_path, arrays)
    assert len({record.shard for record in records}) == 1
    for record in records:
        pixels = read_image(tmp_path, record.shard, record.offset)
        assert pixels.dtype == arrays[record.image_id].dtype
        np.testing.assert_array_equal(pixels, arrays[record.image_id])
    assert sum(record.nbytes for record in records) == shard_sizes(tmp_path)[records[0].shard]


def test_the_same_images_make_the_same_shard(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    records = _write_shard(first, _arrays())
    assert _write_shard(second, _arrays()) == records
    assert (first / records[0].shard).read_bytes() == (second / records[0].shard).read_bytes()


def compact(images: Path, live: list[Record]) -> dict[tuple[str, int], Record]:
    """Make the store hold exactly `live`; the records that moved, by their old (shard, offset)."""

    def live_in(name: str) -> list[Record]:
        return sorted((record for record in live if record.shard == name), key=lambda record: record.offset)

    return dict(compact_each(images, live_in))


def test_compaction_drops_unwanted_pixels_from_disk(tmp_path: Path) -> None:
    arrays = _arrays()
    records = _write_shard(tmp_path, arrays)
    (tmp_path / ".shard.123-456.tmp").write_bytes(b"left by a killed worker")
    np.save(tmp_path / "0123456789abcdef.npy", arrays["b" * 16])  # the store layout of earlier versions
    live = [record for record in records if record.image_id != "b" * 16]

    moved = compact(tmp_path, live)

    assert set(moved) == {(record.shard, record.offset) for record in live}
    for record in live:
        new = moved[(record.shard, record.offset)]
        np.testing.assert_array_equal(read_image(tmp_path, new.shard, new.offset), arrays[record.image_id])
    dropped = arrays["b" * 16].tobytes()
    assert all(dropped not in path.read_bytes() for path in tmp_path.iterdir())
    assert [path.name for path in tmp_path.iterdir()] == [moved[(live[0].shard, live[0].offset)].shard]
    assert compact(tmp_path, list(moved.values())) == {}  # nothing left to drop
    assert compact(tmp_path, []) == {} and list(tmp_path.iterdir()) == []


def test_a_shard_cut_short_no_longer_holds_its_last_records(tmp_path: Path) -> None:
    records = _write_shard(tmp_path, _arrays())
    sizes = shard_sizes(tmp_path)
    assert all(holds(sizes, record) for record in records)
    shard = tmp_path / records[0].shard
    shard.write_bytes(shard.read_bytes()[: records[-1].offset + 10])
    sizes = shard_sizes(tmp_path)
    assert [holds(sizes, record) for record in records] == [True, True, False]
    assert not holds({}, records[0])  # a shard deleted by hand
