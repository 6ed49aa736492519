"""Sources: LLaVA JSON round trip, a Hub-style `datasets` folder with a column mapping,
`save_to_disk` folders, and streaming."""

import json

import datasets
import numpy as np
import pytest
from helpers import llava_row, write_png
from PIL import Image

from align2.data.schema import FEATURES
from align2.data.sources import (
    ColumnMapping,
    HFDatasetSource,
    LlavaJsonSource,
    load_canonical,
    write_llava_json,
)
from align2.data.validate import Quarantine, ValidationConfig
from align2.demo.pool import DemoPoolConfig, build_demo_pool, write_demo_pool


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pool")
    rows = build_demo_pool(DemoPoolConfig(split="test", size=40, seed=3))
    write_demo_pool(rows, out)
    return out, rows


def _load(source, folder=None):
    quarantine = Quarantine()
    ds = load_canonical(source, ValidationConfig(folder), quarantine)
    return ds, quarantine


def test_llava_json_round_trip(pool_dir, tmp_path):
    out, rows = pool_dir
    ds, quarantine = _load(LlavaJsonSource(out / "llava_pool.json", out / "images"), out / "images")
    assert quarantine.entries == []
    assert ds.features == FEATURES
    assert ds["id"] == [r["id"] for r in rows]
    assert ds["conversations"] == [r["conversations"] for r in rows]
    assert ds["type"] == [r["type"] for r in rows]
    assert set(ds["source"]) == {"llava:llava_pool.json"}
    # Images stay paths until publishing, and decode to the package's pixels.
    raw = ds.cast_column("image", datasets.Image(decode=False))
    assert raw[0]["image"]["bytes"] is None and raw[0]["image"]["path"].endswith(".png")
    assert np.array_equal(np.asarray(ds[0]["image"]), np.asarray(Image.open(rows[0]["image"])))

    # Canonical rows written back as LLaVA JSON read back identically.
    again = [
        {
            "id": r["id"],
            "image": r["id"] + ".png",
            "conversations": r["conversations"],
            "type": r["type"],
        }
        for r in ds.remove_columns("image")
    ]
    write_llava_json(again, tmp_path / "again.json")
    ds2, _ = _load(LlavaJsonSource(tmp_path / "again.json", out / "images"), out / "images")
    assert (
        ds2.remove_columns(["image", "source"]).to_list()
        == ds.remove_columns(["image", "source"]).to_list()
    )


def test_type_comes_from_row_then_file_name_then_override(tmp_path, image_folder):
    rows = [llava_row("a"), {**llava_row("b"), "type": "detail"}]
    path = tmp_path / "complex_reasoning_77k.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    ds, _ = _load(LlavaJsonSource(path, image_folder), image_folder)
    assert ds["type"] == ["complex_reasoning", "detail"]
    ds, _ = _load(LlavaJsonSource(path, image_folder, type="conversation"), image_folder)
    assert ds["type"] == ["conversation", "conversation"]


def _chat_rows():
    red, blue = Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))
    return {
        "messages": [
            [  # content parts with an image placeholder after the text
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "What colour?"}, {"type": "image"}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "Red."}]},
            ],
            [  # plain string content: the image belongs to the first user turn
                {"role": "user", "content": "Describe it."},
                {"role": "assistant", "content": "A blue square."},
            ],
            [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
            ],
            [{"role": "user", "content": "Two images?"}, {"role": "assistant", "content": "Yes"}],
        ],
        "images": [[red], [blue], [red], [red, blue]],
        "category": ["conversation", "detail", "conversation", "detail"],
    }


def _chat_dataset():
    # `Json` holds content that is a string in some rows and a list of parts in others.
    features = datasets.Features(
        {
            "messages": datasets.List(
                {"role": datasets.Value("string"), "content": datasets.Json()}
            ),
            "images": datasets.List(datasets.Image()),
            "category": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict(_chat_rows(), features=features)


def _chat_source(path, **kwargs):
    columns = ColumnMapping(id=None, image="images", conversations="messages", type="category")
    return HFDatasetSource(str(path), columns=columns, **kwargs)


def _check_chat_result(ds, quarantine, path):
    assert ds["id"] == [f"{path}/0", f"{path}/1"]
    assert ds["conversations"] == [
        [{"from": "human", "value": "What colour?\n<image>"}, {"from": "gpt", "value": "Red."}],
        [
            {"from": "human", "value": "<image>\nDescribe it."},
            {"from": "gpt", "value": "A blue square."},
        ],
    ]
    assert ds["type"] == ["conversation", "detail"]
    assert np.asarray(ds[1]["image"])[0, 0].tolist() == [0, 0, 255]
    assert [(e["index"], e["reason"]) for e in quarantine.entries] == [
        (2, "unknown_role"),
        (3, "image_count"),
    ]
    assert "'system'" in quarantine.entries[0]["detail"]
    summary = quarantine.entries[1]["record"]["image"][0]["bytes"]  # JSON-safe, summarised
    assert summary.startswith("<") and summary.endswith(" bytes>")


def test_hub_style_parquet_folder_with_column_mapping(tmp_path):
    folder = tmp_path / "org__chat-dataset"
    (folder / "data").mkdir(parents=True)
    _chat_dataset().to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    ds, quarantine = _load(_chat_source(folder))
    _check_chat_result(ds, quarantine, folder)


def test_save_to_disk_folder(tmp_path):
    _chat_dataset().save_to_disk(str(tmp_path / "saved"))
    ds, quarantine = _load(_chat_source(tmp_path / "saved"))
    _check_chat_result(ds, quarantine, tmp_path / "saved")


def test_a_pool_written_to_disk_equals_one_in_memory(pool_dir, tmp_path):
    out, rows = pool_dir
    records = json.loads((out / "llava_pool.json").read_text())
    records.insert(5, {"id": "broken", "image": "nope.png", "conversations": []})
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    source = LlavaJsonSource(jsonl, out / "images")
    config = ValidationConfig(out / "images")

    in_memory_q, on_disk_q = Quarantine(), Quarantine()
    in_memory = load_canonical(source, config, in_memory_q)
    on_disk = load_canonical(source, config, on_disk_q, path=tmp_path / "pool.arrow")
    assert on_disk.cache_files[0]["filename"] == str(tmp_path / "pool.arrow")
    assert on_disk.to_list() == in_memory.to_list()
    assert on_disk._fingerprint == in_memory._fingerprint  # the content's, not the path's
    assert on_disk_q.entries == in_memory_q.entries and len(on_disk_q.entries) == 1
    assert on_disk_q.ledger.total == len(records)

    # Other content at the same path gets another fingerprint: caches keyed by it follow.
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records[:10]), encoding="utf-8")
    again = load_canonical(source, config, Quarantine(), path=tmp_path / "pool.arrow")
    assert len(again) == 9 and again._fingerprint != on_disk._fingerprint


def test_streaming_hub_style_source(tmp_path):
    folder = tmp_path / "hubstyle"
    (folder / "data").mkdir(parents=True)
    _chat_dataset().to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    eager, quarantine = _load(_chat_source(folder))
    streamed, stream_q = _load(_chat_source(folder, streaming=True))
    assert streamed.to_list() == eager.to_list()
    assert stream_q.ledger.total == 4 and stream_q.ledger.kept == 2


def _long_chat_dataset(n: int) -> datasets.Dataset:
    image = {"bytes": _png_bytes(), "path": None}
    conversations = [
        [
            {"role": "user", "content": f"Row {i}: what is it? " * 10},
            {"role": "assistant", "content": f"Row {i} shows a square. " * 40},
        ]
        for i in range(n)
    ]
    return datasets.Dataset.from_dict(
        {"messages": conversations, "image": [image] * n},
        features=datasets.Features(
            {
                "messages": datasets.List(
                    {"role": datasets.Value("string"), "content": datasets.Value("string")}
                ),
                "image": datasets.Image(),
            }
        ),
    )


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 128, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_streaming_source_is_never_held_in_memory(tmp_path):
    """Python's peak allocation while loading a streamed pool does not grow with its size."""
    import tracemalloc

    peaks = {}
    for n in (200, 2_000, 8_000):  # the first run warms up imports and caches
        folder = tmp_path / f"pool-{n}"
        _long_chat_dataset(n).save_to_disk(str(folder))
        source = HFDatasetSource(str(folder), streaming=True)  # columns found by their names
        quarantine = Quarantine()
        tracemalloc.start()
        ds = load_canonical(source, ValidationConfig(), quarantine, path=tmp_path / f"{n}.arrow")
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(ds) == n and quarantine.ledger.kept == n
        assert ds["id"][:2] == [f"{folder}/0", f"{folder}/1"]
    # 4x the rows (~1 KB of text and an image each): the pool held as a list measured 4.0x;
    # what grows is the row keys (an id per row, ~250 B), 1.5x here.
    assert peaks[8_000] < 2 * peaks[2_000], peaks


def test_relative_image_paths_in_a_dataset_resolve_inside_the_image_folder(tmp_path):
    write_png(tmp_path / "imgs" / "a.png")
    rows = {
        "id": ["a", "b"],
        "image": ["a.png", "../secret.png"],
        "conversations": [llava_row("a")["conversations"]] * 2,
    }
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    source = HFDatasetSource(str(tmp_path / "ds"), image_folder=tmp_path / "imgs")
    ds, quarantine = _load(source, tmp_path / "imgs")
    assert ds["id"] == ["a"]
    assert quarantine.entries[0]["reason"] == "image_path_unsafe"
