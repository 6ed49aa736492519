"""The embedded base VLM for the downstream comparison: a tiny generative LLaVA.

An ordinary transformers `LlavaForConditionalGeneration` (a LeViT vision tower, a Llama text
model, a small byte-level BPE tokenizer with an `<image>` token) and its `LlavaProcessor`,
saved with `save_pretrained`, so `AutoModelForImageTextToText`, `generate()` and TRL's
`SFTTrainer` take it as they take a Hub VLM.

It is made the way LLaVA is, in miniature, so that instruction tuning starts from a model
that can see: (1) a vision encoder pretrained on its own (LLaVA starts from CLIP; here the
LeViT tower learns easy-VQA's 24 colour x shape classes on the train split's images),
(2) feature alignment on captions ("A red circle."), (3) instruction tuning, which is what
the comparison varies. Trained end to end from random weights instead, the text model
learned the answers' wording and never read the image: after 400 steps colour answers were
at chance (0.12) with SigLIP or LeViT towers, and captions alone took 1,500 steps to move.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

IMAGE_TOKEN = "<image>"
CAPTION_PROMPT = "Describe the image briefly."

# ChatML, as SmolLM2's, with structured content (text and image parts) and the assistant's
# turns marked for TRL's `assistant_only_loss`.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['content'] is string -%}{%- set parts = [{'type': 'text', 'text': "
    "message['content']}] -%}{%- else -%}{%- set parts = message['content'] -%}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- generation -%}"
    "{%- for part in parts -%}{{- part['text'] -}}{%- endfor -%}{{- '<|im_end|>' -}}"
    "{%- endgeneration -%}"
    "{%- else -%}"
    "{%- for part in parts -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>' -}}{%- else -%}{{- part['text'] -}}"
    "{%- endif -%}{%- if not loop.last -%}{{- '\n' -}}{%- endif -%}"
    "{%- endfor -%}{{- '<|im_end|>' -}}"
    "{%- endif -%}{{- '\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class TinyLlavaConfig:
    image_size: int = 128  # easy-VQA's 64 px images, upsampled: LeViT's stem divides by 16
    vision_hidden_size: int = 64
    vision_layers: int = 2
    text_hidden_size: int = 128
    text_layers: int = 2
    heads: int = 4
    vocab_size: int = 1024
    vision_steps: int = 1000  # (1) colour x shape classification, batches of 64 images
    vision_learning_rate: float = 3e-3
    caption_steps: int = 600  # (2) captions, batches of 16
    seed: int = 0


def train_tokenizer(corpus: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer learned from `corpus`: any text encodes, and the texts it
    was learned from take few tokens. With SmolLM2's 49,152 tokens the output layer was 90%
    of the model and a training step took 2.0 s instead of 0.17 s."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|im_end|>", "<|im_start|>", IMAGE_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        bos_token="<|im_start|>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )


def build_tiny_llava(config: TinyLlavaConfig, corpus: Iterable[str], folder: Path) -> Path:
    """Save a randomly initialised tiny LLaVA and its processor to `folder`."""
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaProcessor, SiglipImageProcessor

    tokenizer = train_tokenizer(corpus, config.vocab_size)
    size = {"height": config.image_size, "width": config.image_size}
    images = SiglipImageProcessor(size=size, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    # LeViT: a convolutional stem with BatchNorm (four stride-2 convolutions), then attention
    # stages that each halve the grid; it needs three stages. Its last hidden state is a
    # 2 x 2 grid at 128 px: 4 image tokens, each a patch of 64 px ("full": no CLS token).
    processor = LlavaProcessor(
        images,
        tokenizer,
        patch_size=config.image_size // 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )
    llava = _llava_config(config, tokenizer)
    torch.manual_seed(config.seed)
    model = LlavaForConditionalGeneration(llava)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)


def _llava_config(config: TinyLlavaConfig, tokenizer):
    """LeViT tower + Llama text model, as LLaVA wires them."""
    from transformers import LevitConfig, LlamaConfig, LlavaConfig

    vision = LevitConfig(
        image_size=config.image_size,
        patch_size=16,
        hidden_sizes=[config.vision_hidden_size] * 3,
        num_attention_heads=[config.heads] * 3,
        depths=[config.vision_layers, 1, 1],
        key_dim=[16] * 3,
        output_hidden_states=True,  # LLaVA reads a hidden state, not the pooled output
        hidden_size=config.vision_hidden_size,  # the width LLaVA's projector reads
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.text_hidden_size,
        intermediate_size=4 * config.text_hidden_size,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    llava = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.image_token_id,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )
    return llava


def pretrain_vision(folder: Path, images: list, labels: list[int], config: TinyLlavaConfig) -> dict:
    """Train the vision tower of the model in `folder` to classify `images` (LeViT with
    its classification head, then the head dropped) and save the model in place."""
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        AutoProcessor,
        LevitForImageClassification,
    )

    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    targets = torch.tensor(labels)
    vision_config = model.config.vision_config
    vision_config.num_labels = max(labels) + 1
    torch.manual_seed(config.seed)
    classifier = LevitForImageClassification(vision_config)
    classifier.levit.load_state_dict(model.model.vision_tower.state_dict())
    optimizer = torch.optim.AdamW(classifier.parameters(), config.vision_learning_rate)
    draw = torch.Generator().manual_seed(config.seed)
    classifier.train()
    for _ in range(config.vision_steps):
        index = torch.randint(0, len(targets), (64,), generator=draw)
        loss = classifier(pixel_values=pixels[index], labels=targets[index]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    classifier.eval()
    with torch.no_grad():
        predicted = torch.cat(
            [classifier(pixel_values=p).logits.argmax(-1) for p in pixels.split(256)]
        )
    model.model.vision_tower.load_state_dict(classifier.levit.state_dict())
    model.save_pretrained(folder)
    return {"vision_train_accuracy": round(float((predicted == targets).float().mean()), 4)}


def embedded_base(config: TinyLlavaConfig = TinyLlavaConfig(), cache: Path | None = None) -> Path:
    """The tiny LLaVA after stages (1) and (2) on easy-VQA's train split, made once per
    config and cached."""
    from datasets.fingerprint import Hasher

    from align2.embedded import build_once, cache_dir

    key = Hasher.hash([asdict(config), inspect.getsource(inspect.getmodule(embedded_base))])
    target = Path(cache or cache_dir()) / "tiny-llava" / key
    if (target / "model.safetensors").is_file():
        return target
    return build_once(target, lambda folder: _build_base(config, folder))


def _build_base(config: TinyLlavaConfig, out: Path) -> None:
    from PIL import Image

    from align2.demo.pool import (
        COLORS,
        SHAPES,
        DemoPoolConfig,
        build_demo_pool,
        easy_vqa_split,
        image_facts,
    )
    from align2.evaluate.sft import SFTSettings, messages_dataset, train_sft

    questions, paths = easy_vqa_split("train")
    facts = {i: image_facts(questions[i], paths[i]) for i in sorted(questions)}
    corpus = [f"{q} {a}" for qas in questions.values() for q, a in qas]
    corpus += [f"A {f['color']} {f['shape']}." for f in facts.values()]
    # The demo pool's wording, defects included, so that its answers take few tokens.
    pool = build_demo_pool(DemoPoolConfig(split="train"))
    corpus += [turn["value"] for row in pool for turn in row["conversations"]]
    images = [Image.open(paths[i]).convert("RGB") for i in facts]
    labels = [
        COLORS.index(f["color"]) * len(SHAPES) + SHAPES.index(f["shape"]) for f in facts.values()
    ]
    captions = [
        [
            {"from": "human", "value": f"{IMAGE_TOKEN}\n{CAPTION_PROMPT}"},
            {"from": "gpt", "value": f"A {f['color']} {f['shape']}."},
        ]
        for f in facts.values()
    ]
    dataset = messages_dataset(list(map(str, facts)), captions, [paths[i] for i in facts])
    settings = SFTSettings(max_steps=config.caption_steps, seed=config.seed)
    with tempfile.TemporaryDirectory(prefix="align2-tiny-llava-") as start:
        build_tiny_llava(config, corpus, Path(start))
        pretrain_vision(Path(start), images, labels, config)
        train_sft(dataset, Path(start), settings, out)
