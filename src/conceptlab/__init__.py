"""conceptlab."""
