"""``voxelytics demo [DIR]``: the whole pipeline on a synthetic mouse volume, scored against its
ground truth. It writes ``DIR/demo.yaml`` (the workflow in examples/workflows/demo.yaml, with the
chosen shape) and runs it like ``voxelytics run DIR/demo.yaml``: rerun, it reuses what is done."""

from __future__ import annotations

import json
import os
import time

DEMO = """\
# The demo pipeline (`voxelytics demo` writes and runs it): synthetic mouse EM with full ground
# truth -> the shipped mouse network -> neurons -> synapses -> connectome, scored against the truth.
global_parameters:
  work_dir: run
  executor: {executor}
  threads: 1

tasks:
  synthetic:
    task: SyntheticDataset
    description: mouse-cortex-like synthetic EM with its ground truth
    config: {{shape: [{x}, {y}, {z}], preset: mouse, seed: 0, block: [128, 128, 128]}}
  predict:
    task: Predict
    description: the shipped mouse network, block by block
    config: {{model: mouse, block: [128, 128, 128]}}
    inputs: {{dataset: synthetic}}
  segment:
    task: SegmentNeurons
    description: fragments, region graph and every agglomeration state
    config: {{layer: boundaries, thresholds: [0.4, 0.5, 0.6, 0.7, 0.8], apply: 0.7}}
    inputs: {{dataset: predict}}
  synapses:
    task: Synapses
    description: detection, partners and types
    config: {{species: mouse}}
    inputs: {{predictions: predict, segmentation: segment}}
  soma_exclusion:
    task: SomaExclusion
    description: somata; two-soma and axon-dendrite mergers cut (automatic merge correction)
    inputs: {{predictions: predict, segmentation: segment}}
  connectome:
    task: Connectome
    description: synapse table and neuron graph (Parquet + CSV) of the corrected state, cell types
    inputs: {{synapses: synapses, segmentation: segment, state: soma_exclusion, predictions: predict}}
  cell_types:
    task: CellTypes
    description: excitatory / inhibitory / glia and compartment of every corrected segment
    inputs: {{segmentation: segment, predictions: predict, state: soma_exclusion, synapses: synapses}}
  export:
    task: Export
    description: image, corrected segmentation and connectome in one webKnossos dataset
    inputs: {{segmentation: segment, state: soma_exclusion, image: predict, connectome: connectome}}
  evaluate:
    task: Evaluate
    description: which agglomeration state is best; synapse precision and recall; soma exclusion's mergers
    inputs: {{truth: synthetic, segmentation: segment, synapses: synapses, state: soma_exclusion}}
"""


def demo_workflow(shape=(256, 256, 256), executor: str = "multiprocessing") -> str:
    x, y, z = (int(v) for v in shape)
    return DEMO.format(x=x, y=y, z=z, executor=executor)


def run_demo(folder: str, *, shape=(256, 256, 256), executor: str = "multiprocessing", progress=True) -> int:
    from .engine import Runner, WorkflowFailed
    from .report import write_report
    from .spec import load_workflow

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "demo.yaml")
    with open(path, "w") as f:
        f.write(demo_workflow(shape, executor))
    wf = load_workflow(path)
    runner = Runner(wf, progress=progress)
    start = time.perf_counter()
    try:
        result = runner.run()
    except WorkflowFailed as e:
        print(f"demo failed: {e}")
        return 1
    finally:
        if getattr(runner, "run_dir", None):
            report = write_report(runner.run_dir, wf)
    seconds = time.perf_counter() - start
    with open(os.path.join(wf.work_dir, "evaluate", "metrics.json")) as f:
        metrics = json.load(f)
    states = {s["threshold"]: s for s in metrics["agglomeration_states"]}
    applied = states[metrics["synapses"]["state"]]
    syn = metrics["synapses"]
    voxels = 1
    for v in shape:
        voxels *= int(v)
    ran = [n for n, t in result.tasks.items() if t["state"] == "complete"]
    print(
        f"\nvoxelytics demo: {shape[0]} x {shape[1]} x {shape[2]} voxels of synthetic mouse EM, "
        f"{seconds:.0f} s "
        f"({voxels / seconds / 1e6:.2f} megavoxels/s; tasks run: {', '.join(ran) or 'none, all reused'})"
    )
    print(
        f"  segmentation at {metrics['synapses']['state']}: VOI split {applied['voi_split']:.3f}, merge "
        f"{applied['voi_merge']:.3f}, ARAND {applied['arand']:.3f}, ERL {applied['erl_nm'] / 1000:.2f} µm "
        f"(perfect {metrics['erl_of_perfect_segmentation_nm'] / 1000:.2f} µm)"
    )
    print(f"  best agglomeration state by {metrics['best_by']}: {metrics['best_state']}")
    print(
        f"  synapses: {int(syn['detected'])} detected, {int(syn['true_synapses'])} true; precision "
        f"{syn['detection_precision']:.3f}, recall {syn['detection_recall']:.3f}; connectome edges precision "
        f"{syn['edge_precision']:.3f}, recall {syn['edge_recall']:.3f}"
    )
    soma = metrics.get("soma_exclusion")
    if soma:
        b, a = soma["before"], soma["after"]
        print(
            f"  soma exclusion: two-soma mergers {b['two_soma']} -> {a['two_soma']}, axon-dendrite mergers "
            f"{b['axon_dendrite']} -> {a['axon_dendrite']}, VOI split {b['voi_split']:.3f} -> "
            f"{a['voi_split']:.3f}"
        )
    print(f"  connectome: {os.path.join(wf.work_dir, 'connectome', 'connectome')}")
    print(f"  cell types: {os.path.join(wf.work_dir, 'cell_types', 'cells', 'cells.csv')}")
    print(f"  export:     {os.path.join(wf.work_dir, 'export', 'dataset')} (webKnossos dataset)")
    print(f"  report:     {report}")
    return 0
