"""Approximate reliabilities (Parts I–III of the method) and exact ones for small data."""

from bigeval.reliability.engine import (
    FamilyGraph,
    IterationResult,
    ReliabilityOptions,
    ReliabilityResult,
    alpha_from,
    genomic_reliability,
    iterate,
    reliability,
    result_table,
    start_vector,
)

__all__ = [
    "FamilyGraph",
    "IterationResult",
    "ReliabilityOptions",
    "ReliabilityResult",
    "alpha_from",
    "genomic_reliability",
    "iterate",
    "reliability",
    "result_table",
    "start_vector",
]
