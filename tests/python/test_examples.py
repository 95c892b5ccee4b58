"""The README's main job (examples/python/quickstart.py) runs end to end and writes its report."""

import json
import subprocess
import sys
from pathlib import Path

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
    assert (
        (tmp_path / "quickstart_connectome.csv").read_text().startswith("pre_segment,post_segment,synapses")
    )
