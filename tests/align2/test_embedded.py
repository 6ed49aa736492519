"""The embedded SmolLM2: converted from the package's GGUF once, then served from the cache."""

import pytest

from align2.embedded import cache_dir, smollm2_model_path
from align2.models.backbones import build_backbone
from align2.models.scoring import score_texts


@pytest.mark.slow
def test_smollm2_converts_once_and_scores_as_a_text_classifier():
    path = smollm2_model_path()
    assert path.parent == cache_dir()  # inside the test's temporary HF_HOME
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    assert not list(path.glob("*.gguf"))
    before = {p: p.stat().st_mtime_ns for p in path.iterdir()}
    assert smollm2_model_path() == path
    assert {p: p.stat().st_mtime_ns for p in path.iterdir()} == before  # nothing converted
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []

    backbone = build_backbone("smollm2", seed=0)
    assert backbone.image_processor is None
    assert backbone.model.config.num_labels == 1
    scores = score_texts(backbone, ["Question: 2+2?\nAnswer: 4\n", "Question: 2+2?\nAnswer: 5\n"])
    assert scores.shape == (2,) and scores[0] != scores[1]
