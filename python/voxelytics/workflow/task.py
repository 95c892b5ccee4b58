"""What a workflow task is: a typed config, named inputs and outputs, and work split into units.

A task runs in three steps. ``prepare`` (in the driving process) creates its outputs' structure
under ``context.out``; ``run_unit`` (in a worker of the executor, any process or host) does one
unit, e.g. one block, and must be idempotent: a unit interrupted and run again writes the same
bytes; ``finish`` (driving process) combines the units' results. Finished units are recorded, so
an interrupted task resumes with the units it lacks. ``context.out`` is ``<work_dir>/<task>.partial``
while the task runs and is renamed to ``<work_dir>/<task>`` when it is complete."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import pydantic

RECORDS = ".voxelytics"  # inside each task folder: task.json, units/, scratch/


class NoConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


@dataclass
class Context:
    """Everything a unit needs, picklable: sent to every worker."""

    task: str  # the task's name in the workflow
    config: Any  # the task class's Config instance
    inputs: dict  # input name -> path (another task's output, or a path of the workflow)
    out: str  # where the task writes: <work_dir>/<task>.partial while it runs
    bounding_box: Optional[list] = None  # [[x, y, z], [w, h, d]] of an explorative run
    threads: int = 1
    extra: dict = field(default_factory=dict)  # what prepare() passes to the units
    outputs: dict = field(default_factory=dict)  # output name -> path inside ``out`` (the class's)

    def output(self, name: str) -> str:
        """Where output ``name`` is written."""
        return os.path.join(self.out, self.outputs[name])

    def scratch(self, name: str) -> str:
        """Where the task keeps ``name`` (a path, its folder created) between its units and
        steps: in ``.voxelytics/scratch``, removed once the task is complete."""
        path = os.path.join(self.out, RECORDS, "scratch", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path


class Task:
    """Base class of workflow tasks. Subclasses set ``name`` (as written in workflow files),
    ``version`` (raise it when the output for a given config changes: old outputs become stale),
    ``Config`` (a pydantic model, extra keys forbidden), ``inputs`` (name -> required) and
    ``outputs`` (name -> path inside the task's folder; the first is what a bare reference to the
    task means)."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    Config: ClassVar[type] = NoConfig
    inputs: ClassVar[dict] = {}
    outputs: ClassVar[dict] = {"output": "output"}
    description: ClassVar[str] = ""

    def __init__(self, context: Context):
        self.context = context
        self.config = context.config

    def prepare(self) -> None:
        """Create the output's structure (called again on resume: keep what is there)."""

    def units(self) -> list:
        """JSON-able descriptions of the units, the same list for the same config and inputs."""
        return [None]

    def stages(self) -> list:
        """Names of the unit stages, run one after another (after prepare): a task whose work has
        global steps between blockwise passes lists them, and gives each stage's units by
        ``stage_units`` and its global step by ``finish_stage``. ``[None]``: one stage, ``units``."""
        return [None]

    def stage_units(self, stage: str) -> list:
        raise NotImplementedError

    def finish_stage(self, stage: str, results: list) -> None:
        """The driver's step after the units of ``stage`` (idempotent: it runs again when an
        interrupted task resumes); what it writes is for the next stage's units."""

    def run_unit(self, unit) -> Optional[dict]:
        raise NotImplementedError

    def finish(self, results: list) -> Optional[dict]:
        """Combine the units' results (in unit order); returns a JSON-able summary."""
        return None

    @staticmethod
    def unit_box(unit) -> Optional[list]:
        """The unit's box ([[x, y, z], [w, h, d]]) for failure reports, when it has one."""
        return unit.get("box") if isinstance(unit, dict) else None


_REGISTRY: dict = {}


def register(cls):
    """Class decorator: make a Task available to workflow files under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def task_class(name: str):
    """The Task class called ``name``: a built-in task, or ``package.module:Class``."""
    from . import tasks  # noqa: F401  (registers the built-in tasks)

    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise KeyError(f"cannot load task class {name!r}: {e}") from None
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise KeyError(f"{name!r} is not a voxelytics.workflow.Task")
        return cls
    raise KeyError(f"unknown task class {name!r}; known: {sorted(_REGISTRY)} (or package.module:Class)")


def known_tasks() -> dict:
    from . import tasks  # noqa: F401

    return dict(_REGISTRY)
