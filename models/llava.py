"""A LLaVA-style reward model: LlavaModel (vision tower, projector, language model) with a
scalar score head read at the last non-pad token, as the seed's
LlavaLlamaForSequenceClassification. transformers ships sequence classifiers for Gemma3 and
Qwen3.5 but none for LLaVA; this one is built from transformers' own generic head.

Importing this module registers it for `LlavaConfig`, so
`AutoModelForSequenceClassification.from_pretrained("llava-hf/llava-1.5-7b-hf", num_labels=1)`
loads the checkpoint's vision tower, projector and language model (the LM head is unused)
and a fresh score head, and a saved reward model reloads the same way.
"""

from __future__ import annotations

from transformers import AutoModelForSequenceClassification, LlavaConfig
from transformers.modeling_layers import GenericForSequenceClassification
from transformers.models.llava.modeling_llava import LlavaPreTrainedModel


class LlavaForSequenceClassification(GenericForSequenceClassification, LlavaPreTrainedModel):
    """`pixel_values` reach LlavaModel through the generic head's keyword arguments."""


# exist_ok: transformers skips registrations for its own config classes without it (there
# is no LLaVA sequence classifier to replace).
AutoModelForSequenceClassification.register(
    LlavaConfig, LlavaForSequenceClassification, exist_ok=True
)
