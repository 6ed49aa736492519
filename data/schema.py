"""The canonical row. LLaVA field names, so outputs drop into LLaVA training code.

Stages add columns (scores, style, decision, reason, ...); they never rename these.
"""

from __future__ import annotations

from datasets import Features, Image, List, Value

HUMAN, GPT = "human", "gpt"
ROLES = (HUMAN, GPT)
IMAGE_TOKEN = "<image>"
# LLaVA-Instruct-158k's three files; other sources may carry other types.
TYPES = ("conversation", "detail", "complex_reasoning")
UNKNOWN_TYPE = "unknown"

TURN = {"from": Value("string"), "value": Value("string")}

# `image` is `Image()`: a path string stays a path (decoded lazily) until publishing
# embeds the bytes; sources with embedded images keep their bytes.
# `id` is the row's key, unique within a build; `source_id` is the id the source gave it.
# LLaVA's ids are image ids, shared by every row on an image (validate.RowKeys).
FEATURES = Features(
    {
        "id": Value("string"),
        "source_id": Value("string"),
        "image": Image(),
        "conversations": List(TURN),
        "type": Value("string"),
        "source": Value("string"),
    }
)


def type_from_filename(name: str) -> str:
    """LLaVA-Instruct-158k ships one file per type: conversation_58k.json, detail_23k.json, ..."""
    lowered = name.lower()
    for kind in sorted(TYPES, key=len, reverse=True):
        if kind in lowered:
            return kind
    return UNKNOWN_TYPE
