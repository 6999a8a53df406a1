"""Triggers, one module per surface: each translates its trigger into a call on ``shared`` and back."""
