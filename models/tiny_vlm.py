"""`tiny-vlm`: a small vision-language sequence classifier, trained from scratch on a CPU.

Why this shape and not a tiny LLaVA (SigLIP ViT + Llama): from scratch on 2 cores, a ViT
with 8x8 patches learned colour in about a minute but shape and yes/no only slowly. A
convolutional stem has the locality prior that shapes need, so it learns them in seconds;
its 4x4 feature map becomes 16 image tokens that are prepended
to the text (early fusion, as LLaVA does), and a small bidirectional transformer reads the
hidden state h at the last non-pad token. With early fusion alone the vision stem got almost
no gradient (fact pairs stayed at chance for 6 minutes: the text-only optimum is a saddle),
so the score adds a bilinear match between what the text claims and what the image shows:

    score = w.h + < U h + sum_t p_t W e_t , V v > + b(t_-2) + b(t_-1) + mean_i f(t_i-1, t_i)

v the pooled image features (shape maps and per-pixel colour detectors, max over the image),
e_t each word's embedding and p_t in (-1, 1) its polarity: negated by negators in the few
tokens before it ("there is no circle"), and for the question's words also by the answer's
verdict ("Is there not a red shape? Yes." denies "red"). Negator and verdict strengths are
one number per token; with them the yes/no pairs learn in a few hundred steps where a
single polarity read from h stayed at chance for the short "Yes."/"No." answers. b(t) is a
learned number for each of the text's last two tokens: how it ends. f is a learned number
for each (hashed) pair of adjacent tokens, averaged over the answer: how well its words
follow one another, which a shuffled answer fails. The image is encoded once per preference
pair: a batch of B pairs carries B images for its 2B sequences.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

POLARITY_GAIN = 10.0
ENDING_GAIN = 20.0  # 40 with centred, margined training: yes/no fact pairs fell to 0.77
FLUENCY_GAIN = 20.0


class TinyVLMConfig(PretrainedConfig):
    model_type = "align2_tiny_vlm"

    def __init__(
        self,
        vocab_size: int = 49153,  # SmolLM2's 49,152 tokens + <image>
        hidden_size: int = 128,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 4,
        intermediate_size: int = 512,
        # Text positions (image tokens have their own): LLaVA-Instruct's detail and reasoning
        # answers run 100-300 words and more, the seed trained at 2048 tokens. Longer texts are
        # cut to fit when scored (models/scoring.py), their beginning kept.
        max_position_embeddings: int = 2048,
        image_size: int = 64,
        vision_channels: tuple[int, ...] = (32, 64, 128),  # one stride-2 block each
        image_grid: int = 4,  # image tokens = image_grid ** 2
        match_size: int = 64,  # width of the bilinear text-image match
        color_channels: int = 32,  # per-pixel colour detectors in the match
        answer_marker_id: int | None = None,  # the template's "Answer" token: answer words follow
        negation_window: int = 3,  # a negator denies the words up to this many tokens after it
        fluency_buckets: int = 65536,  # hashed adjacent-token pairs read by the fluency term
        num_labels: int = 1,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.image_size = image_size
        self.vision_channels = list(vision_channels)
        self.image_grid = image_grid
        self.match_size = match_size
        self.color_channels = color_channels
        self.answer_marker_id = answer_marker_id
        self.negation_window = negation_window
        self.fluency_buckets = fluency_buckets
        super().__init__(num_labels=num_labels, **kwargs)


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1),
        nn.BatchNorm2d(cout),
        nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.GELU(),
    )


class TinyVLMForSequenceClassification(PreTrainedModel):
    config_class = TinyVLMConfig
    base_model_prefix = "tiny_vlm"
    main_input_name = "input_ids"

    def __init__(self, config: TinyVLMConfig):
        super().__init__(config)
        d = config.hidden_size
        channels = [3, *config.vision_channels]
        self.vision = nn.Sequential(
            *[_conv_block(a, b) for a, b in zip(channels, channels[1:], strict=False)],
            nn.AdaptiveAvgPool2d(config.image_grid),
        )
        self.vision_proj = nn.Sequential(nn.Linear(channels[-1], d), nn.LayerNorm(d))
        self.image_pos = nn.Parameter(torch.zeros(config.image_grid**2, d))
        # Per-pixel colour detectors, max over the image: colour presence from the first step.
        self.color_probe = nn.Conv2d(3, config.color_channels, 1)
        # Two match terms, one per image path, so colour and shape do not compete for one space.
        m = config.match_size
        self.match_text = nn.Linear(d, 2 * m, bias=False)
        self.match_words = nn.Linear(d, 2 * m, bias=False)
        # Each word's polarity, asserted (+) or denied (-): negators shortly before it deny
        # it ("there is no circle"), as may its context; a question's words are also signed
        # by the answer's verdict ("Is there not a red shape? Yes." denies "red"). Negator
        # and verdict strengths are one learned number per token, starting at 0 and read
        # x POLARITY_GAIN (with Adam, that multiplies their learning rate): a direct path that
        # learns within the demo's budget, where attention alone stayed at chance.
        self.claim_gate = nn.Linear(d, 1)
        self.negators = nn.Embedding(config.vocab_size, 1)
        self.verdicts = nn.Embedding(config.vocab_size, 1)
        # How the text ends, one learned number per token read at its last two (the templates
        # end in a newline): a sentence cut mid-way ("...the only shape is a") scores lower.
        # Without it the claims summed over words favoured a long cut answer over a short
        # complete one (short > truncated pairs 0.75; 0.94 with it at x10, 1.00 at x20 with
        # the demo's centred, margined training).
        self.endings = nn.Embedding(config.vocab_size, 1)
        self.match_shape = nn.Linear(channels[-1], m, bias=False)
        self.match_color = nn.Linear(config.color_channels, m, bias=False)
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.embed_positions = nn.Embedding(config.max_position_embeddings, d)
        layer = nn.TransformerEncoderLayer(
            d,
            config.num_attention_heads,
            config.intermediate_size,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, config.num_hidden_layers, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(d)
        self.score = nn.Linear(d, config.num_labels, bias=False)
        # How well the answer's words follow one another: one learned number per (hashed) pair
        # of adjacent tokens, averaged over the answer. A shuffled answer keeps every word, so
        # the claims and the ending cannot tell it from the original, and the encoder did not
        # learn word order within the demo's budget. Zeros drawn from no random numbers, so
        # every other weight starts as it did before the term existed.
        if config.fluency_buckets:
            self.bigrams = nn.Embedding(
                config.fluency_buckets, 1, _weight=torch.zeros(config.fluency_buckets, 1)
            )
        self.post_init()

    def _init_weights(self, module):
        if module is getattr(self, "bigrams", None):
            nn.init.zeros_(module.weight)  # no normal_ first: see __init__
            return
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        if any(module is getattr(self, n, None) for n in ("negators", "verdicts", "endings")):
            # Words start asserted (the word path learns at once); no ending or word pair is
            # preferred, and a checkpoint saved before a term existed scores as it did.
            nn.init.zeros_(module.weight)

    def answer_segment(self, input_ids, attention_mask) -> torch.Tensor | None:
        """1.0 on the answer's tokens (after the template's first "Answer" marker), else 0 (a
        question-model text has no marker: all 0); None for a config without a marker id."""
        if self.config.answer_marker_id is None:
            return None
        is_marker = (input_ids == self.config.answer_marker_id).int()
        after = (is_marker.cumsum(-1) - is_marker) > 0  # strictly after the first marker
        return (after & (attention_mask > 0)).to(self.embed_tokens.weight.dtype)

    def word_polarity(self, input_ids, attention_mask, text_hidden) -> torch.Tensor:
        """(B, T, 1) in (-1, 1): how much each word is asserted (+) or denied (-)."""
        mask = attention_mask.unsqueeze(-1).to(text_hidden.dtype)
        running = torch.cumsum(POLARITY_GAIN * self.negators(input_ids) * mask, dim=1)
        # The negator strength of the `window` tokens before each: running[t-1] - running[t-w-1].
        window = self.config.negation_window
        before = nn.functional.pad(running, (0, 0, 1, 0))[:, :-1]
        negation = before - nn.functional.pad(running, (0, 0, window + 1, 0))[:, : -window - 1]
        polarity = torch.tanh(1.0 + negation + self.claim_gate(text_hidden))
        in_answer = self.answer_segment(input_ids, attention_mask)
        if in_answer is None:
            return polarity
        answer = in_answer.unsqueeze(-1)
        strength = (POLARITY_GAIN * self.verdicts(input_ids) * answer).sum(1, keepdim=True)
        verdict = torch.tanh(1.0 + strength)  # the answer's yes (+) or no (-)
        return torch.where(answer.bool(), polarity, polarity * verdict)

    def encode_images(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image tokens (B, g*g, d), max-pooled match features (B, 2 * match_size))."""
        features = self.vision(pixel_values).flatten(2).transpose(1, 2)  # (B, g*g, C)
        colors = nn.functional.gelu(self.color_probe(pixel_values)).flatten(2)  # (B, K, H*W)
        # Max, not mean: "is there a red shape" is a question of presence anywhere.
        pooled = torch.cat(
            [self.match_shape(features.amax(1)), self.match_color(colors.amax(-1))], dim=-1
        )
        return self.vision_proj(features) + self.image_pos, pooled

    def forward(self, input_ids, attention_mask=None, pixel_values=None, **kwargs):
        if pixel_values is None:
            raise ValueError("tiny-vlm scores an image with its text: pass `pixel_values`")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        n_text, n_images = input_ids.shape[0], pixel_values.shape[0]
        if n_text % n_images:
            raise ValueError(f"{n_text} sequences for {n_images} images: need a multiple")
        tokens, pooled = self.encode_images(pixel_values)
        repeats = n_text // n_images
        images, pooled = tokens.repeat(repeats, 1, 1), pooled.repeat(repeats, 1)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        words = self.embed_tokens(input_ids)
        text = words + self.embed_positions(positions)
        hidden = torch.cat([images, text], dim=1)
        mask = torch.cat(
            [
                torch.ones(
                    images.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device
                ),
                attention_mask,
            ],
            dim=1,
        )
        hidden = self.encoder(hidden, src_key_padding_mask=mask == 0)
        # The last non-pad token, for right or left padding alike.
        last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(-1)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        hidden_last = self.norm(hidden[rows, last])
        # Each word claims its own meaning (a direct path from "red" to the match), signed:
        # "there is no circle" denies "circle" while "a blue rectangle" asserts "rectangle".
        polarity = self.word_polarity(input_ids, attention_mask, hidden[:, images.shape[1] :])
        text_mask = attention_mask.unsqueeze(-1).to(words.dtype)
        claims = (polarity * self.match_words(words) * text_mask).sum(1)
        claim = self.match_text(hidden_last) + claims
        match = (claim * pooled).sum(-1, keepdim=True)
        last_text = last - images.shape[1]
        ending = sum(
            self.endings(input_ids[rows, (last_text - back).clamp(min=0)]) for back in (0, 1)
        )
        logits = self.score(hidden_last) + match + ENDING_GAIN * ending
        if self.config.fluency_buckets:
            logits = logits + FLUENCY_GAIN * self.fluency(input_ids, attention_mask)
        return SequenceClassifierOutput(logits=logits)

    def fluency(self, input_ids, attention_mask) -> torch.Tensor:
        """(B, 1): the mean learned number of the answer's adjacent token pairs (hashed); 0 for a
        question-model text (no answer); the whole text's for a config without a marker id."""
        in_answer = self.answer_segment(input_ids, attention_mask)
        if in_answer is None:
            in_answer = attention_mask.to(self.embed_tokens.weight.dtype)
        pairs = (input_ids[:, :-1] * 1_000_003 + input_ids[:, 1:]) % self.config.fluency_buckets
        both = in_answer[:, :-1] * in_answer[:, 1:]
        total = (self.bigrams(pairs).squeeze(-1) * both).sum(1, keepdim=True)
        return total / both.sum(1, keepdim=True).clamp(min=1.0)


def pixel_values(images: list[Image.Image], size: int) -> torch.Tensor:
    """RGB, resized to `size` when needed, scaled to [-1, 1]; (B, 3, size, size)."""
    arrays = []
    for image in images:
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image, dtype=np.float32))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch / 127.5 - 1.0


AutoConfig.register(TinyVLMConfig.model_type, TinyVLMConfig)
AutoModelForSequenceClassification.register(TinyVLMConfig, TinyVLMForSequenceClassification)
