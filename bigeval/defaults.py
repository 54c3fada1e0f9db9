"""The defaults of the method that several entry points share, written once.

The command line, the run configuration, the library functions and the model files take
these values; none writes its own copy.
"""

from __future__ import annotations

__all__ = ["ROUNDS", "BLEND", "GENOMIC_INVERSE", "GENOMIC_INVERSES", "APY_FROM"]

#: Rounds of the reliability iteration (Parts I and III), as the certified methodology runs it.
ROUNDS = 100

#: Weight of A22 in blending, G* = (1 − w) G + w A22 (preGSf90's AlphaBeta 0.95 0.05).
BLEND = 0.05

#: How G*⁻¹ is held: ``full`` (dense n_g × n_g), ``apy`` (APY: core c × c and n_g × c rows),
#: or ``auto``: full up to APY_FROM genotyped animals when it fits in memory, else APY.
GENOMIC_INVERSE = "auto"
#: the choices (``--genomic-inverse``, config ``genomics.inverse``)
GENOMIC_INVERSES = ("auto", "full", "apy")

#: ``auto`` takes APY above this many genotyped animals (full G*⁻¹, A22⁻¹ and Part II's work
#: matrix are three n_g × n_g matrices: 9.6 GB at 20 000).
APY_FROM = 20_000
