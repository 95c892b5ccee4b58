"""Executors: where a task's units run, all behind the ``concurrent.futures.Executor`` interface
(``submit`` -> Future, ``shutdown``), so the engine does not know which one it drives.

- ``sequential``: in the driving process, one unit after another (debugging, notebooks);
- ``multiprocessing`` (default): a pool of worker processes on this machine (started with
  ``spawn``: LibTorch and OpenMP do not survive ``fork``);
- ``dask``: a Dask distributed cluster, a scheduler ``address`` or a LocalCluster of worker
  processes started for the run;
- ``slurm`` / ``pbs`` / ``kubernetes``: cluster_tools' executors, each unit a job (array jobs)
  with the configured ``resources`` (e.g. ``{mem: 8G, time: "2:00:00"}``)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os


class SequentialExecutor(cf.Executor):
    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001  (the future carries it, as a pool's would)
            if isinstance(e, KeyboardInterrupt):
                raise
            future.set_exception(e)
        return future


class DaskExecutor(cf.Executor):
    """Units as Dask futures, handed back as ``concurrent.futures.Future``s."""

    def __init__(self, address: str | None = None, processes: int | None = None, threads: int = 1):
        try:
            import distributed
        except ImportError:
            raise ImportError(
                "the dask executor needs the 'distributed' package (pip install distributed)"
            ) from None
        self._cluster = None
        if address is None:
            import dask

            # Dask gives its workers MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap
            # threshold at 128 KiB: every large array is then mapped and unmapped anew, and a
            # block's network ran 1.8x slower on its page faults. glibc's adaptive default keeps
            # freed blocks for reuse. (Clusters started elsewhere keep their own settings.)
            environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
            environ.pop("MALLOC_TRIM_THRESHOLD_", None)
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                self._cluster = distributed.LocalCluster(
                    n_workers=processes or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    env={"OMP_NUM_THREADS": str(threads)},
                )
            address = self._cluster
        self.client = distributed.Client(address)

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        dask_future = self.client.submit(fn, *args, pure=False, **kwargs)

        def done(f):
            try:
                future.set_result(f.result())
            except BaseException as e:  # noqa: BLE001
                future.set_exception(e)

        dask_future.add_done_callback(done)
        future._dask_future = dask_future  # keep it alive while it runs
        return future

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(config, threads: int = 1) -> cf.Executor:
    """The executor an :class:`~voxelytics.workflow.spec.ExecutorConfig` describes."""
    strategy = config.strategy
    if strategy == "sequential":
        return SequentialExecutor()
    if strategy == "multiprocessing":
        return cf.ProcessPoolExecutor(
            max_workers=config.processes or max(1, (os.cpu_count() or 1) // threads),
            mp_context=multiprocessing.get_context("spawn"),
        )
    if strategy == "dask":
        return DaskExecutor(config.address, config.processes, threads)
    try:
        import cluster_tools
    except ImportError:
        raise ImportError(
            f"the {strategy} executor needs cluster_tools (pip install cluster_tools)"
        ) from None
    resources = {k: str(v) for k, v in config.resources.items()}
    return cluster_tools.get_executor(strategy, job_resources=resources)
