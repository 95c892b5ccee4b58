"""Workflows: checking, running, reuse, resumption after kill -9, executors, reports, CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import voxelytics as vx
from voxelytics import workflow
from voxelytics.workflow.demo import demo_workflow
from voxelytics.workflow.spec import WorkflowError
from voxelytics.workflow.tasks.somata import load_state

ROOT = Path(__file__).resolve().parents[2]

# synthetic EM with its perfect boundary map -> neurons: fast, and every unit writes shards and metadata
SMALL = """
global_parameters: {{work_dir: {work_dir}, executor: {executor}, threads: 1}}
tasks:
  synthetic:
    task: SyntheticDataset
    config: {{shape: [64, 64, 64], preset: mouse, seed: 3, block: [32, 32, 32], boundaries: true}}
  segment:
    task: SegmentNeurons
    config: {{layer: boundaries, thresholds: [0.3, 0.6], apply: 0.6, block: [32, 32, 32]}}
    inputs: {{dataset: synthetic}}
  evaluate:
    task: Evaluate
    inputs: {{truth: synthetic, segmentation: segment}}
"""


def small(tmp_path, name="run", executor="sequential", **replace) -> workflow.Workflow:
    text = SMALL.format(work_dir=tmp_path / name, executor=executor)
    for old, new in replace.items():
        text = text.replace(old, new)
    return workflow.load_workflow(text)


def tree(folder) -> dict:
    """Relative path -> bytes of every output file (run records and lock files left out)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in (".voxelytics", ".voxelytics-locks")]
        for f in files:
            path = os.path.join(root, f)
            out[os.path.relpath(path, folder)] = Path(path).read_bytes()
    return out


# -- checking before anything runs -------------------------------------------------------------


SEG = "segment:\n    task: SegmentNeurons\n    "
BAD = [
    (SEG + "config: {nope: 1}", "tasks.segment.config.nope: unknown key"),
    (SEG + "config: {apply: high}", "tasks.segment.config.apply: Input should be"),
    (SEG + "inputs: {dataset: nothing}", "tasks.segment.inputs.dataset: 'nothing'"),
    (SEG + "inputs: {dataset: synthetic.foo}", "has no output 'foo'"),
    (SEG + "inputs: {dataset: paths.raw}", "no such entry in paths"),
    ("segment:\n    task: SegmentNeurons", "tasks.segment.inputs: SegmentNeurons needs input(s) ['dataset']"),
    (SEG + "inputs: {dataset: synthetic, extra: synthetic}", "tasks.segment.inputs.extra: unknown input"),
    ("segment:\n    task: Segmnt", "tasks.segment.task: unknown task class 'Segmnt'"),
    (SEG + "inputs: {dataset: segment2}\n  segment2:\n    task: SegmentNeurons\n"
     "    inputs: {dataset: segment}", "a cycle: segment -> segment2 -> segment"),
    (SEG + "inputs: {dataset: synthetic}\n    distribution: {strategy: magic}",
     "tasks.segment.distribution.strategy"),
]  # fmt: skip


@pytest.mark.parametrize(("task", "message"), BAD)
def test_bad_workflows_are_reported_with_task_and_key_path(task, message):
    text = "tasks:\n  synthetic:\n    task: SyntheticDataset\n  " + task + "\n"
    with pytest.raises(WorkflowError) as e:
        workflow.load_workflow(text)
    assert message in str(e.value)


def test_bad_global_parameters_and_files(tmp_path):
    with pytest.raises(WorkflowError, match="global_parameters.wrok_dir: unknown key"):
        workflow.load_workflow("global_parameters: {wrok_dir: x}\ntasks: {a: {task: SyntheticDataset}}\n")
    with pytest.raises(WorkflowError, match="global_parameters.threads: Input should be greater"):
        workflow.load_workflow("global_parameters: {threads: 0}\ntasks: {a: {task: SyntheticDataset}}\n")
    with pytest.raises(WorkflowError, match="not valid YAML"):
        workflow.load_workflow("tasks: {a: [\n")
    with pytest.raises(WorkflowError, match="at least one task"):
        workflow.load_workflow("tasks: {}\n")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        workflow.load_workflow(tmp_path / "missing.yaml")
    (tmp_path / "wf.yaml").write_text("tasks:\n  a: {task: SyntheticDataset, config: {shape: [1, 2]}}\n")
    with pytest.raises(
        WorkflowError, match=r"wf.yaml: tasks.a.config.shape: Value error, must be 3 positive"
    ):
        workflow.load_workflow(tmp_path / "wf.yaml")


def test_dependency_order_and_dependants(tmp_path):
    wf = small(tmp_path)
    assert wf.order == ["synthetic", "segment", "evaluate"]
    assert wf.dependants("synthetic") == {"segment", "evaluate"}
    assert wf.dependants("segment") == {"evaluate"}


# -- running, reuse, config changes --------------------------------------------------------------


def test_run_reuse_and_config_change(tmp_path):
    wf = small(tmp_path)
    result = workflow.Runner(wf, progress=False).run()
    assert {n: t["state"] for n, t in result.tasks.items()} == dict.fromkeys(wf.order, "complete")
    assert result.tasks["synthetic"]["units"] == 8
    metrics = json.loads((tmp_path / "run" / "evaluate" / "metrics.json").read_text())
    assert [s["threshold"] for s in metrics["agglomeration_states"]] == [0.3, 0.6]
    # from a perfect boundary map: few mergers; the higher threshold merges split pieces back
    low, high = metrics["agglomeration_states"]
    assert high["voi_merge"] < 0.3 and high["voi_split"] < low["voi_split"] and metrics["best_state"] == 0.6
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "run").iterdir())

    again = workflow.Runner(wf, progress=False).run()
    assert {n: t["state"] for n, t in again.tasks.items()} == dict.fromkeys(wf.order, "skipped")

    before = tree(tmp_path / "run" / "synthetic")
    changed = small(tmp_path, **{"apply: 0.6": "apply: 0.3"})
    assert [(p.name, p.action) for p in workflow.plan(changed)] == [
        ("synthetic", "reuse"), ("segment", "run"), ("evaluate", "run")]  # fmt: skip
    assert workflow.plan(changed)[1].state == "stale"
    result = workflow.Runner(changed, progress=False).run()
    assert [result.state(n) for n in changed.order] == ["skipped", "complete", "complete"]
    assert tree(tmp_path / "run" / "synthetic") == before


def test_blockwise_segmentation_equals_segment_neurons(tmp_path):
    """SegmentNeurons' stages (pieces, fragments, graph, segmentation) give what segment_neurons
    gives on the whole layer, with another block shape there."""
    wf = small(tmp_path, **{"block: [32, 32, 32]}\n    inputs: {dataset: synthetic}": "block: [32, 32, 16]}\n"
                            "    inputs: {dataset: synthetic}"})  # fmt: skip
    result = workflow.Runner(wf, progress=False).run(until="segment")
    assert result.tasks["segment"]["units"] == 4 * 2 * 2 * 4  # 4 stages of 16 blocks
    ours = vx.Dataset.open(tmp_path / "run" / "segment" / "dataset")
    theirs_path = tmp_path / "whole"
    theirs = vx.segment_neurons(tmp_path / "run" / "synthetic" / "dataset", "boundaries", theirs_path,
                                thresholds=[0.3, 0.6], apply=1, block_shape=(64, 64, 64))  # fmt: skip
    for name in ("fragments", "segmentation"):
        a = ours.get_layer(name).get_mag(1).read()
        b = vx.Dataset.open(theirs_path).get_layer(name).get_mag(1).read()
        assert a.max() > 10 and np.array_equal(a, b), name
    mine = vx.neurons.load_agglomeration(tmp_path / "run" / "segment" / "dataset")
    for key in ("nodes", "segments", "merges", "scores"):
        assert np.array_equal(getattr(mine, key), getattr(theirs, key)), key
    assert sorted(a["name"] for a in ours.get_layer("fragments").attachments) == [
        "agglomerate_view_30", "agglomerate_view_60"]  # fmt: skip
    records = tmp_path / "run" / "segment" / ".voxelytics"
    assert (
        len(list((records / "units").iterdir())) == 64 and not (records / "scratch").exists()
    )  # pieces gone


STEPS = """
  fragments:
    task: Fragments
    config: {block: [32, 32, 16]}
    inputs: {dataset: synthetic}
  graph:
    task: RegionGraph
    config: {block: [16, 32, 32]}
    inputs: {fragments: fragments, dataset: synthetic}
  segment:
    task: Agglomerate
    config: {thresholds: [0.3, 0.6], apply: 0.6, block: [32, 32, 32]}
    inputs: {graph: graph, fragments: fragments}
"""


def test_fragments_region_graph_agglomerate_equal_segment_neurons(tmp_path):
    """The three tasks, each with its own block shape, give SegmentNeurons' output; the
    agglomerate's fragments are a link, not a copy; new thresholds rerun Agglomerate only."""
    whole = small(tmp_path, name="whole")
    workflow.Runner(whole, progress=False).run()
    start = SMALL.index("  segment:")
    steps = SMALL[:start] + STEPS.replace("{", "{{").replace("}", "}}") + SMALL[SMALL.index("  evaluate:") :]
    wf = workflow.load_workflow(steps.format(work_dir=tmp_path / "steps", executor="multiprocessing"))
    result = workflow.Runner(wf, progress=False).run()
    assert [result.state(n) for n in wf.order] == ["complete"] * 5
    assert result.tasks["fragments"]["units"] == 2 * 16 and result.tasks["graph"]["units"] == 16
    ours = vx.Dataset.open(tmp_path / "steps" / "segment" / "dataset")
    theirs = vx.Dataset.open(tmp_path / "whole" / "segment" / "dataset")
    for name in ("fragments", "segmentation"):
        a, b = ours.get_layer(name).get_mag(1).read(), theirs.get_layer(name).get_mag(1).read()
        assert a.max() > 10 and np.array_equal(a, b), name
        assert ours.get_layer(name).largest_segment_id == theirs.get_layer(name).largest_segment_id
    assert os.path.islink(tmp_path / "steps" / "segment" / "dataset" / "fragments" / "1")
    for file in ("agglomeration.npz", "state.json", "fragment_positions.npz"):
        assert (Path(ours.path) / file).read_bytes() == (Path(theirs.path) / file).read_bytes(), file
    views = ["agglomerate_view_30", "agglomerate_view_60"]
    for dataset in (ours, theirs):
        assert sorted(a["name"] for a in dataset.get_layer("fragments").attachments) == views
    for view in views:
        a, b = (
            vx.read_agglomerates(Path(d.path) / "fragments" / "agglomerates" / view) for d in (ours, theirs)
        )
        assert a["segment_to_agglomerate"].size > 10 and all(np.array_equal(a[k], b[k]) for k in a), view
    scores = json.loads((tmp_path / "steps" / "evaluate" / "metrics.json").read_text())
    assert scores == json.loads((tmp_path / "whole" / "evaluate" / "metrics.json").read_text())

    changed = workflow.load_workflow(
        steps.format(work_dir=tmp_path / "steps", executor="sequential").replace(
            "[0.3, 0.6]", "[0.3, 0.5, 0.6]"
        )
    )
    again = workflow.Runner(changed, progress=False).run()
    assert [again.state(n) for n in changed.order] == [
        "skipped",
        "skipped",
        "skipped",
        "complete",
        "complete",
    ]
    assert len(vx.neurons.load_agglomeration(tmp_path / "steps" / "segment" / "dataset").thresholds) == 3


def test_neuron_tasks_on_affinities_equal_segment_neurons(tmp_path):
    """On affinities (fragments one unit, size merging included) the three tasks give
    SegmentNeurons' one-unit output too."""
    labels = vx.synthetic.voronoi_labels((48, 40, 32), 30, seed=1)
    affinities = np.zeros((3, *labels.shape), np.float32, order="F")
    for c in range(3):  # channel c at v: v and v - e_c in one cell, plus noise
        upper = tuple(slice(1, None) if a == c else slice(None) for a in range(3))
        lower = tuple(slice(None, -1) if a == c else slice(None) for a in range(3))
        affinities[(c, *upper)] = (labels[upper] == labels[lower]) & (labels[upper] > 0)
    noise = np.random.default_rng(0).random(affinities.shape, dtype=np.float32)
    ds = vx.Dataset.create(tmp_path / "source", (8, 8, 8))
    ds.add_layer("affinities", "color", np.float32, 3).add_mag(1).write(
        np.asfortranarray(0.8 * affinities + 0.2 * noise)
    )
    agglomerate = "thresholds: [0.3, 0.6], apply: 0.6"
    source = "dataset: paths.source"
    text = f"""
global_parameters: {{work_dir: {tmp_path / "run"}, executor: sequential}}
paths: {{source: {tmp_path / "source"}}}
tasks:
  whole:
    task: SegmentNeurons
    config: {{layer: affinities, {agglomerate}, block: [16, 16, 16]}}
    inputs: {{{source}}}
  fragments: {{task: Fragments, config: {{layer: affinities, block: [16, 16, 16]}}, inputs: {{{source}}}}}
  graph:
    task: RegionGraph
    config: {{layer: affinities, block: [32, 16, 16]}}
    inputs: {{fragments: fragments, {source}}}
  segment: {{task: Agglomerate, config: {{{agglomerate}}}, inputs: {{graph: graph, fragments: fragments}}}}
"""
    workflow.Runner(workflow.load_workflow(text), progress=False).run()
    ours, theirs = (vx.Dataset.open(tmp_path / "run" / t / "dataset") for t in ("segment", "whole"))
    for name in ("fragments", "segmentation"):
        a, b = ours.get_layer(name).get_mag(1).read(), theirs.get_layer(name).get_mag(1).read()
        assert a.max() > 100 and np.array_equal(a, b), name
    a, b = (vx.neurons.load_agglomeration(d.path) for d in (ours, theirs))
    assert len(a.merges) > 100 and all(
        np.array_equal(getattr(a, k), getattr(b, k)) for k in ("nodes", "segments", "merges", "scores")
    )


def test_until_only_force(tmp_path):
    wf = small(tmp_path)
    result = workflow.Runner(wf, progress=False).run(until="segment")
    assert [result.state(n) for n in wf.order] == ["complete", "complete", "pending"]
    assert not (tmp_path / "run" / "evaluate").exists()
    result = workflow.Runner(wf, progress=False).run(only=["evaluate"])
    assert [result.state(n) for n in wf.order] == ["complete", "complete", "complete"]
    plans = workflow.plan(wf, force=["segment"])
    assert [p.action for p in plans] == ["reuse", "run", "run"]
    assert plans[1].reason == "forced" and plans[2].reason == "an input task is forced"
    with pytest.raises(WorkflowError, match="no task 'nope'"):
        workflow.plan(wf, until="nope")
    fresh = small(tmp_path, "fresh")
    with pytest.raises(WorkflowError, match="task 'synthetic' is not complete"):
        workflow.plan(fresh, only=["evaluate"])


def test_ctrl_c_cancels_then_the_same_command_resumes(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(SMALL.format(work_dir=tmp_path / "run", executor="sequential"))
    command = [sys.executable, "-m", "voxelytics", "run", str(path), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((tmp_path / "run" / "synthetic.partial" / ".voxelytics" / "units").glob("*.json")):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "resumes where this run stopped" in stderr
    run = json.loads(next((tmp_path / "run" / ".voxelytics" / "runs").glob("*/run.json")).read_text())
    assert run["tasks"]["synthetic"]["state"] == "cancelled" and run["tasks"]["segment"]["state"] == "pending"
    assert (tmp_path / "run" / "report.html").exists()  # a report of the cut run too
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    assert tree(tmp_path / "run")["evaluate/metrics.json"]


def test_downsample_adds_mags(tmp_path):
    text = SMALL.format(work_dir=tmp_path / "run", executor="sequential") + (
        "  pyramid:\n    task: Downsample\n    config: {layers: [color, cells], max_mag: 2}\n"
        "    inputs: {dataset: synthetic}\n"
    )
    workflow.Runner(workflow.load_workflow(text), progress=False).run(until="synthetic")
    before = tree(tmp_path / "run" / "synthetic")
    result = workflow.Runner(workflow.load_workflow(text), progress=False).run(until="pyramid")
    assert result.tasks["pyramid"]["summary"] == {"color": [[2, 2, 1]], "cells": [[2, 2, 1]]}
    ds = vx.Dataset.open(tmp_path / "run" / "pyramid" / "dataset")
    cells = ds.get_layer("cells")
    assert (2, 2, 1) in cells.mags and ds.get_layer("color").get_mag("2-2-1").read().shape == (1, 32, 32, 64)
    assert set(ds.layers) == set(vx.Dataset.open(tmp_path / "run" / "synthetic" / "dataset").layers)
    assert ds.get_layer("boundaries").mags == [(1, 1, 1)]  # linked, not downsampled
    assert tree(tmp_path / "run" / "synthetic") == before  # the input is never written
    # a pyramid of the pyramid: the mags there are kept (never rewritten through their links)
    more = text + "  more:\n    task: Downsample\n    config: {layers: [cells], max_mag: 4}\n"
    more += "    inputs: {dataset: pyramid}\n"
    result = workflow.Runner(workflow.load_workflow(more), progress=False).run()
    assert result.tasks["more"]["summary"] == {"cells": [[4, 4, 2]]}
    assert tree(tmp_path / "run" / "synthetic") == before
    assert os.path.islink(tmp_path / "run" / "more" / "dataset" / "cells" / "2-2-1")


class Failing(workflow.Task):
    """Fails on its second unit every time."""

    name = ""
    inputs = {}

    def units(self):
        return [{"box": [[0, 0, 0], [8, 8, 8]]}, {"box": [[8, 0, 0], [8, 8, 8]]}]

    def run_unit(self, unit):
        if unit["box"][0][0] == 8:
            raise RuntimeError("this block is broken")
        return {"ok": 1}


def test_failed_unit_is_retried_then_reported(tmp_path):
    text = f"""
global_parameters: {{work_dir: {tmp_path / "run"}, executor: {{strategy: sequential, retries: 2}}}}
tasks:
  broken: {{task: "test_workflow:Failing"}}
"""
    wf = workflow.load_workflow(text)
    runner = workflow.Runner(wf, progress=False)
    with pytest.raises(workflow.WorkflowFailed) as e:
        runner.run()
    message = str(e.value)
    assert "task 'broken': unit 1" in message and "box [[8, 0, 0], [8, 8, 8]]" in message
    assert "failed 3 time(s) on host" in message and "peak memory" in message
    assert "RuntimeError: this block is broken" in message
    run = json.loads((Path(runner.run_dir) / "run.json").read_text())
    assert run["tasks"]["broken"]["state"] == "failed"
    assert (tmp_path / "run" / "broken.partial" / ".voxelytics" / "units" / "000000.json").exists()
    assert not (tmp_path / "run" / "broken").exists()


class FailingFinish(workflow.Task):
    """Its units succeed; combining them fails."""

    name = ""
    inputs = {}

    def run_unit(self, unit):
        return {"ok": 1}

    def finish(self, results):
        raise ValueError("cannot combine these")


def test_a_failing_finish_fails_the_task(tmp_path):
    text = f"""
global_parameters: {{work_dir: {tmp_path / "run"}, executor: sequential}}
tasks:
  combine: {{task: "test_workflow:FailingFinish"}}
"""
    runner = workflow.Runner(workflow.load_workflow(text), progress=False)
    with pytest.raises(workflow.WorkflowFailed) as e:
        runner.run()
    assert "task 'combine': finish failed on host" in str(e.value)
    assert "ValueError: cannot combine these" in str(e.value)
    run = json.loads((Path(runner.run_dir) / "run.json").read_text())
    assert run["tasks"]["combine"]["state"] == "failed"  # not "cancelled": nobody interrupted it
    assert not (tmp_path / "run" / "combine").exists()


# -- kill -9 and resume ------------------------------------------------------------------------


def _run_child(text):
    os.setpgid(0, 0)
    workflow.Runner(workflow.load_workflow(text), progress=False).run()


def test_kill_and_resume_gives_identical_output(tmp_path):
    fork = multiprocessing.get_context("fork")
    child = fork.Process(
        target=_run_child, args=(SMALL.format(work_dir=tmp_path / "reference", executor="sequential"),)
    )
    start = time.perf_counter()
    child.start()
    child.join()
    duration = time.perf_counter() - start  # of a whole run in a child, as the trials' are
    expected = tree(tmp_path / "reference")
    assert child.exitcode == 0 and len(expected) > 20
    rng = random.Random(0)
    interrupted, cut_in, torn = 0, set(), 0
    for trial in range(20):
        name = f"trial{trial}"
        text = SMALL.format(work_dir=tmp_path / name, executor="sequential")
        for _ in range(2):  # killed twice, at random points, then run to the end
            child = fork.Process(target=_run_child, args=(text,))
            child.start()
            if trial < 10:  # anywhere in the run
                child.join(rng.uniform(0.0, duration))
            else:  # inside the segmentation's writes of fragments, shards, metadata and attachments
                while child.is_alive() and not (tmp_path / name / "segment.partial").exists():
                    time.sleep(0.002)
                child.join(rng.uniform(0.0, 0.2))
            if child.is_alive():
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                    interrupted += 1
                except ProcessLookupError:  # it finished between the two calls
                    pass
            child.join()
            cut_in |= {p.name for p in (tmp_path / name).glob("*.partial")}
        left = [p for p in (tmp_path / name).rglob("*") if ".tmp" in p.name]  # writes the kills cut
        torn += bool(left)
        workflow.Runner(workflow.load_workflow(text), progress=False).run()
        assert tree(tmp_path / name) == expected, f"trial {trial}"
    assert interrupted >= 20  # kills that cut a run (not all do: resumed runs are short)
    assert {"synthetic.partial", "segment.partial"} <= cut_in  # inside both tasks' writes
    print(f"{interrupted} kills cut a run; {torn} trials left files of cut writes, swept on resumption")


# -- executors ---------------------------------------------------------------------------------


def test_multiprocessing_and_dask_give_identical_output(tmp_path):
    pytest.importorskip("distributed")
    outputs = {}
    for executor in (
        "sequential",
        "{strategy: multiprocessing, processes: 2}",
        "{strategy: dask, processes: 2}",
    ):
        name = executor.split(",")[0].split()[-1]
        wf = small(tmp_path, name, executor)
        result = workflow.Runner(wf, progress=False).run()
        assert all(t["state"] == "complete" for t in result.tasks.values())
        outputs[name] = tree(tmp_path / name)
        if name != "sequential":
            hosts = result.tasks["synthetic"]["unit_stats"]
            assert hosts["count"] == 8
    assert outputs["multiprocessing"] == outputs["sequential"]
    assert outputs["dask"] == outputs["sequential"]


def test_dask_workers_keep_glibcs_adaptive_malloc_thresholds():
    """Dask sets MALLOC_TRIM_THRESHOLD_ in its workers (large arrays then page-fault anew each
    time); the LocalCluster the dask executor starts leaves it out, and the user's setting of
    Dask's other worker variables stands."""
    pytest.importorskip("distributed")
    import dask

    from voxelytics.workflow.executors import DaskExecutor

    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")
    executor = DaskExecutor(processes=1)
    try:
        env = executor.client.run(
            lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MKL_NUM_THREADS")}
        )
        assert list(env.values()) == [{"MALLOC_TRIM_THRESHOLD_": None, "MKL_NUM_THREADS": "1"}]
        assert executor.submit(sum, [1, 2]).result() == 3
    finally:
        executor.shutdown()
    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")  # restored


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A real single-node SLURM started for these tests, skipped with the reason where it cannot."""
    pytest.importorskip("cluster_tools", reason="cluster_tools is not installed")
    from single_node_slurm import Cluster, Unavailable

    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        env = cluster.start()
    except Unavailable as e:
        cluster.stop()
        pytest.skip(str(e))
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = env["SLURM_CONF"]
    yield env
    if before is None:
        del os.environ["SLURM_CONF"]
    else:
        os.environ["SLURM_CONF"] = before
    cluster.stop()


def test_slurm_executor_gives_identical_output(tmp_path, slurm, monkeypatch):
    monkeypatch.chdir(tmp_path)  # cluster_tools keeps its job files in the working folder
    sequential = small(tmp_path, "sequential")
    workflow.Runner(sequential, progress=False).run()
    wf = small(tmp_path, "slurm", "{strategy: slurm, resources: {mem: 300M}}")
    result = workflow.Runner(wf, progress=False).run()
    assert all(t["state"] == "complete" for t in result.tasks.values())
    assert result.tasks["synthetic"]["unit_stats"]["count"] == 8
    assert tree(tmp_path / "slurm") == tree(tmp_path / "sequential")


# -- the demo pipeline, the report, the CLI ----------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    code = subprocess.run(
        [sys.executable, "-m", "voxelytics", "demo", str(folder), "--shape", "96", "96", "64",
         "--executor", "sequential", "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert code.returncode == 0, code.stderr
    return folder, code.stdout


def test_demo_runs_the_whole_pipeline(demo_run):
    folder, stdout = demo_run
    assert "segmentation at 0.7: VOI split" in stdout and "synapses:" in stdout
    run = folder / "run"
    metrics = json.loads((run / "evaluate" / "metrics.json").read_text())
    assert metrics["best_state"] in [s["threshold"] for s in metrics["agglomeration_states"]]
    assert set(metrics["synapses"]) >= {"detection_precision", "detection_recall", "edge_precision"}
    assert (run / "connectome" / "connectome" / "synapses.parquet").exists()
    assert (run / "connectome" / "connectome" / "edges.csv").exists()
    soma = metrics["soma_exclusion"]  # mergers counted before and after the correction
    assert soma["after"]["two_soma"] <= soma["before"]["two_soma"]
    assert soma["after"]["voi_merge"] <= soma["before"]["voi_merge"] + 1e-9
    cuts = (run / "soma_exclusion" / "state" / "cuts.csv").read_text().splitlines()
    assert cuts[0] == "segment,u,v,score,reason,x_nm,y_nm,z_nm"
    connectome = vx.Connectome.read(run / "connectome" / "connectome")
    assert "pre_type" in connectome.synapses.column_names  # cell types joined
    cells = (run / "cell_types" / "cells" / "cells.csv").read_text().splitlines()
    assert cells[0].startswith('"segment","type","type_probability","compartment"') and len(cells) > 10
    export = vx.Dataset.open(run / "export" / "dataset")
    assert sorted(export.layers) == ["color", "fragments", "segmentation"]
    assert (run / "export" / "dataset" / "connectome" / "edges.parquet").exists()
    exported = export.get_layer("segmentation").get_mag(1).read()[0]
    fragments = vx.Dataset.open(run / "segment" / "dataset").get_layer("fragments").get_mag(1).read()[0]
    table, _ = load_state(str(run / "soma_exclusion" / "state"))
    assert (exported == table[fragments]).all()  # the corrected state, applied
    # on the fragments, the state as an agglomerate attachment and the connectome on that mapping
    layer = export.get_layer("fragments")
    assert (layer.get_mag(1).read()[0] == fragments).all()
    kinds = {(a["kind"], a["name"]) for a in layer.attachments}
    assert kinds == {("agglomerates", "final"), ("connectomes", "connectome")}
    agglomerates = vx.read_agglomerates(run / "export" / "dataset" / "fragments" / "agglomerates" / "final")
    assert (agglomerates["segment_to_agglomerate"][fragments] == exported).all()  # what webKnossos shows
    wk_connectome, mapping = vx.Connectome.read_webknossos(
        run / "export" / "dataset" / "fragments" / "connectomes" / "connectome"
    )
    assert mapping == "final" and len(wk_connectome) == len(connectome) > 0
    pre = {(int(i), int(p)) for i, p in zip(connectome.column("id"), connectome.column("pre"))}
    assert {(int(i), int(p)) for i, p in zip(wk_connectome.column("id"), wk_connectome.column("pre"))} == pre
    status = subprocess.run([sys.executable, "-m", "voxelytics", "status", str(folder / "demo.yaml")],
                            capture_output=True, text=True)  # fmt: skip
    assert status.returncode == 0 and status.stdout.count("complete  -> reuse") == 9


DEMO_INPUTS = "{predictions: paths.predictions, segmentation: paths.segmentation}"


def run_on_demo(demo_run, tmp_path, name: str, task: str, config: str, inputs: str = DEMO_INPUTS):
    """Runs one task on the outputs of the demo (paths ``predictions``, ``segmentation``,
    ``synapses`` and ``state``) in ``tmp_path/run``; returns (the demo's run folder, the result)."""
    run = Path(demo_run[0]) / "run"
    text = f"""
global_parameters: {{work_dir: {tmp_path / "run"}, executor: multiprocessing}}
paths: {{predictions: {run / "predict" / "dataset"}, segmentation: {run / "segment" / "dataset"},
        synapses: {run / "synapses" / "tables"}, state: {run / "soma_exclusion" / "state"}}}
tasks:
  {name}: {{task: {task}, config: {config}, inputs: {inputs}}}
"""
    return run, workflow.Runner(workflow.load_workflow(text), progress=False).run()


def test_export_of_a_threshold_state_carries_its_agglomerate_attachment(demo_run, tmp_path):
    config = "{threshold: 0.6, mapping_name: mean_060, block: [48, 48, 32]}"
    run, _ = run_on_demo(demo_run, tmp_path, "export", "Export", config, "{segmentation: paths.segmentation}")
    export = vx.Dataset.open(tmp_path / "run" / "export" / "dataset")
    exported = export.get_layer("segmentation").get_mag(1).read()[0]
    fragments = export.get_layer("fragments").get_mag(1).read()[0]
    agglomeration = vx.neurons.load_agglomeration(run / "segment" / "dataset")
    k = list(agglomeration.thresholds).index(0.6)
    assert (exported == agglomeration.apply(fragments, k)).all()
    path = tmp_path / "run" / "export" / "dataset" / "fragments" / "agglomerates" / "mean_060"
    arrays = vx.read_agglomerates(path)
    assert (arrays["segment_to_agglomerate"][fragments] == exported).all()
    # the merges of the state: each agglomerate of m fragments is joined by m - 1 edges (a tree)
    sizes = np.diff(arrays["agglomerate_to_segments_offsets"].astype(np.int64))
    edges = np.diff(arrays["agglomerate_to_edges_offsets"].astype(np.int64))
    assert (edges[sizes > 0] == sizes[sizes > 0] - 1).all() and edges.sum() > 10


def test_evaluate_against_a_synapse_table(demo_run, tmp_path):
    folder, _ = demo_run
    run = folder / "run"
    text = f"""
global_parameters: {{work_dir: {tmp_path / "eval"}, executor: sequential}}
paths: {{truth: {run / "synthetic" / "dataset"}, segmentation: {run / "segment" / "dataset"},
        synapses: {run / "synapses" / "tables"}, table: {run / "synthetic" / "dataset" / "synapses.csv"}}}
tasks:
  score:
    task: Evaluate
    inputs: {{truth: paths.truth, segmentation: paths.segmentation, synapses: paths.synapses,
             synapse_table: paths.table}}
"""
    workflow.Runner(workflow.load_workflow(text), progress=False).run()
    scores = json.loads((tmp_path / "eval" / "score" / "metrics.json").read_text())
    demo = json.loads((run / "evaluate" / "metrics.json").read_text())["synapses"]
    table = scores["synapse_table"]  # the same matching as against the synthetic truth's table
    assert table["true_synapses"] == demo["true_synapses"] > 0
    assert table["detection_precision"] == pytest.approx(demo["detection_precision"])
    assert table["detection_recall"] == pytest.approx(demo["detection_recall"])
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    bad = text.replace(str(run / "synthetic" / "dataset" / "synapses.csv"), str(tmp_path / "bad.csv"))
    bad = bad.replace(str(tmp_path / "eval"), str(tmp_path / "eval2"))
    with pytest.raises(workflow.WorkflowFailed, match=r"bad.csv: the synapse table lacks column\(s\)"):
        workflow.Runner(workflow.load_workflow(bad), progress=False).run()


def test_blockwise_soma_exclusion_equals_the_whole_volume_computation(demo_run, tmp_path):
    """SomaExclusion in 12 blocks gives what the library gives on whole arrays: the graph, the
    compartment means, the somata (joined from the blocks' pieces), the positions and so the
    state and the cuts."""
    from voxelytics.somata import detect_somata, fragment_means, soma_exclusion
    from voxelytics.workflow.tasks.somata import read_channel

    run, result = run_on_demo(demo_run, tmp_path, "exclusion", "SomaExclusion", "{block: [32, 48, 32]}")
    assert result.tasks["exclusion"]["units"] == 2 * 3 * 2 * 2  # graph and soma pieces per block
    table, somata = load_state(str(tmp_path / "run" / "exclusion" / "state"))

    pred, seg = vx.Dataset.open(run / "predict" / "dataset"), vx.Dataset.open(run / "segment" / "dataset")
    fragments = seg.get_layer("fragments").get_mag(1).read()[0]
    graph = vx.graph.region_graph(fragments, read_channel(pred.get_layer("boundaries")))
    state = json.loads((run / "segment" / "dataset" / "state.json").read_text())["apply"]
    agglomeration = vx.neurons.load_agglomeration(run / "segment" / "dataset")
    mapping = agglomeration.mapping(list(agglomeration.thresholds).index(state))
    whole_somata = detect_somata(pred.get_layer("soma"), fragments=seg.get_layer("fragments"), progress=False)
    layer = pred.get_layer("compartments")
    means = fragment_means(fragments, [read_channel(layer, c) for c in range(layer.num_channels)])
    positions = vx.agglomerates.fragment_positions(fragments, graph.nodes) * np.asarray(pred.voxel_size)
    whole = soma_exclusion(graph, mapping, whole_somata, compartments=means, fragment_positions=positions)
    assert len(whole_somata) == len(somata) >= 1 and len(whole.nodes) > 100 and len(whole.cuts["u"]) >= 1
    for key, column in whole_somata.somata.items():
        np.testing.assert_array_equal(somata.somata[key], column, err_msg=key)
    expected = np.zeros_like(table)
    expected[whole.nodes.astype(np.int64)] = whole.segments
    np.testing.assert_array_equal(table, expected)
    cuts = (tmp_path / "run" / "exclusion" / "state" / "cuts.csv").read_text().splitlines()
    assert len(cuts) - 1 == len(whole.cuts["u"])


def test_synapses_in_blocks_equal_one_detection(demo_run, tmp_path):
    """Synapses with a unit per block (pieces pickled, joined by the driver) gives the demo's
    tables, detected there as one block."""
    run, result = run_on_demo(demo_run, tmp_path, "synapses", "Synapses", "{block: [32, 40, 16]}")
    assert result.tasks["synapses"]["units"] == 3 * 3 * 4
    ours = np.load(tmp_path / "run" / "synapses" / "tables" / "tables.npz")
    theirs = np.load(run / "synapses" / "tables" / "tables.npz")
    assert sorted(ours.files) == sorted(theirs.files) and len(theirs["synapses.id"]) >= 3
    records = (tmp_path / "run" / "synapses" / ".voxelytics" / "units").glob("*.json")
    pieces = sum(json.loads(r.read_text())["result"]["pieces"] for r in records)
    assert pieces > len(theirs["synapses.id"])  # synapses cut by block faces, joined again
    for key in theirs.files:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_connectome_without_cell_types_has_the_same_synapses(demo_run, tmp_path):
    inputs = "{synapses: paths.synapses, segmentation: paths.segmentation, state: paths.state}"
    run, _ = run_on_demo(demo_run, tmp_path, "connectome", "Connectome", "{cell_model: null}", inputs)
    ours = vx.Connectome.read(tmp_path / "run" / "connectome" / "connectome")
    demo = vx.Connectome.read(run / "connectome" / "connectome")
    assert "pre_type" not in ours.synapses.column_names and "pre_type" in demo.synapses.column_names
    for column in ("id", "pre", "post", "kind", "compartment"):
        assert list(ours.column(column)) == list(demo.column(column)), column


def test_cell_types_and_connectome_block_by_block_equal_the_demos_single_block(demo_run, tmp_path):
    """CellTypes and Connectome sum the cell features over blocks (a unit each, the depth with a
    halo): the same features and classes as the demo's, which saw the volume as one block."""
    import pyarrow.parquet as pq

    inputs = "{segmentation: paths.segmentation, predictions: paths.predictions, state: paths.state, "
    inputs += "synapses: paths.synapses}"
    run, result = run_on_demo(demo_run, tmp_path, "cell_types", "CellTypes", "{block: [32, 40, 16]}", inputs)
    assert result.tasks["cell_types"]["units"] == 3 * 3 * 4
    ours = pq.read_table(tmp_path / "run" / "cell_types" / "cells" / "cells.parquet").to_pydict()
    demo = pq.read_table(run / "cell_types" / "cells" / "cells.parquet").to_pydict()
    assert list(ours) == list(demo) and len(demo["segment"]) > 10
    for column, values in demo.items():
        if isinstance(values[0], str):
            assert ours[column] == values, column
        else:
            np.testing.assert_allclose(ours[column], values, rtol=1e-9, atol=1e-12, err_msg=column)
    assert not (tmp_path / "run" / "cell_types" / ".voxelytics" / "scratch").exists()
    _, result = run_on_demo(demo_run, tmp_path, "connectome", "Connectome", "{block: [48, 48, 32]}", inputs)
    assert result.tasks["connectome"]["units"] == 2 * 2 * 2
    ours = vx.Connectome.read(tmp_path / "run" / "connectome" / "connectome")
    demo = vx.Connectome.read(run / "connectome" / "connectome")
    for column in ("id", "pre", "post", "pre_type", "post_type", "post_class"):
        assert list(ours.column(column)) == list(demo.column(column)), column


def test_evaluate_block_by_block_equals_the_whole_volume_scores(demo_run, tmp_path):
    """Evaluate joins its blocks' contingency tables and reads the fragments at skeleton nodes:
    every figure equals the whole-volume functions' on the demo's arrays."""
    from voxelytics.neurons import load_agglomeration
    from voxelytics.somata.evaluation import mergers
    from voxelytics.synapses.evaluation import evaluate_synapses
    from voxelytics.workflow.tasks.data import synthetic_volume
    from voxelytics.workflow.tasks.synapses import load_synapse_tables

    run = Path(demo_run[0]) / "run"
    inputs = f"{{truth: {run / 'synthetic' / 'dataset'}, segmentation: paths.segmentation, "
    inputs += "synapses: paths.synapses, state: paths.state}"
    _, result = run_on_demo(demo_run, tmp_path, "evaluate", "Evaluate", "{block: [32, 40, 16]}", inputs)
    assert result.tasks["evaluate"]["units"] == 3 * 3 * 4
    got = json.loads((tmp_path / "run" / "evaluate" / "metrics.json").read_text())
    volume = synthetic_volume(str(run / "synthetic" / "dataset"))
    fragments = vx.Dataset.open(run / "segment" / "dataset").get_layer("fragments").get_mag(1).read()[0]
    agglomeration = load_agglomeration(run / "segment" / "dataset")
    segmentations = agglomeration.apply_all(fragments)
    for state, seg in zip(got["agglomeration_states"], segmentations):
        s = vx.metrics.segmentation_scores(volume.cells, seg, ignore_labels=())
        assert (state["voi_split"], state["voi_merge"], state["arand"]) == (s.voi_split, s.voi_merge, s.arand)
        assert state["erl_nm"] == volume.run_length(seg).erl
        assert state["segments"] == len(np.unique(seg))
    assert got["true_cells"] == len(np.unique(volume.cells))
    threshold = got["synapses"]["state"]
    seg = segmentations[list(agglomeration.thresholds).index(threshold)]
    detections, partners, types = load_synapse_tables(str(run / "synapses" / "tables"))
    expected = evaluate_synapses(volume, detections, partners, types, seg, 400.0)
    assert got["synapses"] == {"state": threshold, **{k: float(v) for k, v in expected.items()}}
    table, _ = load_state(str(run / "soma_exclusion" / "state"))
    after = np.where(table[fragments] != 0, table[fragments], fragments)
    assert got["soma_exclusion"]["after"] == {
        **mergers(volume, after),
        "voi_split": vx.metrics.segmentation_scores(volume.cells, after, ignore_labels=()).voi_split,
        "voi_merge": vx.metrics.segmentation_scores(volume.cells, after, ignore_labels=()).voi_merge,
    }


def test_report_shows_states_images_and_evaluation(demo_run):
    folder, stdout = demo_run
    report = Path(stdout.split("report:")[1].split()[0])
    page = report.read_text()
    for name in ("synthetic", "predict", "segment", "synapses", "soma_exclusion", "connectome", "cell_types",
                 "export", "evaluate"):  # fmt: skip
        assert f'id="task-{name}"' in page
    assert page.count('<img src="data:image/png;base64,') >= 10  # layer thumbnails and plots
    assert "Which agglomeration state is best?" in page and "(best)" in page
    assert "Precision and recall of the synapse detection" in page
    assert "neuroglancer-demo.appspot.com" in page and "<svg" in page
    rebuilt = subprocess.run([sys.executable, "-m", "voxelytics", "report", str(folder / "run")],
                             capture_output=True, text=True)  # fmt: skip
    assert rebuilt.returncode == 0 and Path(rebuilt.stdout.strip()) == report


def test_report_in_headless_chromium(demo_run, tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from screenshot_report import chromium, open_report

    if chromium() is None:
        pytest.skip("no chromium on PATH (scripts/install-deps installs it)")
    folder, stdout = demo_run
    report = stdout.split("report:")[1].split()[0]
    shown = open_report(report, str(tmp_path / "report.png"))
    assert shown["images"] >= 10 and shown["images_shown"] == shown["images"]  # every image decoded
    assert shown["tables"] >= 8
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_cli_help_and_errors(tmp_path):
    for command in ([], ["run"], ["status"], ["report"], ["serve"], ["demo"]):
        out = subprocess.run(
            [sys.executable, "-m", "voxelytics", *command, "--help"], capture_output=True, text=True
        )
        assert out.returncode == 0 and "usage: voxelytics" in out.stdout
    (tmp_path / "bad.yaml").write_text("tasks:\n  a: {task: SyntheticDataset, config: {seed: x}}\n")
    out = subprocess.run([sys.executable, "-m", "voxelytics", "run", str(tmp_path / "bad.yaml")],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2 and "bad.yaml: tasks.a.config.seed" in out.stderr


def test_demo_workflow_is_the_example():
    assert (ROOT / "examples" / "workflows" / "demo.yaml").read_text() == demo_workflow()
    workflow.load_workflow(ROOT / "examples" / "workflows" / "demo.yaml")


FLYEM = ROOT.parent / "shared" / "data" / "flyem-medulla-tiny" / "test.npz"


def test_explorative_workflow_on_real_data(tmp_path):
    if not FLYEM.exists():
        pytest.skip(f"real EM test data not found at {FLYEM}")
    text = (ROOT / "examples" / "workflows" / "explorative_flyem.yaml").read_text()
    text = text.replace("work_dir: ../out/explorative_flyem", f"work_dir: {tmp_path / 'run'}")
    text = text.replace("executor: multiprocessing", "executor: sequential")
    wf = workflow.load_workflow(text, base_dir=ROOT / "examples" / "workflows")
    workflow.Runner(wf, progress=False).run()
    predictions = vx.Dataset.open(tmp_path / "run" / "predict" / "dataset").get_layer("boundaries")
    assert predictions.bounding_box == vx.Box((0, 0, 0), (128, 100, 50))  # the explorative box only
    metrics = json.loads((tmp_path / "run" / "evaluate" / "metrics.json").read_text())
    states = metrics["agglomeration_states"]
    assert [s["threshold"] for s in states] == [0.2, 0.3, 0.4, 0.5, 0.6]
    assert all(s["erl_nm"] is None for s in states)  # no skeletons for this truth
    best = min(states, key=lambda s: s["voi"])
    assert metrics["best_state"] == best["threshold"] and best["voi"] < 2.0
    # explore: another scoring reruns the agglomeration and the evaluation only
    changed = workflow.load_workflow(
        text.replace("scoring: mean", "scoring: max"), base_dir=ROOT / "examples" / "workflows"
    )
    again = workflow.Runner(changed, progress=False).run()
    assert [n for n in changed.order if again.state(n) == "complete"] == ["segment", "evaluate"]


def test_species_retraining_workflow(tmp_path):
    text = (ROOT / "examples" / "workflows" / "species_retraining.yaml").read_text()
    for old, new in {"work_dir: ../out/species_retraining": f"work_dir: {tmp_path / 'run'}",
                     "executor: multiprocessing": "executor: sequential", "iterations: 1000": "iterations: 2",
                     "[256, 256, 64]": "[96, 96, 48]", "[256, 256, 96]": "[96, 96, 48]",
                     "[128, 128, 64]": "[96, 96, 48]", "[128, 128, 96]": "[96, 96, 48]"}.items():  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    wf = workflow.load_workflow(text)
    result = workflow.Runner(wf, progress=False).run()
    assert all(t["state"] == "complete" for t in result.tasks.values())
    model = tmp_path / "run" / "finetune" / "model" / "model.pt"
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["name"] == "finetune" and card["training"]["iterations"] == 2
    for name in ("evaluate_finetuned", "evaluate_mouse"):
        assert (tmp_path / "run" / name / "metrics.json").exists()


def test_serve_answers_byte_ranges_with_cors(tmp_path):
    from voxelytics.workflow.serve import make_server

    (tmp_path / "shard").write_bytes(bytes(range(100)))
    server = make_server(str(tmp_path), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/shard"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=10-19"})) as r:
            assert r.status == 206 and r.read() == bytes(range(10, 20))
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert r.headers["Content-Range"] == "bytes 10-19/100"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=-16"})) as r:
            assert r.read() == bytes(range(84, 100))
        with urllib.request.urlopen(url) as r:
            assert r.status == 200 and len(r.read()) == 100
    finally:
        server.shutdown()
        server.server_close()


# -- evaluation against skeletons (NML) --------------------------------------------------------


def test_evaluate_against_skeletons_without_dense_truth(tmp_path):
    """Evaluate with only ground-truth skeletons (the SyntheticDataset's skeletons.nml): every
    state's ERL as skeletons.run_length gives it, no VOI / ARAND, the best state by ERL; with a
    dense truth as well, VOI from the labels and ERL still from the NML."""
    from voxelytics.workflow.report import _evaluation
    from voxelytics.workflow.task import Context
    from voxelytics.workflow.tasks.evaluate import Evaluate

    tasks = (
        "inputs: {segmentation: segment, skeletons: synthetic}\n  both:\n    task: Evaluate\n"
        "    inputs: {truth: synthetic, segmentation: segment, skeletons: synthetic.skeletons}"
    )
    wf = small(tmp_path, **{"inputs: {truth: synthetic, segmentation: segment}": tasks})
    workflow.Runner(wf, progress=False).run()
    run = tmp_path / "run"
    nml = run / "synthetic" / "dataset" / "skeletons.nml"
    skeletons = vx.skeletons.read_nml(nml)
    layer = vx.Dataset.open(run / "segment" / "dataset").get_layer("fragments")
    agglomeration = vx.neurons.load_agglomeration(run / "segment" / "dataset")
    expected = [
        vx.skeletons.run_length(skeletons, seg, offset=layer.bounding_box.topleft)
        for seg in agglomeration.apply_all(layer.get_mag(1).read()[0])
    ]
    assert expected[0].total_length > 0 and expected[0].max_erl > expected[0].erl > 0

    metrics = json.loads((run / "evaluate" / "metrics.json").read_text())
    states = metrics["agglomeration_states"]
    assert [s["threshold"] for s in states] == [0.3, 0.6]
    assert [s["erl_nm"] for s in states] == [e.erl for e in expected]
    assert all(s[k] is None for s in states for k in ("voi", "voi_split", "voi_merge", "arand"))
    assert metrics["best_by"] == "erl" and metrics["true_cells"] is None
    assert metrics["best_state"] == [0.3, 0.6][int(np.argmax([e.erl for e in expected]))]
    assert metrics["erl_of_perfect_segmentation_nm"] == expected[0].max_erl
    assert metrics["erl_skeletons"] == str(nml) and metrics["skeleton_trees"] == len(skeletons.trees)
    page = _evaluation(metrics)  # the report: "–" where VOI / ARAND are missing, ERL plotted
    assert "<td>–</td>" in page and "<img" in page and f"ERL along the skeletons of {nml}" in page

    dense = json.loads((run / "both" / "metrics.json").read_text())
    assert [s["erl_nm"] for s in dense["agglomeration_states"]] == [e.erl for e in expected]
    assert all(s["voi"] is not None and s["arand"] is not None for s in dense["agglomeration_states"])
    assert dense["best_by"] == "voi" and dense["true_cells"] > 0

    def evaluate(out, skeletons=nml, **config):  # the task on its own, the NML given as a file
        inputs = {"segmentation": str(run / "segment" / "dataset")}
        inputs.update({"skeletons": str(skeletons)} if skeletons else {})
        os.makedirs(tmp_path / out)
        context = Context(task="score", config=Evaluate.Config(**config), inputs=inputs,
                          out=str(tmp_path / out), outputs=Evaluate.outputs)  # fmt: skip
        task = Evaluate(context)
        task.prepare()
        return task.finish([task.run_unit(unit) for unit in task.units()])

    assert [s["erl_nm"] for s in evaluate("file")["agglomeration_states"]] == [e.erl for e in expected]
    with pytest.raises(ValueError, match="task 'score': best_by voi needs a dense truth"):
        evaluate("voi", best_by="voi")
    with pytest.raises(ValueError, match="task 'score': nothing to evaluate against"):
        evaluate("none", skeletons=None)
    with pytest.raises(ValueError, match="task 'score': the skeletons of .* have voxel size"):
        bad = tmp_path / "other.nml"
        vx.skeletons.write_nml(bad, vx.skeletons.Skeletons([1], [1], [[0, 0, 0]], [], (1, 1, 1)))
        evaluate("scale", skeletons=bad)
