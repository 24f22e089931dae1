"""The engine: one notebook executed in a bubblewrap sandbox (kernels forked from a warm template), locally or on
Dask workers. It knows nothing of the gradebook."""
