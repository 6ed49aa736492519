"""The inner LLM: batched generation and option scoring, behind a generation cache.

Prompts are generated in batches sorted by token length, padded on the left of each prompt's
own tokens (the padding a decoder needs) after the prefix all of them share, which is
encoded once per batch; greedy by default. Every result is cached under
sha256(model fingerprint, prompt, generation config): an interrupted or repeated run never
regenerates what it has. The cache is a SQLite file, committed after every batch.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from align2.embedded import SMOLLM2, smollm2_model_path, smollm2_tokenizer_path
from align2.errors import Align2Error
from align2.models.backbones import model_fingerprint
from align2.models.precision import generation_precision
from align2.models.scoring import use_bf16

# Bump when the way a batch is computed changes its bfloat16 text (2: the shared prefix is
# encoded once; 3: prompts batched by template, finished rows leave the batch; float32 text
# is unchanged, bf16 rounding may differ): a cache from older code must not mix with new
# generations, or a rebuild would differ by cache state.
GENERATION_FORMAT = 3


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 96
    do_sample: bool = False  # greedy: deterministic
    temperature: float = 0.7  # used when sampling
    top_p: float = 0.9
    seed: int = 0  # sampling seed (per batch, from the batch's prompts)
    batch_size: int = 8  # speed only: not part of the cache key
    bf16: str = "auto"  # "auto": decided per machine and model (models/precision.py)

    def cache_fields(self) -> dict:
        fields = asdict(self)
        fields.pop("batch_size")
        fields["bf16"] = use_bf16(self.bf16, on_cpu=True)  # the precision: it changes the text
        return fields


class LLM:
    """A causal LM by Hub id, local folder, `.gguf` file or `smollm2` (the embedded default).
    Loads on first use; safetensors only; remote code only when asked for."""

    def __init__(self, name: str, revision: str | None = None, trust_remote_code: bool = False):
        self.name, self.revision, self.trust_remote_code = name, revision, trust_remote_code
        self._model = self._tokenizer = None
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            path = smollm2_model_path() if self.name == SMOLLM2 else self.name
            self._fingerprint = model_fingerprint(path, self.revision)
        return self._fingerprint

    def load(self):
        if self._model is None:
            kwargs = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
            if self.name == SMOLLM2:
                model_path, tokenizer_path, kwargs = (
                    smollm2_model_path(),
                    smollm2_tokenizer_path(),
                    {},
                )
            elif self.name.endswith(".gguf"):
                gguf = Path(self.name)
                model_path = tokenizer_path = gguf.parent
                kwargs = {"gguf_file": gguf.name}
            else:
                model_path = tokenizer_path = self.name
                kwargs["use_safetensors"] = True
            tokenizer_kwargs = {k: v for k, v in kwargs.items() if k != "use_safetensors"}
            self._tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, **tokenizer_kwargs)
            self._tokenizer.padding_side = "left"  # decoders continue from the right end
            if self._tokenizer.pad_token is None:
                self._tokenizer.pad_token = self._tokenizer.eos_token
            self._model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs).eval()
            if torch.cuda.is_available():
                self._model.to("cuda")
        return self._model, self._tokenizer

    def chat(self, system: str, user: str) -> str:
        """A prompt string in the model's own chat template."""
        _, tokenizer = self.load()
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class GenerationCache:
    """Generated texts keyed by (model fingerprint, prompt, generation config)."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path))
        self.db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, text TEXT)")

    @staticmethod
    def key(fingerprint: str, prompt: str, config: GenerationConfig) -> str:
        fields = [GENERATION_FORMAT, fingerprint, prompt, config.cache_fields()]
        payload = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def get(self, keys: list[str]) -> dict[str, str]:
        found = {}
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, text FROM generations WHERE key IN ({marks})"
            found.update(self.db.execute(query, chunk).fetchall())
        return found

    def put(self, items: dict[str, str]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?)", items.items())
        self.db.commit()


def shared_prefix(token_ids: list[list[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least one token of its own."""
    shortest = min(len(ids) for ids in token_ids)
    for length, column in enumerate(zip(*token_ids, strict=False)):
        if length == shortest - 1 or any(token != column[0] for token in column):
            return length
    return max(shortest - 1, 0)


def _inputs_after_prefix(token_ids: list[list[int]], prefix: int, pad_id: int, device):
    """[prefix | padding | own tokens] per row: one prefix for the whole batch, each row's
    own tokens right-aligned so generation continues from the last column."""
    width = max(len(ids) for ids in token_ids)
    input_ids, mask = [], []
    for ids in token_ids:
        gap = width - len(ids)
        input_ids.append(ids[:prefix] + [pad_id] * gap + ids[prefix:])
        mask.append([1] * prefix + [0] * gap + [1] * (len(ids) - prefix))
    return torch.tensor(input_ids, device=device), torch.tensor(mask, device=device)


def _prefix_batch(model, tokenizer, prompts: list[str]):
    """(input_ids, attention_mask, prefix, shared): the batch laid out after its common
    beginning (`prefix` tokens, 0 for plain left padding), whose KV cache, computed once and
    repeated per row, `shared` holds as model keyword arguments (empty without a prefix)."""
    token_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    prefix = shared_prefix(token_ids) if _attention_only(model) else 0
    input_ids, attention_mask = _inputs_after_prefix(
        token_ids, prefix, tokenizer.pad_token_id, model.device
    )
    shared = {}
    if prefix:
        cache = DynamicCache(config=model.config)
        model(input_ids=input_ids[:1, :prefix], past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(len(prompts))
        shared["past_key_values"] = cache
    return input_ids, attention_mask, prefix, shared


def _attention_only(model) -> bool:
    """Whether every layer is full attention over a default KV cache: padding between the
    prefix and a row's own tokens is then invisible. Recurrent or linear-attention layers
    (and their custom caches) would run through it, so those models get plain left padding."""
    layer_types = getattr(model.config, "layer_types", None) or ["full_attention"]
    supports = getattr(model, "_supports_default_dynamic_cache", lambda: False)
    return supports() and set(layer_types) == {"full_attention"}


@torch.inference_mode()
def generate_batch(
    llm: LLM, prompts: list[str], config: GenerationConfig, budgets: list[int] | None = None
) -> list[str]:
    """One `generate` call over a batch of prompt strings; returns the new text of each.

    The prompts' common beginning (system prompt, chat markup, instructions: most of each
    prompt) is encoded once and its KV cache shared by the batch; each prompt's own tokens
    follow it, padded in between (positions come from the attention mask, so each row sees
    exactly its own prompt). `budgets` caps each prompt's new tokens (default:
    config.max_new_tokens). Each row stops at its own budget, so a prompt's length cap does
    not depend on which prompts shared its batch (nor does its float32 text; bfloat16
    rounding can vary with the batch's shapes)."""
    budgets = budgets or [config.max_new_tokens] * len(prompts)
    model, tokenizer = llm.load()
    bf16 = use_bf16(config.bf16, on_cpu=True)
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
        batch = _prefix_batch(model, tokenizer, prompts)
        if config.do_sample:
            tokens = _sampled(model, tokenizer, prompts, batch, budgets, config)
        else:
            tokens = _greedy(model, *batch, budgets)
    return [t.strip() for t in tokenizer.batch_decode(tokens, skip_special_tokens=True)]


def _sampled(model, tokenizer, prompts, batch, budgets: list[int], config) -> list:
    """`model.generate`'s samples, seeded from the prompts (a rerun of this batch samples
    the same), each cut at its own budget."""
    digest = hashlib.sha256("\n".join(prompts).encode()).digest()
    torch.manual_seed(config.seed + int.from_bytes(digest[:4], "little"))
    input_ids, attention_mask, _, shared = batch
    output = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        **shared,
        max_new_tokens=max(budgets),
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=config.temperature,
        top_p=config.top_p,
    )
    new_tokens = output[:, input_ids.shape[1] :]
    return [row[:budget] for row, budget in zip(new_tokens, budgets, strict=True)]


def _greedy(model, input_ids, attention_mask, prefix: int, shared: dict, budgets: list[int]):
    """Greedy decoding, `model.generate`'s tokens, where a row leaves the batch (and its KV
    cache) as soon as it ends or reaches its budget: the rest no longer compute it. Most
    rewrites end well before the longest of their batch."""
    cache = shared.get("past_key_values") or DynamicCache(config=model.config)
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    step_ids, step_positions, mask = input_ids[:, prefix:], positions[:, prefix:], attention_mask
    live, out = list(range(len(budgets))), [[] for _ in budgets]
    while live:
        logits = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        going = []
        for j, token in enumerate(logits.argmax(-1).tolist()):
            out[live[j]].append(token)
            if token not in eos and len(out[live[j]]) < budgets[live[j]]:
                going.append(j)
        if len(going) < len(live):
            index = torch.tensor(going, dtype=torch.long, device=mask.device)
            cache.batch_select_indices(index)
            mask, step_positions = mask[index], step_positions[index]
            live = [live[j] for j in going]
        step_ids = torch.tensor([[out[row][-1]] for row in live], device=mask.device)
        step_positions = step_positions[:, -1:] + 1
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
    return out


def generate(
    llm: LLM,
    prompts: list[str],
    config: GenerationConfig,
    cache: GenerationCache | None,
    budgets: list[int] | None = None,
    groups: list[str] | None = None,
) -> list[str]:
    """Texts for `prompts` (in order): cached ones read, the rest generated in batches sorted
    by (group, budget, prompt length) and cached batch by batch. `budgets` caps new tokens
    per prompt (at most config.max_new_tokens): no batch runs longer than its members need.
    `groups` names each prompt's template: prompts of one template batch together, so the
    beginning they share (encoded once) takes in the template's own instructions."""
    if config.bf16 == "auto":  # decided before any key: the precision changes the text
        config = replace(config, bf16=generation_precision(llm, "auto").setting)
    limit = config.max_new_tokens
    budgets = [min(b, limit) for b in budgets] if budgets else [limit] * len(prompts)
    keys = [
        GenerationCache.key(llm.fingerprint, f"{b}\n{p}", config)
        for p, b in zip(prompts, budgets, strict=True)
    ]
    done = cache.get(sorted(set(keys))) if cache is not None else {}
    groups = groups or [""] * len(prompts)
    todo = {
        k: (p, b, g)
        for k, p, b, g in zip(keys, prompts, budgets, groups, strict=True)
        if k not in done
    }
    if todo:
        _, tokenizer = llm.load()
        items = sorted(todo.items())
        lengths = [len(ids) for ids in tokenizer([p for _, (p, _, _) in items])["input_ids"]]
        group_rank = {g: i for i, g in enumerate(sorted(set(groups)))}
        order = np.lexsort(
            (lengths, [b for _, (_, b, _) in items], [group_rank[g] for _, (_, _, g) in items])
        )
        items = [items[i] for i in order]
        batches = range(0, len(items), config.batch_size)
        for start in tqdm(batches, desc="generating", unit=" batches"):
            batch = items[start : start + config.batch_size]
            prompts_b, budgets_b = [p for _, (p, _, _) in batch], [b for _, (_, b, _) in batch]
            texts = generate_batch(llm, prompts_b, config, budgets_b)
            new = dict(zip([k for k, _ in batch], texts, strict=True))
            if cache is not None:
                cache.put(new)
            done.update(new)
    return [done[k] for k in keys]


@torch.inference_mode()
def option_probabilities(
    llm: LLM, prompts: list[str], options: tuple[str, ...], batch_size: int = 8
) -> np.ndarray:
    """P(first answer token = each option label) per prompt, renormalised over the options:
    one forward pass per prompt, no sampling. Shape (len(prompts), len(options)).

    As in `generate_batch`, the batch's common beginning is encoded once and its KV cache
    shared; positions come from the attention mask, so each row sees its own prompt."""
    model, tokenizer = llm.load()
    option_ids = [tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in options]
    probabilities = np.empty((len(prompts), len(options)), dtype=np.float64)
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        input_ids, mask, prefix, shared = _prefix_batch(model, tokenizer, batch)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        output = model(
            input_ids=input_ids[:, prefix:],
            attention_mask=mask,
            position_ids=positions[:, prefix:],
            **shared,
        )
        logits = output.logits[:, -1, :].float()
        chosen = torch.log_softmax(logits, dim=-1)[:, option_ids]
        probabilities[start : start + len(batch)] = torch.softmax(chosen, dim=-1).cpu().numpy()
    return probabilities


class OptionReader:
    """A causal LM asked to reply with one of a few options (labels, digits): loaded on first
    use, pickled as its identity only (so `datasets` fingerprints a transform holding it),
    and refused at load when the options do not start with distinct tokens."""

    def __init__(self, name: str, revision: str | None, trust_remote_code: bool, options):
        self.name, self.revision, self.trust_remote_code = name, revision, trust_remote_code
        self.options = tuple(options)
        self.fingerprint = LLM(name, revision, trust_remote_code).fingerprint
        self._loaded = None  # what `llm` (or a subclass's loader) loaded

    @property
    def identity(self) -> tuple:
        """What its readings depend on, besides the prompts."""
        return (self.name, self.revision, self.trust_remote_code, self.fingerprint, self.options)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_loaded"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _loaded=None)

    def option_ids(self, tokenizer) -> list[int]:
        """Each option's first token; refused unless they differ."""
        first = [tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in self.options]
        if len(set(first)) != len(self.options):
            raise Align2Error(
                f"{self.name}: the options {', '.join(self.options)} do not start with "
                "distinct tokens, so its reply cannot be read as one of them"
            )
        return first

    def llm(self) -> LLM:
        if self._loaded is None:
            llm = LLM(self.name, self.revision, self.trust_remote_code)
            self.option_ids(llm.load()[1])
            self._loaded = llm
        return self._loaded

    def probabilities(self, system: str, prompts: list[str], batch_size: int) -> np.ndarray:
        """P(each option) per prompt, asked in the model's chat template after `system`."""
        llm = self.llm()
        chats = [llm.chat(system, prompt) for prompt in prompts]
        return option_probabilities(llm, chats, self.options, batch_size)


@torch.inference_mode()
def answer_nll(
    llm: LLM, questions: list[str], answers: list[str], batch_size: int = 8
) -> np.ndarray:
    """Mean negative log-likelihood per token of each answer after its question, teacher-forced
    in the model's own chat template (the user asks, the assistant answers), in float32: how
    much the inner LLM prefers a text as its own reply (lower: more its own).

    The answer's tokens follow the prompt's, which ends at the assistant header (a special
    token), so they are exactly the answer's own tokenisation."""
    model, tokenizer = llm.load()
    rows = []
    for question, answer in zip(questions, answers, strict=True):
        messages = [{"role": "user", "content": question}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        rows.append((prompt_ids + answer_ids, len(prompt_ids)))
    nll = np.full(len(rows), np.nan)
    order = np.argsort([len(ids) for ids, _ in rows], kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        width = max(len(rows[i][0]) for i in index)
        input_ids = torch.full((len(index), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(index), width), dtype=torch.long)
        targets = torch.full((len(index), width), -100)
        for j, i in enumerate(index):
            ids, prompt_length = rows[i]
            input_ids[j, : len(ids)] = torch.tensor(ids)
            mask[j, : len(ids)] = 1
            targets[j, prompt_length : len(ids)] = torch.tensor(ids[prompt_length:])
        logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device))
        logits = logits.logits[:, :-1].float()
        labels = targets[:, 1:].to(logits.device)
        losses = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), labels, ignore_index=-100, reduction="none"
        )
        counts = (labels != -100).sum(-1).clamp(min=1)
        nll[index] = (losses.sum(-1) / counts).cpu().numpy()
    return nll
