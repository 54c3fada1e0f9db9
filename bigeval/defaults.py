"""The defaults of the method that several entry points share, written once.

The command line, the run configuration, the library functions and the model files take
these values; none writes its own copy.
"""

from __future__ import annotations

__all__ = ["ROUNDS", "BLEND", "SAMPLE_SEED", "EXACT_MAX_EQUATIONS", "EXACT_MAX_GENOTYPED",
           "EXACT_SAMPLE_SHARE", "GROUP_CODES"]

#: Rounds of the reliability iteration (Parts I and III), as the certified methodology runs it.
ROUNDS = 100

#: Weight of A22 in blending, G* = (1 − w) G + w A22 (preGSf90's AlphaBeta 0.95 0.05).
BLEND = 0.05

#: Seed of a herd sample (`bigeval sample`, and the exact check on a sample).
SAMPLE_SEED = 1

#: The exact check on the whole population runs (check = "auto") up to this many MME equations
#: and genotyped animals; beyond, on a seeded sample (bigeval.reliability.sample_check).
EXACT_MAX_EQUATIONS = 250_000
EXACT_MAX_GENOTYPED = 20_000

#: The exact check on a sample aims at this share of its limits (exact.max_equations and
#: exact.max_genotyped), leaving room for the sample's spread around the target.
EXACT_SAMPLE_SHARE = 0.5
#: Pedigree parent codes that are unknown parent groups, not animals (a regular expression):
#: negative integers, BLUPF90's convention.
GROUP_CODES = r"^-[0-9]+$"
#: How G*⁻¹ is held: ``full`` (dense n_g × n_g), ``apy`` (APY: core c × c and n_g × c rows),
#: or ``auto``: full up to APY_FROM genotyped animals when it fits in memory, else APY.
GENOMIC_INVERSE = "auto"
#: the choices (``--genomic-inverse``, config ``genomics.inverse``)
GENOMIC_INVERSES = ("auto", "full", "apy")

#: ``auto`` takes APY above this many genotyped animals (full G*⁻¹, A22⁻¹ and Part II's work
#: matrix are three n_g × n_g matrices: 9.6 GB at 20 000).
APY_FROM = 20_000
