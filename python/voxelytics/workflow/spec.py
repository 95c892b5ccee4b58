"""The workflow file: a YAML document in the shape Voxelytics uses.

```yaml
global_parameters:
  work_dir: out                  # relative to the workflow file
  executor: multiprocessing      # or {strategy: dask, address: ..., processes: 2, retries: 1}
  threads: 2                     # per unit
  bounding_box: [[0, 0, 0], [256, 256, 64]]   # optional: an explorative run on this box
paths: {raw: /data/my_dataset}
tasks:
  predict:
    task: Predict
    config: {model: mouse}
    inputs: {dataset: paths.raw}          # or another task, or <task>.<output>, or a path
    description: boundaries and synapses
    distribution: {strategy: multiprocessing, processes: 2, resources: {memory: 8G}}
```

Everything is checked before anything runs: an unknown key, a wrong type, a dangling input
reference or a cycle raises :class:`WorkflowError` naming the task and the key path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional, Union

import pydantic
import yaml

from .task import task_class


class WorkflowError(ValueError):
    """A workflow file that cannot run: its message names the file, the task and the key path."""


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class ExecutorConfig(_Strict):
    """Where units run. ``sequential``: in this process; ``multiprocessing``: a process pool of
    ``processes`` workers; ``dask``: a Dask distributed cluster (``address`` of a scheduler, or a
    LocalCluster of ``processes`` workers); ``slurm`` / ``pbs`` / ``kubernetes``: cluster_tools."""

    strategy: Literal["sequential", "multiprocessing", "dask", "slurm", "pbs", "kubernetes"] = (
        "multiprocessing"
    )
    processes: Optional[int] = pydantic.Field(default=None, ge=1)
    address: Optional[str] = None
    resources: Dict[str, Union[str, int, float]] = {}
    retries: int = pydantic.Field(default=1, ge=0)


class GlobalParameters(_Strict):
    work_dir: str = "voxelytics_run"
    executor: Union[
        ExecutorConfig, Literal["sequential", "multiprocessing", "dask", "slurm", "pbs", "kubernetes"]
    ] = "multiprocessing"
    threads: int = pydantic.Field(default=1, ge=1)
    bounding_box: Optional[List[List[int]]] = None  # [[x, y, z], [width, height, depth]] in mag-1 voxels
    webknossos_url: Optional[str] = None

    @pydantic.field_validator("bounding_box")
    @classmethod
    def _box(cls, value):
        if value is not None and (len(value) != 2 or any(len(v) != 3 for v in value) or min(value[1]) < 1):
            raise ValueError("bounding_box must be [[x, y, z], [width, height, depth]] with sizes >= 1")
        return value

    def executor_config(self) -> ExecutorConfig:
        e = self.executor
        return ExecutorConfig(strategy=e) if isinstance(e, str) else e


class TaskSpec(_Strict):
    task: str
    config: Dict[str, Any] = {}
    inputs: Dict[str, str] = {}
    description: str = ""
    distribution: Optional[ExecutorConfig] = None


class WorkflowSpec(_Strict):
    global_parameters: GlobalParameters = GlobalParameters()
    paths: Dict[str, str] = {}
    tasks: Dict[str, TaskSpec]


@dataclass(frozen=True)
class Reference:
    """An input: the output ``output`` of task ``task`` (``output`` None: its main output), or a path."""

    task: Optional[str] = None
    output: Optional[str] = None
    path: Optional[str] = None


@dataclass
class Workflow:
    """A checked workflow: typed configs, resolved inputs, tasks in dependency order."""

    source: str  # the file, or "<string>"
    text: str  # the YAML as given
    spec: WorkflowSpec
    configs: dict  # task name -> its Task class's Config instance
    inputs: dict  # task name -> {input name: Reference}
    order: list  # task names, each after the tasks it reads

    @property
    def work_dir(self) -> str:
        return self.spec.global_parameters.work_dir

    def task_class(self, name: str):
        return task_class(self.spec.tasks[name].task)

    def dependencies(self, name: str) -> list:
        return sorted({r.task for r in self.inputs[name].values() if r.task is not None})

    def dependants(self, name: str) -> set:
        """Every task that reads ``name``, directly or through others."""
        out, frontier = set(), {name}
        while frontier:
            frontier = {t for t in self.order if set(self.dependencies(t)) & frontier} - out
            out |= frontier
        return out


def _where(loc) -> str:
    return ".".join(str(p) for p in loc)


def _pydantic_error(source: str, prefix: str, error: pydantic.ValidationError) -> WorkflowError:
    lines = []
    for e in error.errors():
        path = ".".join(p for p in (prefix, _where(e["loc"])) if p)
        message = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{source}: {path}: {message}")
    return WorkflowError("\n".join(lines))


def load_workflow(path_or_text, *, base_dir: Optional[str] = None) -> Workflow:
    """Read and check a workflow from a file path or a YAML string. Relative ``work_dir`` and
    ``paths`` are taken relative to the file's folder (or ``base_dir``, default the current one)."""
    if isinstance(path_or_text, os.PathLike) or (isinstance(path_or_text, str) and "\n" not in path_or_text):
        source = os.fspath(path_or_text)
        if not os.path.exists(source):
            raise FileNotFoundError(f"workflow file {source} does not exist")
        with open(source) as f:
            text = f.read()
        base_dir = base_dir or os.path.dirname(os.path.abspath(source))
    else:
        source, text = "<string>", path_or_text
    base_dir = os.path.abspath(base_dir or os.getcwd())
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise WorkflowError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise WorkflowError(f"{source}: a workflow is a mapping with global_parameters, paths and tasks")
    try:
        spec = WorkflowSpec.model_validate(raw)
    except pydantic.ValidationError as e:
        raise _pydantic_error(source, "", e) from None
    if not spec.tasks:
        raise WorkflowError(f"{source}: tasks: a workflow needs at least one task")

    g = spec.global_parameters
    g.work_dir = os.path.normpath(os.path.join(base_dir, os.path.expanduser(g.work_dir)))
    spec.paths = {
        k: os.path.normpath(os.path.join(base_dir, os.path.expanduser(v))) for k, v in spec.paths.items()
    }

    configs, inputs = {}, {}
    for name, t in spec.tasks.items():
        where = f"tasks.{name}"
        if name.startswith(".") or "/" in name or "." in name:
            raise WorkflowError(f"{source}: {where}: a task name may not contain '.' or '/'")
        try:
            cls = task_class(t.task)
        except KeyError as e:
            raise WorkflowError(f"{source}: {where}.task: {e.args[0]}") from None
        try:
            configs[name] = cls.Config.model_validate(t.config)
        except pydantic.ValidationError as e:
            raise _pydantic_error(source, f"{where}.config", e) from None
        inputs[name] = {}
        for key, value in t.inputs.items():
            if key not in cls.inputs:
                raise WorkflowError(
                    f"{source}: {where}.inputs.{key}: unknown input of {t.task}; "
                    f"it takes {sorted(cls.inputs)}"
                )
            inputs[name][key] = _reference(source, f"{where}.inputs.{key}", value, spec, base_dir)
        missing = sorted(k for k, required in cls.inputs.items() if required and k not in t.inputs)
        if missing:
            raise WorkflowError(f"{source}: {where}.inputs: {t.task} needs input(s) {missing}")
    order = _topological(source, spec, inputs)
    return Workflow(source, text, spec, configs, inputs, order)


def _reference(source, where, value: str, spec: WorkflowSpec, base_dir: str) -> Reference:
    head, _, rest = value.partition(".")
    if head in spec.tasks:
        if rest:
            outputs = task_class(spec.tasks[head].task).outputs
            if rest not in outputs:
                raise WorkflowError(
                    f"{source}: {where}: task {head!r} has no output {rest!r}; "
                    f"its outputs are {list(outputs)}"
                )
        return Reference(task=head, output=rest or None)
    if head == "paths":
        if rest not in spec.paths:
            raise WorkflowError(
                f"{source}: {where}: {value!r}: no such entry in paths ({sorted(spec.paths)})"
            )
        return Reference(path=spec.paths[rest])
    if "/" in value or value.startswith("~"):
        return Reference(path=os.path.normpath(os.path.join(base_dir, os.path.expanduser(value))))
    raise WorkflowError(
        f"{source}: {where}: {value!r} is neither a task ({sorted(spec.tasks)}), paths.<name>, nor a path "
        "(a path contains '/')"
    )


def _topological(source, spec: WorkflowSpec, inputs) -> list:
    deps = {name: {r.task for r in refs.values() if r.task is not None} for name, refs in inputs.items()}
    order, state = [], {}

    def visit(name, chain):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = chain[chain.index(name) :] + [name]
            raise WorkflowError(f"{source}: tasks.{name}.inputs: a cycle: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for d in sorted(deps[name]):
            visit(d, chain + [name])
        state[name] = "done"
        order.append(name)

    for name in spec.tasks:  # file order where dependencies allow
        visit(name, [])
    return order
