"""Every bad-input kind, each with a real file on disk; nothing mocked."""

import json
import struct
import zlib

import pytest
from helpers import llava_row, write_png
from PIL import Image

from align2.data.sources import LlavaJsonSource, load_canonical, validate_source
from align2.data.validate import Quarantine, ValidationConfig
from align2.errors import SourceError


def _patch_png_size(path, width, height):
    """Rewrite a real PNG's IHDR to claim huge dimensions: a decompression-bomb header."""
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # chunk type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


@pytest.fixture
def bad_images(tmp_path, image_folder):
    (image_folder / "garbage.png").write_bytes(b"this is not an image at all")
    full = write_png(image_folder / "full.png", size=(64, 64)).read_bytes()
    (image_folder / "truncated.png").write_bytes(full[: len(full) // 2])
    _patch_png_size(write_png(image_folder / "bomb.png"), 30_000, 30_000)
    write_png(tmp_path / "outside.png")
    (image_folder / "link.png").symlink_to(tmp_path / "outside.png")
    return image_folder


def _turns(*pairs):
    return [{"from": role, "value": value} for role, value in pairs]


EXPECTED = {
    "good": None,
    "no-image-field": "missing_field",
    "bad-role": "unknown_role",
    "not-alternating": "turns_not_alternating",
    "odd-turns": "turns_not_alternating",
    "empty-turn": "empty_turn",
    "no-image-token": "image_token_count",
    "two-image-tokens": "image_token_count",
    "token-in-answer": "image_token_position",
    "missing-file": "image_missing",
    "garbage-bytes": "image_corrupt",
    "truncated-bytes": "image_corrupt",
    "bomb": "image_too_large",
    "dotdot": "image_path_unsafe",
    "absolute": "image_path_unsafe",
    "symlink-out": "image_path_unsafe",
    "bad-id-type": "bad_field_type",
}


def _bad_rows(tmp_path):
    rows = [
        llava_row("good"),
        {"id": "no-image-field", "conversations": llava_row("x")["conversations"]},
        {**llava_row("bad-role"), "conversations": _turns(("user", "<image>\nQ?"), ("gpt", "A."))},
        {
            **llava_row("not-alternating"),
            "conversations": _turns(("human", "<image>\nQ?"), ("human", "Q2?")),
        },
        {
            **llava_row("odd-turns"),
            "conversations": _turns(("human", "<image>\nQ?"), ("gpt", "A."), ("human", "Q2?")),
        },
        llava_row("empty-turn", answer="   "),
        llava_row("no-image-token", question="What color is it?"),
        llava_row("two-image-tokens", question="<image>\n<image>\nWhat?"),
        llava_row("token-in-answer", question="What?", answer="<image> red"),
        llava_row("missing-file", image="nope.png"),
        llava_row("garbage-bytes", image="garbage.png"),
        llava_row("truncated-bytes", image="truncated.png"),
        llava_row("bomb", image="bomb.png"),
        llava_row("dotdot", image="../outside.png"),
        llava_row("absolute", image=str(tmp_path / "outside.png")),
        llava_row("symlink-out", image="link.png"),
        {**llava_row("x"), "id": ["bad-id-type"]},  # ids must be strings
    ]
    return rows


def test_each_bad_row_is_quarantined_with_its_reason(tmp_path, bad_images, write_llava):
    path = write_llava(_bad_rows(tmp_path))
    quarantine = Quarantine()
    ds = load_canonical(LlavaJsonSource(path, bad_images), ValidationConfig(bad_images), quarantine)

    assert ds["id"] == ["good"]
    got = {
        e["id"] if isinstance(e["id"], str) else e["id"][0]: e["reason"] for e in quarantine.entries
    }
    assert got == {k: v for k, v in EXPECTED.items() if v}
    ledger = quarantine.ledger
    ledger.check()
    assert (ledger.total, ledger.kept, ledger.n_quarantined) == (
        len(EXPECTED),
        1,
        len(EXPECTED) - 1,
    )
    # The global decompression-bomb guard was never switched off.
    assert Image.MAX_IMAGE_PIXELS is not None


def test_worker_processes_validate_exactly_as_one(tmp_path, bad_images, write_llava):
    # Five chunks of bad and good rows with repeated ids: order, keys and entries must match.
    rows = [dict(row) for _ in range(20) for row in _bad_rows(tmp_path)]
    path = write_llava(rows)
    results = []
    for num_proc in (1, 2):
        quarantine = Quarantine()
        ds = load_canonical(
            LlavaJsonSource(path, bad_images), ValidationConfig(), quarantine, num_proc=num_proc
        )
        results.append((ds.to_list(), quarantine.entries, quarantine.repeated_ids))
    assert results[0] == results[1]
    assert len(results[0][0]) == 20 and len(results[0][1]) == len(rows) - 20


def test_quarantined_rows_keep_their_original_content(tmp_path, bad_images, write_llava):
    rows = _bad_rows(tmp_path)
    path = write_llava(rows)
    quarantine = Quarantine()
    load_canonical(LlavaJsonSource(path, bad_images), ValidationConfig(bad_images), quarantine)
    by_index = {e["index"]: e for e in quarantine.entries}
    for index, entry in by_index.items():
        assert entry["record"] == rows[index]
        assert entry["detail"]


def test_pixel_limit_is_configurable(image_folder, write_llava):
    path = write_llava([llava_row("a")])
    quarantine = Quarantine()
    config = ValidationConfig(image_folder, max_image_pixels=63)  # ok.png is 8x8 = 64 px
    assert len(load_canonical(LlavaJsonSource(path, image_folder), config, quarantine)) == 0
    assert quarantine.entries[0]["reason"] == "image_too_large"
    assert "8x8 = 64 px > limit 63" in quarantine.entries[0]["detail"]


def test_repeated_ids_keep_every_row_under_a_derived_key(image_folder, write_llava):
    # LLaVA-Instruct's ids are image ids: one image's conversation, detail and reasoning rows
    # share one. A row that takes "a-1" as its own id later gets a key of its own too.
    rows = [
        llava_row("a", image="missing.png"),
        llava_row("a"),
        llava_row("a", answer="Blue."),
        llava_row("a-1", answer="Green."),
        llava_row("a", answer="Grey."),
        llava_row(7, answer="Seven."),
        llava_row("7", answer="Also seven."),
    ]
    quarantine = Quarantine()
    ds = load_canonical(
        LlavaJsonSource(write_llava(rows), image_folder), ValidationConfig(image_folder), quarantine
    )
    assert ds["id"] == ["a", "a-1", "a-1-1", "a-2", "7", "7-1"]
    assert ds["source_id"] == ["a", "a", "a-1", "a", "7", "7"]
    assert [c[1]["value"] for c in ds["conversations"]] == [
        "Red.",
        "Blue.",
        "Green.",
        "Grey.",
        "Seven.",
        "Also seven.",
    ]
    assert [e["reason"] for e in quarantine.entries] == ["image_missing"]
    assert quarantine.repeated_ids == 3  # "a" twice more, "7" once: information, not a drop
    assert quarantine.ledger.kept == 6


def test_strict_ids_quarantine_a_repeat(image_folder, write_llava):
    rows = [llava_row("a", image="missing.png"), llava_row("a"), llava_row("a", answer="Blue.")]
    quarantine = Quarantine()
    config = ValidationConfig(image_folder, unique_ids="strict")
    ds = load_canonical(LlavaJsonSource(write_llava(rows), image_folder), config, quarantine)
    assert ds["conversations"][0][1]["value"] == "Red."
    assert [e["reason"] for e in quarantine.entries] == ["image_missing", "duplicate_id"]
    assert "already used by row 1" in quarantine.entries[1]["detail"]


def test_keys_are_unique_across_the_files_of_one_build(image_folder, write_llava):
    first = LlavaJsonSource(write_llava([llava_row("x")], "detail_23k.json"), image_folder)
    second = LlavaJsonSource(
        write_llava([llava_row("x", answer="Blue.")], "complex_reasoning_77k.json"), image_folder
    )
    ds = load_canonical([first, second], ValidationConfig(), Quarantine())
    assert list(zip(ds["id"], ds["source_id"], ds["type"], strict=True)) == [
        ("x", "x", "detail"),
        ("x-1", "x", "complex_reasoning"),
    ]


def test_malformed_json_stops_with_file_line_and_column(tmp_path, image_folder):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"id": "a",\n    "image": "ok.png",, }\n]\n', encoding="utf-8")
    source = LlavaJsonSource(path, image_folder)
    with pytest.raises(SourceError, match=r"broken\.json: malformed JSON at line 3, column 23"):
        list(source.records())


def test_malformed_jsonl_line_is_quarantined_and_the_rest_read(tmp_path, image_folder):
    path = tmp_path / "data.jsonl"
    good = json.dumps(llava_row("a"))
    path.write_text(f"{good}\n{{not json\n\n{json.dumps(llava_row('b'))}\n", encoding="utf-8")
    quarantine = Quarantine()
    ds = load_canonical(
        LlavaJsonSource(path, image_folder), ValidationConfig(image_folder), quarantine
    )
    assert ds["id"] == ["a", "b"]
    [entry] = quarantine.entries
    assert entry["reason"] == "malformed_json"
    assert entry["index"] == 1 and "line 2" in entry["detail"]
    assert entry["record"] == {"raw": "{not json"}


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_non_utf8_text_is_quarantined(tmp_path, image_folder, suffix):
    good = json.dumps(llava_row("good")).encode()
    bad = json.dumps(llava_row("latin1", answer="caf__")).encode().replace(b"__", b"\xe9!")
    path = tmp_path / f"data{suffix}"
    if suffix == ".json":
        path.write_bytes(b"[" + good + b",\n" + bad + b"]")
    else:
        path.write_bytes(good + b"\n" + bad + b"\n")
    quarantine = Quarantine()
    ds = load_canonical(
        LlavaJsonSource(path, image_folder), ValidationConfig(image_folder), quarantine
    )
    assert ds["id"] == ["good"]
    [entry] = quarantine.entries
    assert entry["reason"] == "non_utf8_text"
    # The undecodable byte survives as an escape, so the user can find and fix it.
    assert "caf\udce9!" in entry["record"]["conversations"][1]["value"]


def test_validate_source_writes_quarantine_file_and_report(tmp_path, bad_images, write_llava):
    path = write_llava(_bad_rows(tmp_path))
    qfile = tmp_path / "out" / "q.jsonl"
    result = validate_source(LlavaJsonSource(path, bad_images), ValidationConfig(bad_images), qfile)
    report = result.report
    assert report["total"] == report["valid"] + report["quarantined"] == len(EXPECTED)
    assert sum(report["reasons"].values()) == report["quarantined"]
    lines = qfile.read_text(encoding="utf-8").splitlines()
    assert len(lines) == report["quarantined"]
    assert {json.loads(line)["reason"] for line in lines} == set(report["reasons"])


def test_missing_file_is_a_clear_error(tmp_path, image_folder):
    with pytest.raises(SourceError, match="LLaVA file not found: .*nope.json"):
        list(LlavaJsonSource(tmp_path / "nope.json", image_folder).records())


def test_top_level_must_be_a_list(tmp_path, image_folder):
    path = tmp_path / "obj.json"
    path.write_text('{"id": "a"}', encoding="utf-8")
    with pytest.raises(SourceError, match="expected a JSON list of LLaVA records, got a dict"):
        list(LlavaJsonSource(path, image_folder).records())
