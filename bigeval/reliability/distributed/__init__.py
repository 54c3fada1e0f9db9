"""The reliability iteration on a Dask cluster: the pedigree partitioned into blocks, the
blockwise and resident engines, and the one owner of the Dask client (cluster)."""
