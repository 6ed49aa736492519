"""align2: curate multimodal instruction data with human- and LLM-preference alignment.

Subpackages map the project's top-level folders, bottom layer first: ``align2.data``
(schema, sources, validation, ledger, outputs), ``align2.models`` (loading, generation,
precision), ``align2.cards``, ``align2.reward`` (reward models and annotation),
``align2.rewrite`` (the inner-LLM rewriter), ``align2.demo``, ``align2.evaluate``,
``align2.builders`` (stages and the pipeline), ``align2.publish`` (releases) and
``align2.cli``.
"""

__version__ = "0.1.0"

from align2.errors import Align2Error  # noqa: E402

__all__ = ["Align2Error", "__version__"]
