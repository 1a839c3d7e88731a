"""The token proxy: OpenAI-compatible, per-customer tokens, monthly limits metered in Redis."""
