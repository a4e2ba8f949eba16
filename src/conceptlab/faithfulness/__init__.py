"""Faithfulness: whether concepts mean their names and explanations hold (pure functions)."""
