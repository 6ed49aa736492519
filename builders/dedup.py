"""Dedup before scoring: exact duplicates, near-duplicate text (MinHash) and near-duplicate
images (perceptual hash). Every duplicate is dropped with its reason and the id it duplicates.

A multimodal sample is its image *and* its text: LLaVA-Instruct asks the same "Describe the
image" of thousands of different images, and asks several different conversations about
each COCO image, so neither a text match nor an image match alone makes a duplicate. A row
duplicates an earlier one when both match:

- `duplicate_exact`: identical image bytes and identical conversation text;
- `near_duplicate_text`: the same (or a near-identical) image, text MinHash Jaccard >=
  `text_threshold` (word 3-grams, datasketch);
- `near_duplicate_image`: a near-identical image (perceptual-hash Hamming distance <=
  `image_distance`, imagehash), identical text.

With `match_images=False` (text-only pools), text alone decides, over the whole pool.
The first row in dataset order is the one kept.

Beyond the seed, a row can duplicate itself: `repeated_turn` is a question-answer turn
identical (case, spacing and `<image>` aside) to an earlier turn of the same conversation,
a generation or merge artefact that a reward model reading one turn at a time cannot see.
Its `duplicate_of` is its own id.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import datasets
import imagehash
import numpy as np
from datasets.fingerprint import Hasher
from datasketch import LeanMinHash, MinHash, MinHashLSH
from PIL import Image

from align2.data.schema import IMAGE_TOKEN
from align2.data.shards import LOCAL, Engine, map_in_shards

DUPLICATE_EXACT = "duplicate_exact"
NEAR_DUPLICATE_TEXT = "near_duplicate_text"
NEAR_DUPLICATE_IMAGE = "near_duplicate_image"
REPEATED_TURN = "repeated_turn"
HASH_BITS = 64  # imagehash.phash with hash_size=8
MINHASH_SCHEME = "affine32"  # fixed, so stored hash values stay comparable across versions


@dataclass(frozen=True)
class DedupConfig:
    text_threshold: float | None = 0.9  # MinHash Jaccard; None turns near-text matching off
    image_distance: int | None = 4  # phash Hamming distance; None: only identical images
    match_images: bool = True  # False: text alone decides (text-only pools)
    num_perm: int = 64  # MinHash permutations: more is more exact, slower and larger
    seed: int = 1
    repeated_turns: bool = True  # drop a row that repeats one of its own turns


@dataclass(frozen=True)
class DedupResult:
    reasons: list[str | None]  # None: unique (kept for scoring)
    duplicate_of: list[str | None]

    @property
    def n_duplicates(self) -> int:
        return sum(r is not None for r in self.reasons)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace(IMAGE_TOKEN, "")).strip().lower()


def conversation_text(conversations: list[dict]) -> str:
    """Normalised text of a conversation: roles kept, case and spacing folded."""
    return _normalise("\n".join(f"{t['from']}: {t['value']}" for t in conversations))


def repeats_a_turn(conversations: list[dict]) -> bool:
    """Whether a (question, answer) turn equals an earlier one of the same conversation."""
    turns = [_normalise(t["value"]) for t in conversations]
    pairs = list(zip(turns[0::2], turns[1::2], strict=False))
    return len(set(pairs)) < len(pairs)


def _shingles(text: str) -> list[bytes]:
    words = text.split()
    grams = [" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))]
    return [g.encode() for g in grams]


def _image_bytes(image: dict) -> bytes:
    if image.get("bytes") is not None:
        return image["bytes"]
    with open(image["path"], "rb") as f:
        return f.read()


def fingerprint_batch(batch: dict, *, num_perm: int, seed: int) -> dict:
    """`datasets.map(batched=True)` function (images undecoded): hashes for dedup."""
    texts = [conversation_text(turns) for turns in batch["conversations"]]
    minhashes = MinHash.bulk(
        [_shingles(t) for t in texts], num_perm=num_perm, seed=seed, scheme=MINHASH_SCHEME
    )
    image_sha, phash = [], []
    for image in batch["image"]:
        data = _image_bytes(image)
        image_sha.append(hashlib.sha256(data).hexdigest())
        with Image.open(io.BytesIO(data)) as im:
            phash.append(str(imagehash.phash(im.convert("RGB"))))
    return {
        "dedup_text_sha": [hashlib.sha256(t.encode()).hexdigest() for t in texts],
        "dedup_minhash": [m.hashvalues.tolist() for m in minhashes],
        "dedup_image_sha": image_sha,
        "dedup_phash": phash,
        "dedup_repeated_turn": [repeats_a_turn(turns) for turns in batch["conversations"]],
    }


def _bands(phash: int, distance: int) -> list[tuple[int, int]]:
    """Pigeonhole: split 64 bits into distance+1 bands; hashes within `distance` bits of each
    other agree exactly on at least one band, so band buckets find every candidate."""
    edges = np.linspace(0, HASH_BITS, distance + 2).astype(int)
    return [
        (band, (phash >> int(lo)) & ((1 << int(hi - lo)) - 1))
        for band, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]


class _ImageIndex:
    """Kept rows by image: identical bytes, or phash within `distance` bits."""

    def __init__(self, distance: int | None):
        self.distance = distance
        self.by_sha: dict[str, list[int]] = defaultdict(list)
        self.by_band: dict[tuple[int, int], list[int]] = defaultdict(list)
        self.phash: dict[int, int] = {}

    def add(self, row: int, sha: str, phash: int) -> None:
        self.by_sha[sha].append(row)
        if self.distance is not None:
            self.phash[row] = phash
            for key in _bands(phash, self.distance):
                self.by_band[key].append(row)

    def matches(self, sha: str, phash: int) -> tuple[set[int], set[int]]:
        """(rows with identical image bytes, rows with a near-identical image)."""
        same = set(self.by_sha.get(sha, ()))
        near: set[int] = set()
        if self.distance is not None:
            for key in _bands(phash, self.distance):
                near.update(
                    row
                    for row in self.by_band.get(key, ())
                    if bin(self.phash[row] ^ phash).count("1") <= self.distance
                )
        return same, near - same


PARALLEL_ROWS = 2000  # below this, worker start-up costs more than it saves
HASH_SHARD_ROWS = 20_000  # rows per cached shard of hashes: the unit a killed run resumes from
HASH_FEATURES = datasets.Features(
    {
        "dedup_text_sha": datasets.Value("string"),
        "dedup_minhash": datasets.List(datasets.Value("int64")),
        "dedup_image_sha": datasets.Value("string"),
        "dedup_phash": datasets.Value("string"),
        "dedup_repeated_turn": datasets.Value("bool"),
    }
)


def find_duplicates(
    dataset: datasets.Dataset,
    config: DedupConfig,
    *,
    num_proc: int = 1,
    cache_dir: str | Path | None = None,
    engine: Engine = LOCAL,
) -> DedupResult:
    """One reason (or None) and the duplicated id per row, first occurrence kept. Hashing (an
    image read, a perceptual hash and a MinHash per row) is placed by `engine` (locally in
    `num_proc` processes) in shards cached under `cache_dir` (a temporary folder if None);
    the matching runs in row order in this process."""
    with tempfile.TemporaryDirectory() as scratch:
        hashes = _hashes(dataset, config, Path(cache_dir or scratch), engine, num_proc)
        return _match(dataset["id"], hashes, config)


def _hashes(dataset, config, cache_dir: Path, engine: Engine, num_proc: int) -> datasets.Dataset:
    undecoded = dataset.select_columns(["conversations", "image"]).cast_column(
        "image", datasets.Image(decode=False)
    )
    settings = {"num_perm": config.num_perm, "seed": config.seed}
    return map_in_shards(
        undecoded,
        partial(fingerprint_batch, **settings),
        features=HASH_FEATURES,
        # The whole module: the hashes depend on its helpers too (normalising, shingles).
        key=Hasher.hash([inspect.getsource(sys.modules[__name__]), settings]),
        cache_dir=cache_dir,
        name="dedup-hashes",
        rows_per_shard=HASH_SHARD_ROWS,
        batch_size=1000,
        engine=engine,
        num_proc=num_proc if num_proc > 1 and len(dataset) >= PARALLEL_ROWS else None,
    )


def _match(ids: list[str], hashes: datasets.Dataset, config: DedupConfig) -> DedupResult:
    reasons: list[str | None] = [None] * len(ids)
    duplicate_of: list[str | None] = [None] * len(ids)
    exact: dict[tuple[str, str], int] = {}
    images = _ImageIndex(config.image_distance)
    lsh = (
        MinHashLSH(threshold=config.text_threshold, num_perm=config.num_perm)
        if config.text_threshold is not None and not config.match_images
        else None
    )
    minhash: dict[int, LeanMinHash] = {}
    text_sha: dict[int, str] = {}
    for row, h in enumerate(hashes):
        image_key = h["dedup_image_sha"] if config.match_images else ""
        key = (image_key, h["dedup_text_sha"])
        mh = LeanMinHash(
            seed=config.seed,
            hashvalues=np.asarray(h["dedup_minhash"], np.uint64),
            scheme=MINHASH_SCHEME,
        )
        match = None
        if config.repeated_turns and h["dedup_repeated_turn"]:
            match = (REPEATED_TURN, row)
        elif key in exact:
            match = (DUPLICATE_EXACT, exact[key])
        elif config.match_images:
            match = _image_match(h, mh, images, minhash, text_sha, config)
        elif lsh is not None:
            similar = sorted(int(r) for r in lsh.query(mh))
            if similar:
                match = (NEAR_DUPLICATE_TEXT, similar[0])
        if match is not None:
            reasons[row], duplicate_of[row] = match[0], ids[match[1]]
            continue
        exact[key] = row
        minhash[row], text_sha[row] = mh, h["dedup_text_sha"]
        if config.match_images:
            images.add(row, h["dedup_image_sha"], int(h["dedup_phash"], 16))
        elif lsh is not None:
            lsh.insert(str(row), mh)
    return DedupResult(reasons, duplicate_of)


def _image_match(h, mh, images, minhash, text_sha, config) -> tuple[str, int] | None:
    same, near = images.matches(h["dedup_image_sha"], int(h["dedup_phash"], 16))
    for earlier in sorted(same | near):
        if earlier in near and text_sha[earlier] == h["dedup_text_sha"]:
            return NEAR_DUPLICATE_IMAGE, earlier
        if config.text_threshold is not None and mh.jaccard(minhash[earlier]) >= (
            config.text_threshold
        ):
            return NEAR_DUPLICATE_TEXT, earlier
    return None
