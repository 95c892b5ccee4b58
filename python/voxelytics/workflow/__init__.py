"""Workflows: declarative YAML pipelines of tasks, resumable and reused, run through local
processes, Dask or a cluster scheduler (see ``docs/architecture.md``, section Workflows).

>>> from voxelytics import workflow
>>> wf = workflow.load_workflow("demo.yaml")            # doctest: +SKIP
>>> workflow.Runner(wf).run(until="segment")           # doctest: +SKIP
"""

from .engine import Runner, RunResult, WorkflowFailed, fingerprints, plan
from .spec import Workflow, WorkflowError, load_workflow
from .task import Context, Task, known_tasks, register, task_class

__all__ = [
    "Context",
    "RunResult",
    "Runner",
    "Task",
    "Workflow",
    "WorkflowError",
    "WorkflowFailed",
    "fingerprints",
    "known_tasks",
    "load_workflow",
    "plan",
    "register",
    "task_class",
]
