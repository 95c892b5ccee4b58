"""The ``voxelytics`` command: run workflows, see their state, rebuild reports, serve datasets,
and the demo. ``voxelytics COMMAND --help`` documents each command."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _load(path):
    from .workflow import load_workflow

    return load_workflow(path)


def _print_plan(plans) -> None:
    width = max(len(p.name) for p in plans)
    for p in plans:
        print(f"  {p.name:<{width}}  {p.state:<9} -> {p.action:<7} {p.reason}")


def cmd_run(args) -> int:
    from .workflow import Runner, WorkflowFailed, plan
    from .workflow.report import write_report
    from .workflow.spec import ExecutorConfig

    wf = _load(args.workflow)
    if args.executor:
        g = wf.spec.global_parameters
        g.executor = ExecutorConfig(strategy=args.executor, processes=args.processes, address=args.address)
        for t in wf.spec.tasks.values():
            t.distribution = None
    if args.threads:
        wf.spec.global_parameters.threads = args.threads
    plans = plan(wf, until=args.until, only=args.only, force=args.force or ())
    if args.dry_run:
        print(f"{wf.source}: what a run would do (state -> action, why):")
        _print_plan(plans)
        return 0
    runner = Runner(wf, progress=not args.no_progress)
    try:
        result = runner.run(until=args.until, only=args.only, force=args.force or ())
    except KeyboardInterrupt:
        print("\ninterrupted: the same command resumes where this run stopped", file=sys.stderr)
        return 130
    except WorkflowFailed as e:
        print(f"failed: {e}", file=sys.stderr)
        return 1
    finally:
        run_dir = getattr(runner, "run_dir", None)
        if run_dir and not args.no_report:
            try:
                report = write_report(run_dir, wf)
                print(f"report: {report}", file=sys.stderr)
            except Exception as e:  # noqa: BLE001  (a report that cannot be built must not hide the run's outcome)
                print(f"report not written: {e!r}", file=sys.stderr)
    for name, t in result.tasks.items():
        print(f"  {name:<16} {t['state']:<9} {t.get('seconds', 0):7.1f} s")
    return 0


def cmd_status(args) -> int:
    from .workflow import plan

    wf = _load(args.workflow)
    print(f"{wf.source} (work folder {wf.work_dir}):")
    _print_plan(plan(wf))
    return 0


def cmd_report(args) -> int:
    from .workflow.engine import RECORDS
    from .workflow.report import write_report

    run_dir = args.run
    runs = os.path.join(run_dir, RECORDS, "runs")
    if os.path.isdir(runs):  # a work folder: its latest run
        names = sorted(os.listdir(runs))
        if not names:
            print(f"{run_dir}: no runs recorded", file=sys.stderr)
            return 1
        run_dir = os.path.join(runs, names[-1])
    print(write_report(run_dir))
    return 0


def cmd_serve(args) -> int:
    from .workflow.serve import serve

    serve(args.dir, args.port, args.host)
    return 0


def cmd_demo(args) -> int:
    from .workflow.demo import run_demo

    return run_demo(args.dir, shape=args.shape, executor=args.executor, progress=not args.no_progress)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voxelytics", description=__doc__)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="log every task step to the console")
    sub = p.add_subparsers(dest="command")

    r = sub.add_parser("run", help="run a workflow (resumes and reuses what earlier runs finished)")
    r.add_argument("workflow", help="the workflow YAML file")
    r.add_argument("--until", metavar="TASK", help="run TASK and what it needs, nothing after it")
    r.add_argument(
        "--only", metavar="TASK", nargs="+", help="run only these tasks (their inputs must be complete)"
    )
    r.add_argument("--force", metavar="TASK", nargs="+", help="rerun these tasks (and what reads them)")
    r.add_argument("--dry-run", action="store_true", help="print what would run, what is reused and why")
    strategies = ["sequential", "multiprocessing", "dask", "slurm", "pbs", "kubernetes"]
    r.add_argument("--executor", choices=strategies,
                   help="override the workflow's executor")  # fmt: skip
    r.add_argument("--processes", type=int, help="workers of the multiprocessing / dask executor")
    r.add_argument("--address", help="a Dask scheduler's address (dask executor)")
    r.add_argument("--threads", type=int, help="threads per unit")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("status", help="each task's state: complete, stale, pending (partly done)")
    s.add_argument("workflow")
    s.set_defaults(func=cmd_status)

    rep = sub.add_parser(
        "report", help="rebuild the HTML report of a run (a run folder, or a work folder's latest)"
    )
    rep.add_argument("run")
    rep.set_defaults(func=cmd_report)

    sv = sub.add_parser("serve", help="serve a folder of datasets over HTTP with CORS (for Neuroglancer)")
    sv.add_argument("dir")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--host", default="127.0.0.1")
    sv.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="synthetic mouse EM -> the whole pipeline -> metrics, report, connectome")
    d.add_argument(
        "dir", nargs="?", default="voxelytics_demo", help="where it works (default ./voxelytics_demo)"
    )
    d.add_argument("--shape", type=int, nargs=3, default=(256, 256, 256), metavar=("X", "Y", "Z"))
    d.add_argument("--executor", default="multiprocessing", choices=["sequential", "multiprocessing", "dask"])
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if not args.command:
        parser().print_help()
        return 2
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # the console; run.log gets everything
        handler.setLevel(logging.INFO if args.verbose else logging.WARNING)
    from .workflow import WorkflowError

    try:
        return args.func(args)
    except (WorkflowError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
