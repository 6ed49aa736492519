"""LLM-preference alignment: the inner-LLM rewriter, its review step and guards."""
