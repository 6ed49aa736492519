"""align2: curate multimodal instruction data with human- and LLM-preference alignment.

The stages live in subpackages mapped from the project's top-level folders:
``align2.builders`` (sources, validation, scoring, selection, releases),
``align2.reward`` (reward models), ``align2.rewrite`` (the inner-LLM rewriter) and
``align2.cards`` (dataset and model cards).
"""

__version__ = "0.1.0"

from align2.errors import Align2Error  # noqa: E402

__all__ = ["Align2Error", "__version__"]
