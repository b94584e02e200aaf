"""Diagnostics: overfitting detector, exposure ledger, gradient variance, Theorem-1 equivalence.

Submodules that need torch (variance, equivalence) are imported explicitly, never from here.
"""

from coolmix.diagnostics.ledger import ExposureLedger
from coolmix.diagnostics.overfit import OverfitDetector, OverfitFlag, detect_from_jsonl

__all__ = ["ExposureLedger", "OverfitDetector", "OverfitFlag", "detect_from_jsonl"]
