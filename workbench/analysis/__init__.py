"""Pure functions and data objects over predictions (headless)."""

from .errors import ErrorAnalysis, Flips

__all__ = ["ErrorAnalysis", "Flips"]
