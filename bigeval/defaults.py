"""The defaults of the method that several entry points share, written once.

The command line, the run configuration, the library functions and the model files take
these values; none writes its own copy.
"""

from __future__ import annotations

__all__ = ["ROUNDS", "BLEND", "GROUP_CODES"]

#: Rounds of the reliability iteration (Parts I and III), as the certified methodology runs it.
ROUNDS = 100

#: Weight of A22 in blending, G* = (1 − w) G + w A22 (preGSf90's AlphaBeta 0.95 0.05).
BLEND = 0.05

#: Pedigree parent codes that are unknown parent groups, not animals (a regular expression):
#: negative integers, BLUPF90's convention.
GROUP_CODES = r"^-[0-9]+$"
