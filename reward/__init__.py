"""Reward models trained on human preferences (question model f, answer model g)."""
