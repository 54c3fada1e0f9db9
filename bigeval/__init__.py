"""bigeval: national genetic evaluations of livestock.

Genomic relationships from chunked genotypes, the mixed-model equations, and approximate
reliabilities (Misztal et al. 1993, 2013; the Czech certified methodology of Bauer, Vostrý
and Přibyl) for hundreds of thousands to millions of animals.
"""

from bigeval.errors import BigevalError, BigevalWarning, InputError, OutputError, ResourceError

__version__ = "0.1.0"

__all__ = ["BigevalError", "BigevalWarning", "InputError", "OutputError", "ResourceError",
           "__version__"]
