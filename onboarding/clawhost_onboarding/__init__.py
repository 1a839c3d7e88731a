"""clawhost component."""
