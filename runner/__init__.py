"""batchrun: declarative, crash-safe runner for Anthropic Message Batches."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
