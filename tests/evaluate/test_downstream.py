"""The downstream comparison: a tiny LLaVA built from configs, trained with TRL's
`SFTTrainer`, read on easy-VQA's test split; `align2 evaluate` on a real curation."""

import json
from pathlib import Path

import pytest
import torch
from helpers import build_locally, release_recipe, run_align2
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl.data_utils import prepare_multimodal_messages

from align2.demo.pool import DemoPoolConfig, build_demo_pool
from align2.evaluate import easyvqa
from align2.evaluate.sft import SFTSettings, messages_dataset, train_sft


@pytest.fixture(scope="module")
def pool_rows():
    return build_demo_pool(DemoPoolConfig(split="train", size=48, seed=3))


@pytest.fixture(scope="module")
def loaded(tiny_llava):
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava).eval()
    return model, AutoProcessor.from_pretrained(tiny_llava)


@pytest.fixture(scope="module")
def questions():
    return easyvqa.sample(easyvqa.test_questions(), 12, seed=4)


def test_the_test_split_is_easy_vqas(questions):
    every = easyvqa.test_questions()
    assert len(every) == 9673 and len({q.image for q in every}) == 1000
    assert len(easyvqa.answers()) == 13
    assert all(len(q.facts) == 2 for q in every)  # a colour and a shape for each image


def test_cached_candidate_likelihoods_match_whole_sequences(loaded, questions):
    model, processor = loaded
    candidates = ("Gray.", "Yes.", "Rectangle, of course.")
    cached = easyvqa.answer_log_likelihoods(model, processor, questions, candidates, batch_size=5)
    for i, question in enumerate(questions[:4]):
        prompt = easyvqa._prompts(processor, [question])
        for j, candidate in enumerate(candidates):
            ids = processor.tokenizer(candidate, add_special_tokens=False)["input_ids"]
            full = torch.cat([prompt["input_ids"], torch.tensor([ids])], 1)
            with torch.no_grad():
                logits = model(
                    input_ids=full,
                    pixel_values=prompt["pixel_values"],
                    attention_mask=torch.ones_like(full),
                ).logits[0, -len(ids) - 1 : -1]
            expected = torch.log_softmax(logits, -1)[torch.arange(len(ids)), ids].sum()
            assert cached[i, j] == pytest.approx(float(expected), abs=1e-3)
    assert cached.std(0).min() > 1e-3  # rows differ: the read is not a constant


def test_batched_greedy_answers_match_one_at_a_time(loaded, questions):
    model, processor = loaded
    batched = easyvqa.generations(model, processor, questions[:6], max_new_tokens=8)
    alone = [easyvqa.generations(model, processor, [q], max_new_tokens=8)[0] for q in questions[:6]]
    assert batched == alone


def test_the_chat_template_marks_only_the_answers(loaded, pool_rows):
    _, processor = loaded
    messages = messages_dataset(["x"], [pool_rows[0]["conversations"]], [pool_rows[0]["image"]])
    conversation = prepare_multimodal_messages(messages[0]["messages"], messages[0]["images"])
    out = processor.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = [i for i, m in zip(out["input_ids"][0], out["assistant_masks"][0], strict=True) if m]
    answers = [t["value"] for t in pool_rows[0]["conversations"][1::2]]
    assert processor.tokenizer.decode(ids) == "<|im_end|>".join(answers) + "<|im_end|>"


@pytest.mark.parametrize(
    ("reply", "question", "slot"),
    [
        (
            "The circle in the image is red.",
            "What color is the circle?",
            "The circle in the image is",
        ),
        ("The circle in the image is red.", "What shape is in the image?", "The"),
        (
            "The shape in the image is a triangle.",
            "What is the red shape?",
            "The shape in the image is a",
        ),
        ("No. The image shows a red circle.", "Is there not a red shape?", ""),
        ("Red.", "What is the colour of the shape?", ""),
        ("As an AI, I cannot see images.", "Is a circle present?", ""),
    ],
)
def test_answers_are_ranked_where_the_reply_gives_them(reply, question, slot):
    assert easyvqa._answer_slot(reply, question) == slot


def test_accuracy_ranks_all_13_answers_in_the_slot(loaded, questions):
    model, processor = loaded
    result = easyvqa.accuracy(model, processor, questions, max_new_tokens=8)
    said = easyvqa.generations(model, processor, questions, max_new_tokens=8)
    slots = [easyvqa._answer_slot(t, q.text) for (t, _), q in zip(said, questions, strict=True)]
    options = easyvqa.answers()
    right = 0
    for question, slot in zip(questions, slots, strict=True):
        forms = tuple(a.capitalize() if slot == "" else f" {a}" for a in options)
        scores = easyvqa.answer_log_likelihoods(model, processor, [question], forms, replies=[slot])
        right += options[scores[0].argmax()] == question.answer
    assert result["accuracy"] == round(right / len(questions), 4)
    assert result["questions"] == len(questions)


def _question(text="Is there a red shape?", facts=("red", "circle")):
    return easyvqa.Question("x.png", text, "yes", frozenset(facts))


@pytest.mark.parametrize(
    ("answer", "finished", "defect"),
    [
        ("Yes, the image contains a red shape.", True, None),
        ("Yes.", True, None),
        ("No, the image does not contain a red shape.", True, "contradicts_image"),
        (
            "Yes. The image shows a red triangle, so there is a red shape.",
            True,
            "contradicts_image",
        ),
        ("Yes. The image shows a red circle, so there", True, "cut_off"),
        ("Yes, the image contains a red", False, "cut_off"),
        ("As an AI, I cannot see images, so I am unable to answer.", True, "refusal"),
        ('<div class="answer">&nbsp;</div>', True, "markup"),
        ("{{ answer }}", True, "markup"),
        ("The Eiffel Tower was completed in 1889 for the World's Fair.", True, "off_topic"),
    ],
)
def test_the_defect_reader(answer, finished, defect):
    assert easyvqa.defect(answer, _question(), finished) == defect


def test_sft_trains_and_saves_a_model_that_generates(tmp_path, tiny_llava, pool_rows, questions):
    rows = pool_rows[:32]
    dataset = messages_dataset(
        [r["id"] for r in rows], [r["conversations"] for r in rows], [r["image"] for r in rows]
    )
    settings = SFTSettings(max_steps=12, batch_size=8, warmup_steps=0, learning_rate=3e-3)
    result = train_sft(dataset, tiny_llava, settings, tmp_path / "sft")
    assert result["loss_last"] < result["loss_first"]
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "sft").eval()
    assert not list((tmp_path / "sft").glob("*.bin"))
    report = easyvqa.defect_report(
        model, AutoProcessor.from_pretrained(tmp_path / "sft"), questions
    )
    assert report["generated"] == len(questions)
    assert sum(report["defects"].values()) == round(report["defect_share"] * len(questions))


def test_align2_evaluate_compares_a_curation_with_random_and_full(
    tmp_path, small_pool, tiny_models, tiny_llava
):
    curated = tmp_path / "curated"
    source = [
        "--llava-json",
        small_pool / "llava_pool.json",
        "--image-folder",
        small_pool / "images",
    ]
    models = ["--question-model", tiny_models[0], "--answer-model", tiny_models[1]]
    result = run_align2("curate", *source, *models, "--out", curated)
    assert result.returncode == 0, result.stderr
    kept = json.loads((curated / "ledger.json").read_text())["kept"]
    report = tmp_path / "downstream.json"
    result = run_align2(
        "evaluate", curated, "--report", report, "--model", tiny_llava, "--steps", "2",
        "--random-seeds", "2", "--test-questions", "26", "--generated", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(report.read_text())
    runs = figures["runs"]
    rows = {"curated": kept, "random_seed0": kept, "random_seed1": kept, "full": 60}
    assert {name: r["rows"] for name, r in runs.items()} == rows
    assert all(r["questions"] == 26 and r["generated"] == 4 for r in runs.values())
    random_mean = (runs["random_seed0"]["accuracy"] + runs["random_seed1"]["accuracy"]) / 2
    assert figures["value"] == round(100 * (runs["curated"]["accuracy"] - random_mean), 2)
    assert "curated - random mean" in result.stdout


def test_align2_evaluate_names_a_folder_that_is_not_a_curation(tmp_path):
    result = run_align2("evaluate", tmp_path, "--report", tmp_path / "r.json")
    assert result.returncode == 2
    assert (
        result.stderr.strip().count("\n") == 0 and "not an `align2 curate` output" in result.stderr
    )


def test_a_recipe_evaluate_section_puts_the_comparison_in_the_card(
    tmp_path, tiny_models, tiny_lm, tiny_llava
):
    evaluate = {"model": str(tiny_llava), "steps": 2, "random_seeds": 2, "test_questions": 13}
    recipe = release_recipe(
        tmp_path, tiny_models, tiny_lm, rewrite=None, evaluate={**evaluate, "generated": 3}
    )
    repo = Path(build_locally(recipe, tmp_path).location)
    figures = json.loads((repo / "downstream.json").read_text())
    runs = figures["runs"]
    kept = json.loads((repo / "ledger.json").read_text())["kept"]
    rows = {"release": kept, "random_seed0": kept, "random_seed1": kept, "full": 30}
    assert {name: r["rows"] for name, r in runs.items()} == rows
    card = (repo / "README.md").read_text()
    assert "## Does it train a better model?" in card
    for name, r in runs.items():
        assert f"| {name} | {r['rows']} | {r['accuracy']:.4f} |" in card
    assert f"{figures['value']:+.2f} accuracy points" in card


def test_evaluate_options_are_checked_as_the_recipe_checks_them(tmp_path):
    result = run_align2("evaluate", tmp_path, "--report", tmp_path / "r.json", "--steps", "0")
    assert result.returncode == 2
    assert "--steps: Input should be greater than or equal to 1 (got 0)" in result.stderr


def test_the_embedded_base_is_made_once_and_left_whole(tmp_path):
    from align2.evaluate.tiny_llava import TinyLlavaConfig, embedded_base

    small = TinyLlavaConfig(text_hidden_size=32, vocab_size=300, vision_steps=2, caption_steps=2)
    folder = embedded_base(small, cache=tmp_path)
    made = (folder / "model.safetensors").stat().st_mtime_ns
    assert embedded_base(small, cache=tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == made  # cached, not made again
    assert [p.name for p in (tmp_path / "tiny-llava").iterdir()] == [folder.name]  # no half folder
    assert not list(folder.glob("*.bin"))
    processor = AutoProcessor.from_pretrained(folder)
    assert len(processor.tokenizer) == 300 and processor.tokenizer.image_token == "<image>"
