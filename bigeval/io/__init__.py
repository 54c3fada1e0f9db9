"""Input and output: readers of the methodology's files and atomic writers."""

from bigeval.io.readers import (
    read_genotyped,
    read_interbull,
    read_pedigree,
    read_records,
    read_triplets,
)
from bigeval.io.writers import (
    atomic_path,
    write_csv_atomic,
    write_text_atomic,
    write_triplets,
)

__all__ = [
    "atomic_path",
    "read_genotyped",
    "read_interbull",
    "read_pedigree",
    "read_records",
    "read_triplets",
    "write_csv_atomic",
    "write_text_atomic",
    "write_triplets",
]
