"""Dedup on hand-made rows with real image files: exact, near-text and near-image duplicates
are found with the id they duplicate; different images or different texts are not."""

import shutil

import numpy as np
from helpers import canonical_dataset
from PIL import Image

from align2.builders.dedup import DedupConfig, find_duplicates

LONG = (
    "The picture shows a large red square in the middle of a plain white background. "
    "There is nothing else in the scene and the square has sharp clean edges on all sides."
)


def _photo(seed: int) -> Image.Image:
    """A smooth photo-like picture (perceptual hashes are built for natural images)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((128, 128), Image.BICUBIC)


def _row(row_id, image, answer):
    return {
        "id": row_id,
        "image": image,
        "conversations": [
            {"from": "human", "value": "<image>\nDescribe the image."},
            {"from": "gpt", "value": answer},
        ],
        "type": "detail",
        "source": "test",
    }


def _dataset(tmp_path):
    _photo(0).save(tmp_path / "photo.png")
    shutil.copyfile(tmp_path / "photo.png", tmp_path / "photo-copy.png")
    _photo(0).resize((100, 100)).save(tmp_path / "photo-small.jpg", quality=60)  # re-encoded
    _photo(1).save(tmp_path / "other.png")
    photo = str(tmp_path / "photo.png")
    rows = [
        _row("a", photo, LONG),
        _row("b", str(tmp_path / "photo-copy.png"), LONG),  # same bytes, same text
        _row("c", str(tmp_path / "photo-small.jpg"), LONG),  # near-identical image, same text
        _row("d", photo, LONG.replace("sharp", "crisp")),  # same image, one word changed
        _row("e", str(tmp_path / "other.png"), LONG),  # a different picture, same text
        _row("f", photo, "A red square."),  # same image, a different answer
    ]
    return canonical_dataset(rows)


def test_duplicates_need_both_image_and_text_to_match(tmp_path):
    result = find_duplicates(_dataset(tmp_path), DedupConfig(text_threshold=0.7))
    assert result.reasons == [
        None,
        "duplicate_exact",
        "near_duplicate_image",
        "near_duplicate_text",
        None,
        None,
    ]
    assert result.duplicate_of == [None, "a", "a", "a", None, None]
    assert result.n_duplicates == 3


def test_switches_turn_each_kind_off(tmp_path):
    ds = _dataset(tmp_path)
    no_near = find_duplicates(ds, DedupConfig(text_threshold=None, image_distance=None))
    assert no_near.reasons == [None, "duplicate_exact", None, None, None, None]


def test_text_only_mode_matches_across_images(tmp_path):
    result = find_duplicates(
        _dataset(tmp_path), DedupConfig(text_threshold=0.7, match_images=False)
    )
    # Text alone decides: the same description of a blue circle now duplicates row a.
    assert result.reasons == [
        None,
        "duplicate_exact",
        "duplicate_exact",
        "near_duplicate_text",
        "duplicate_exact",
        None,
    ]


def test_a_row_repeating_its_own_turn_is_dropped(tmp_path):
    _photo(2).save(tmp_path / "p.png")
    turns = [
        ("<image>\nWhat colour is the square?", "Red."),
        ("Is it large?", "Yes."),
        ("What colour is the  square?", "red."),  # the first turn again: case, spacing, <image>
    ]
    repeated = _row("r", str(tmp_path / "p.png"), "")
    repeated["conversations"] = [
        {"from": role, "value": text} for q, a in turns for role, text in (("human", q), ("gpt", a))
    ]
    same_question = _row("s", str(tmp_path / "other.png"), "")
    same_question["conversations"] = [  # a question asked twice, answered differently: kept
        {"from": "human", "value": "<image>\nIs it large?"},
        {"from": "gpt", "value": "Yes."},
        {"from": "human", "value": "Is it large?"},
        {"from": "gpt", "value": "Yes, it fills most of the picture."},
    ]
    _photo(3).save(tmp_path / "other.png")
    ds = canonical_dataset([repeated, same_question])
    result = find_duplicates(ds, DedupConfig())
    assert result.reasons == ["repeated_turn", None]
    assert result.duplicate_of == ["r", None]
    assert find_duplicates(ds, DedupConfig(repeated_turns=False)).reasons == [None, None]


def test_a_repeated_llava_id_on_an_identical_row_is_an_exact_duplicate(
    tmp_path, image_folder, write_llava
):
    from helpers import llava_row

    from align2.data.sources import LlavaJsonSource, load_canonical
    from align2.data.validate import Quarantine, ValidationConfig

    # One image's rows share its id: a different row is kept, an identical one is dedup's.
    rows = [llava_row("33471"), llava_row("33471", answer="Blue."), llava_row("33471")]
    pool = load_canonical(
        LlavaJsonSource(write_llava(rows), image_folder), ValidationConfig(), Quarantine()
    )
    assert pool["id"] == ["33471", "33471-1", "33471-2"]
    result = find_duplicates(pool, DedupConfig())
    assert result.reasons == [None, None, "duplicate_exact"]
    assert result.duplicate_of == [None, None, "33471"]
