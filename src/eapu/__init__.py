"""eapu: in-situ training on memristor crossbars with the error-aware probabilistic update."""

from __future__ import annotations

from . import metrics
from .ledger import Ledger
from .optim import AdamEaPU, AdamNoise, InSituOptimizer, SGDEaPU, SGDNoise
from .rules import eapu, exact, get_rule, list_rules

__all__ = [
    "AdamEaPU",
    "AdamNoise",
    "InSituOptimizer",
    "Ledger",
    "SGDEaPU",
    "SGDNoise",
    "eapu",
    "exact",
    "get_rule",
    "list_rules",
    "metrics",
]

__version__ = "0.1.0"
