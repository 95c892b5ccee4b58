"""Runs a workflow: tasks in dependency order, each task's units through an executor.

Reuse and resumption rest on two records inside a task's folder, ``.voxelytics/task.json`` (the
task's fingerprint and, once done, its summary) and ``.voxelytics/units/<n>.json`` (one per
finished unit, written atomically after the unit returned). A task's fingerprint hashes its class,
version, config, the bounding box and its inputs' fingerprints (for a path: its size and times),
so a changed config reruns that task and everything that reads it, nothing else. A task runs in
``<work_dir>/<task>.partial`` and is renamed to ``<work_dir>/<task>`` when complete, so a folder
without ``.partial`` is always a whole output; killed at any point, the same command resumes
with the units not yet recorded, and units are idempotent, so the result is the same bytes."""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Optional

from .executors import make_executor
from .spec import Workflow, WorkflowError
from .task import RECORDS, Context, task_class

STATES = ("pending", "skipped", "running", "complete", "failed", "cancelled", "stale")
log = logging.getLogger("voxelytics.workflow")


class WorkflowFailed(RuntimeError):
    """A unit failed after its retries; the message has its task, unit, box, host and traceback."""


def _write_json(path: str, value) -> None:
    """Atomically: a reader sees the old file or the new one, never a part."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _path_signature(path: str) -> list:
    """What changes when a dataset or file given as a path changes."""
    out = [path]
    for p in (path, os.path.join(path, "datasource-properties.json")):
        if os.path.exists(p):
            st = os.stat(p)
            out.append([os.path.basename(p), st.st_size, st.st_mtime_ns])
    return out


def fingerprints(workflow: Workflow) -> dict:
    """Task name -> hex fingerprint (see the module docs)."""
    out = {}
    box = workflow.spec.global_parameters.bounding_box
    for name in workflow.order:
        cls = workflow.task_class(name)
        inputs = {}
        for key, ref in sorted(workflow.inputs[name].items()):
            inputs[key] = [out[ref.task], ref.output] if ref.task else _path_signature(ref.path)
        blob = json.dumps(
            {
                "class": f"{cls.__module__}.{cls.__qualname__}",
                "version": cls.version,
                "config": workflow.configs[name].model_dump(mode="json"),
                "inputs": inputs,
                "bounding_box": box,
            },
            sort_keys=True,
        )
        out[name] = hashlib.sha256(blob.encode()).hexdigest()
    return out


def task_dir(workflow: Workflow, name: str) -> str:
    return os.path.join(workflow.work_dir, name)


def output_path(workflow: Workflow, name: str, output: Optional[str] = None) -> str:
    outputs = workflow.task_class(name).outputs
    return os.path.join(task_dir(workflow, name), outputs[output or next(iter(outputs))])


@dataclass
class TaskPlan:
    name: str
    state: str  # what it is now: complete, stale, pending (partial: some units done), ...
    action: str  # what this run does with it: reuse, run, resume, skip (not selected)
    reason: str
    fingerprint: str
    units_done: int = 0


def _record(folder: str):
    return _read_json(os.path.join(folder, RECORDS, "task.json"))


def plan(workflow: Workflow, *, until=None, only=None, force=()) -> list:
    """What a run would do, task by task, and why (``voxelytics run --dry-run`` prints it)."""
    for t in [*([until] if until else []), *(only or []), *force]:
        if t not in workflow.spec.tasks:
            raise WorkflowError(f"{workflow.source}: no task {t!r} (tasks: {sorted(workflow.spec.tasks)})")
    if only:
        selected = set(only)
    elif until:
        selected, frontier = {until}, {until}
        while frontier:
            frontier = {d for t in frontier for d in workflow.dependencies(t)} - selected
            selected |= frontier
    else:
        selected = set(workflow.order)
    forced = set(force)
    for t in force:
        forced |= workflow.dependants(t) & selected
    prints = fingerprints(workflow)
    plans, runs = [], set()
    for name in workflow.order:
        final, partial = task_dir(workflow, name), task_dir(workflow, name) + ".partial"
        record, partial_record = _record(final), _record(partial)
        fp = prints[name]
        done = 0
        if record and record.get("fingerprint") == fp and record.get("state") == "complete":
            state = "complete"
        elif record:
            state = "stale"
        else:
            state = "pending"
        if partial_record and partial_record.get("fingerprint") == fp:
            done = (
                len(os.listdir(os.path.join(partial, RECORDS, "units")))
                if os.path.isdir(os.path.join(partial, RECORDS, "units"))
                else 0
            )
        upstream = [d for d in workflow.dependencies(name) if d in runs]
        if name not in selected:
            action, reason = "skip", "not selected"
            if state != "complete" and any(name in workflow.dependencies(t) for t in selected):
                raise WorkflowError(
                    f"task {name!r} is not complete ({state}) but selected tasks read it: run it first"
                )
        elif name in forced:
            action, reason = "run", "forced" if name in force else "an input task is forced"
        elif state == "complete":
            action, reason = (
                ("run", f"input task(s) {upstream} rerun") if upstream else ("reuse", "fingerprint matches")
            )
        elif done:
            action, reason = "resume", f"{done} unit(s) of an interrupted run are done"
        elif state == "stale":
            action, reason = "run", "config, version or inputs changed since it ran"
        else:
            action, reason = "run", "never ran"
        if action in ("run", "resume"):
            runs.add(name)
        plans.append(TaskPlan(name, state, action, reason, fp, done))
    return plans


def _peak_rss_reset() -> None:
    try:  # Linux: "5" resets the peak resident set size (VmHWM) of this process
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_unit(class_name: str, context: Context, index: int, unit) -> dict:
    """One unit, in a worker: its result and what it cost, or its traceback."""
    _peak_rss_reset()
    start = time.perf_counter()
    info = {"index": index, "unit": unit, "host": socket.gethostname(), "pid": os.getpid()}
    try:
        result = task_class(class_name)(context).run_unit(unit)
        info.update(ok=True, result=result)
    except Exception:  # noqa: BLE001  (reported with the unit; the run decides)
        info.update(ok=False, traceback=traceback.format_exc())
    info.update(seconds=time.perf_counter() - start, peak_rss_bytes=_peak_rss())
    return info


@dataclass
class RunResult:
    run_dir: str
    tasks: dict = field(default_factory=dict)  # name -> {state, reason, seconds, units, summary, ...}
    error: Optional[str] = None  # what stopped the run, if something did

    def state(self, name: str) -> str:
        return self.tasks[name]["state"]


class Runner:
    """``Runner(workflow).run()``: see the module docs. ``executor``: an Executor to use instead
    of the workflow's; ``progress``: tqdm bars per task."""

    def __init__(self, workflow: Workflow, *, executor: Optional[cf.Executor] = None, progress: bool = True):
        self.workflow = workflow
        self.executor = executor
        self.progress = progress
        g = workflow.spec.global_parameters
        self.threads = g.threads
        self.box = g.bounding_box

    def _context(self, name: str, out: str, extra=None) -> Context:
        inputs = {}
        for key, ref in self.workflow.inputs[name].items():
            inputs[key] = output_path(self.workflow, ref.task, ref.output) if ref.task else ref.path
        cls = self.workflow.task_class(name)
        return Context(
            name, self.workflow.configs[name], inputs, out, self.box, self.threads, extra or {}, cls.outputs
        )

    def run(self, *, until=None, only=None, force=()) -> RunResult:
        wf = self.workflow
        plans = plan(wf, until=until, only=only, force=force)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        run_dir = os.path.join(wf.work_dir, RECORDS, "runs", stamp)
        os.makedirs(run_dir)
        self.run_dir = run_dir
        with open(os.path.join(run_dir, "workflow.yaml"), "w") as f:
            f.write(wf.text)
        handler = logging.FileHandler(os.path.join(run_dir, "run.log"))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        result = RunResult(run_dir)
        for p in plans:
            state = {"reuse": "skipped", "skip": p.state}.get(p.action, "pending")
            result.tasks[p.name] = {
                "state": state, "action": p.action, "reason": p.reason, "fingerprint": p.fingerprint,
                "task": wf.spec.tasks[p.name].task,
            }  # fmt: skip
        started = time.time()
        self._save(result, started)
        executors = {}
        try:
            for p in plans:
                if p.action not in ("run", "resume"):
                    if p.action == "reuse":
                        log.info("%s: reused (%s)", p.name, p.reason)
                        result.tasks[p.name].update(self._summary(task_dir(wf, p.name)))
                    continue
                result.tasks[p.name]["state"] = "running"
                self._save(result, started)
                log.info("%s: %s (%s)", p.name, p.action, p.reason)
                t = time.perf_counter()
                info = self._run_task(p, executors)  # interrupted: marked cancelled below
                info["seconds"] = time.perf_counter() - t
                result.tasks[p.name].update(info)
                self._save(result, started)
                if info["state"] == "failed":
                    raise WorkflowFailed(info["error"])
                log.info("%s: complete in %.1f s", p.name, info["seconds"])
        except BaseException as e:
            for info in result.tasks.values():
                if info["state"] == "running":
                    info["state"] = "cancelled"
            result.error = f"{type(e).__name__}: {e}"
            raise
        finally:
            for executor in executors.values():
                executor.shutdown(wait=False, cancel_futures=True)
            self._save(result, started)
            log.removeHandler(handler)
            handler.close()
        return result

    def _save(self, result: RunResult, started: float) -> None:
        _write_json(os.path.join(result.run_dir, "run.json"), {
            "workflow": self.workflow.source, "work_dir": self.workflow.work_dir, "started": started,
            "updated": time.time(), "tasks": result.tasks, "error": result.error,
        })  # fmt: skip

    @staticmethod
    def _summary(folder: str) -> dict:
        record = _record(folder) or {}
        return {k: record[k] for k in ("summary", "units", "unit_stats") if k in record}

    def _executor_config(self, name: str):
        spec = self.workflow.spec
        return spec.tasks[name].distribution or spec.global_parameters.executor_config()

    def _executor(self, name: str, executors: dict) -> cf.Executor:
        if self.executor is not None:
            return self.executor
        config = self._executor_config(name)
        key = config.model_dump_json()
        if key not in executors:
            executors[key] = make_executor(config, self.threads)
        return executors[key]

    def _unit_threads(self, config, units: int) -> int:
        """Threads per unit: the workflow's, or more where a task on this machine has fewer units
        than the cores its workers have (a one-unit task gets them all; results do not depend on
        the thread count)."""
        if self.executor is not None or config.strategy not in ("sequential", "multiprocessing", "dask"):
            return self.threads
        if config.strategy == "dask" and config.address is not None:
            return self.threads
        cores = os.cpu_count() or 1
        if config.strategy == "sequential":  # one unit at a time, in this process
            return max(self.threads, cores)
        workers = config.processes or max(1, cores // self.threads)
        return max(self.threads, min(cores, workers * self.threads) // max(1, min(units, workers)))

    def _run_task(self, p: TaskPlan, executors: dict) -> dict:
        wf = self.workflow
        final, partial = task_dir(wf, p.name), task_dir(wf, p.name) + ".partial"
        if p.action == "run":  # not a resumption: start from nothing
            shutil.rmtree(partial, ignore_errors=True)
        else:
            _sweep_temporary(partial)
        shutil.rmtree(final, ignore_errors=True)  # stale (or forced) output goes first
        os.makedirs(os.path.join(partial, RECORDS, "units"), exist_ok=True)
        _write_json(
            os.path.join(partial, RECORDS, "task.json"), {"fingerprint": p.fingerprint, "state": "running"}
        )
        task = wf.task_class(p.name)(self._context(p.name, partial))
        every, results = [], []
        step = "prepare"
        try:
            task.prepare()  # may fill context.extra for the units
            for stage in task.stages():
                # A stage's finish runs again on resumption (idempotent), so the next stage finds
                # what it wrote, whether or not its units ran in this run.
                step = "running the units" + ("" if stage is None else f" of stage {stage!r}")
                records, error = self._run_units(p, task, stage, executors)
                if error is not None:
                    return {"state": "failed", "error": error}
                every += records
                results = [r.get("result") for r in records]
                if stage is not None:
                    step = f"finish_stage({stage!r})"
                    task.finish_stage(stage, results)
            step = "finish"
            summary = task.finish(results)
        except Exception:  # noqa: BLE001  (the driver's own steps fail the task; Ctrl-C cancels it)
            error = (
                f"task {p.name!r}: {step} failed on host {socket.gethostname()}:\n{traceback.format_exc()}"
            )
            log.error("%s", error)
            return {"state": "failed", "error": error}
        stats = _unit_stats(every)
        record = {"fingerprint": p.fingerprint, "state": "complete", "task": wf.spec.tasks[p.name].task,
                  "config": wf.configs[p.name].model_dump(mode="json"), "inputs": task.context.inputs,
                  "units": len(every), "unit_stats": stats, "summary": summary,
                  "finished": time.time()}  # fmt: skip
        _write_json(os.path.join(partial, RECORDS, "task.json"), record)
        os.rename(partial, final)
        # Scratch (e.g. a volume of block-local ids) only after the rename: a kill before it
        # resumes with the scratch that the finishing steps read.
        shutil.rmtree(os.path.join(final, RECORDS, "scratch"), ignore_errors=True)
        return {"state": "complete", "units": len(every), "unit_stats": stats, "summary": summary}

    def _run_units(self, p: TaskPlan, task, stage, executors: dict) -> tuple:
        """The units of one stage of a task (``stage`` None: a task without stages): those not
        recorded yet run, each recorded when it returns. Returns (records in unit order, error)."""
        wf = self.workflow
        context = task.context
        units = task.units() if stage is None else task.stage_units(stage)
        prefix = "" if stage is None else f"{stage}-"
        units_dir = os.path.join(context.out, RECORDS, "units")

        def record_path(i):
            return os.path.join(units_dir, f"{prefix}{i:06d}.json")

        records = {i: r for i in range(len(units)) if (r := _read_json(record_path(i))) is not None}
        todo = [i for i in range(len(units)) if i not in records]
        config = self._executor_config(p.name)
        context.threads = self._unit_threads(config, len(todo))
        executor = self._executor(p.name, executors) if todo else None
        bar = None
        if self.progress and units:
            from tqdm.auto import tqdm

            desc = p.name if stage is None else f"{p.name}: {stage}"
            bar = tqdm(total=len(units), initial=len(records), desc=desc, unit="unit", leave=True)
        attempts = dict.fromkeys(todo, 0)
        name = wf.spec.tasks[p.name].task  # as the workflow names it: workers resolve it the same way
        futures = {executor.submit(run_unit, name, context, i, units[i]): i for i in todo}
        error = None
        try:
            while futures:
                finished, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    i = futures.pop(future)
                    try:
                        info = future.result()
                    except Exception:  # noqa: BLE001  (a worker that died: the unit's failure)
                        info = {"index": i, "unit": units[i], "ok": False, "host": "?",
                                "traceback": traceback.format_exc()}  # fmt: skip
                    if info["ok"]:
                        _write_json(record_path(i), info)
                        records[i] = info
                        if bar:
                            bar.update()
                        continue
                    attempts[i] += 1
                    log.warning(
                        "%s: unit %d failed (attempt %d):\n%s", p.name, i, attempts[i], info["traceback"]
                    )
                    if attempts[i] <= config.retries:
                        futures[executor.submit(run_unit, name, context, i, units[i])] = i
                    elif error is None:
                        error = _failure(
                            p.name, stage, i, units[i], task.unit_box(units[i]), attempts[i], info
                        )
                        for f in futures:
                            f.cancel()
        finally:
            if bar:
                bar.close()
        if error is not None:
            return [], error
        return [records[i] for i in range(len(units))], None


def _sweep_temporary(folder: str) -> None:
    """Removes the temporary files of writes that a killed run left (a store's ``<key>.tmp-<n>-<n>``,
    Python writers' ``*.tmp``): every writer writes to one and renames it, so what is left is garbage."""
    for root, _, files in os.walk(folder):
        for name in files:
            if ".tmp-" in name or name.endswith(".tmp"):
                try:
                    os.remove(os.path.join(root, name))
                except FileNotFoundError:
                    pass


def _failure(task: str, stage, i: int, unit, box, attempts: int, info: dict) -> str:
    where = f"task {task!r}: " + ("" if stage is None else f"stage {stage!r}: ") + f"unit {i} {unit!r}"
    memory = f", peak memory {info['peak_rss_bytes'] / 2**20:.0f} MiB" if "peak_rss_bytes" in info else ""
    return (
        where
        + (f" (box {box})" if box else "")
        + f" failed {attempts} time(s) on host {info.get('host')}"
        + memory
        + f":\n{info['traceback']}"
    )


def _unit_stats(records: list) -> dict:
    import numpy as np

    seconds = np.array([r.get("seconds", 0.0) for r in records])
    memory = np.array([r.get("peak_rss_bytes", 0) for r in records], dtype=np.float64)
    if not len(records):
        return {}
    return {
        "count": len(records),
        "seconds_total": float(seconds.sum()),
        "seconds_median": float(np.median(seconds)),
        "seconds_max": float(seconds.max()),
        "peak_rss_median_bytes": float(np.median(memory)),
        "peak_rss_max_bytes": float(memory.max()),
        "hosts": sorted({str(r.get("host")) for r in records}),
        "seconds": [round(float(s), 4) for s in seconds],
        "peak_rss_bytes": [int(m) for m in memory],
    }
