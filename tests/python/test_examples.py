"""examples/python/quickstart.py (the pipeline step by step from Python) runs and writes its report."""

import json
import subprocess
import sys
from pathlib import Path

import voxelytics as vx

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_writes_a_report_with_real_scores(tmp_path):
    script = ROOT / "examples" / "python" / "quickstart.py"
    args = [sys.executable, str(script), "--out", str(tmp_path), "--shape", "128", "128", "48"]
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=600)
    report = json.loads((tmp_path / "quickstart_report.json").read_text())
    assert report["ground_truth"]["cells"] > 10
    assert report["segments_found"] > 0
    assert report["model"]["name"] == "mouse"  # the shipped network, not a stand-in filter
    seg = report["segmentation"]
    assert seg["voi_split"] >= 0 and seg["voi_merge"] >= 0 and 0 <= seg["adapted_rand_error"] <= 1
    assert 0 < seg["erl_of_perfect_segmentation_nm"]
    assert 0 <= report["connectome"]["edge_recall"] <= 1
    syn = report["synapses"]
    assert syn["with_partners"] <= syn["detected"] and 0 <= syn["detection_f1"] <= 1
    connectome = vx.Connectome.read(tmp_path / "quickstart_connectome")  # detected synapses, typed
    assert len(connectome) == syn["with_partners"]
    assert set(connectome.column("kind")) <= {"excitatory", "inhibitory"}
    edges = (tmp_path / "quickstart_connectome" / "edges.csv").read_text()
    assert (
        edges.startswith('"pre","post","synapses"')
        and connectome.edges.num_rows == report["connectome"]["predicted_edges"]
    )


def test_notebook_runs_and_shows_images(tmp_path):
    import pytest

    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "examples" / "notebooks" / "pipeline_step_by_step.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # EM and truth, predictions, fragments and segments
    text = "".join(o.get("text", "") for o in outputs)
    assert "threshold 0.7: VOI split" in text and "somata;" in text and "voxelytics demo:" in text
