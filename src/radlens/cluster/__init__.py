"""Batch analysis on one machine or a Dask cluster, with the same job function.

``jobs.py`` holds :func:`~radlens.cluster.jobs.run_study` (one study in, its result and
output files out), ``executors.py`` the :class:`~radlens.cluster.executors.Executor`
Protocol with a local process pool and Dask distributed behind it
(``EXECUTORS``), ``sources.py`` what a batch reads (folder tree, list file, DICOMweb),
``results.py`` where it writes (output folders, Parquet, the database), ``batch.py`` the
driver (:func:`~radlens.cluster.batch.run_batch`: sharded, resumable) and ``remote.py``
the analyzer that lets ``radlens serve`` run its jobs on a Dask cluster. See
``docs/scaling.md``.
"""
