#!/usr/bin/env python3
"""Quality of soma exclusion on held-out synthetic volumes with super-mergers.

    python3 scripts/evaluate_somata.py [--model PT] [--shape X Y Z] [--over 0.2]

For `mouse` (seeds 17, 19, 23) and `human` (18, 20, 24) with several somata in view (`min_somata`), the
shipped CNN's affinities give the fragments and the region graph, and mean agglomeration the
states; the state `--over` above the best (lowest VOI) threshold merges too much. Soma exclusion
runs on it from ground-truth predictions (the soma mask, per-fragment compartment shares) and
from the CNN's (soma head, compartments head averaged per fragment). Before and after: two-soma
and axon-dendrite mergers (voxelytics.somata.evaluation), VOI split/merge, ERL, and the connectome
edge precision/recall of the synapses (ground-truth channels) assigned through each state.
Prints a table (each volume, then per preset the mergers summed over its volumes and the mean
change of VOI split) and writes <out>/evaluation-somata.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _predictions import cached_prediction

import voxelytics as vx
from voxelytics import models, synapses, synthetic
from voxelytics.inference import Predictor
from voxelytics.somata.evaluation import ground_truth_compartments, ground_truth_soma_channel, mergers
from voxelytics.synapses.evaluation import evaluate_synapses, ground_truth_channels
from voxelytics.train.validation import THRESHOLDS, affinity_states

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = {"mouse": (17, 19, 23), "human": (18, 20, 24)}  # seeds below 100: never trained on
MIN_SOMATA = {"mouse": 6, "human": 4}  # more human somata (r = 8 um) leave neurites no room


def scores(volume, segmentation, mapping, found) -> dict:
    s = vx.metrics.segmentation_scores(volume.cells, segmentation, ignore_labels=(0,))
    partners = synapses.assign_partners(found, mapping)
    c = evaluate_synapses(volume, found, partners, None, segmentation)
    return {
        **mergers(volume, segmentation),
        "voi_split": s.voi_split,
        "voi_merge": s.voi_merge,
        "erl_nm": volume.run_length(segmentation).erl,
        "edge_precision": c["edge_precision"],
        "edge_recall": c["edge_recall"],
    }


def totals(rows: dict, presets) -> dict:
    """Per preset and state: mergers summed over the volumes, VOI split's mean change."""
    out = {}
    for preset in presets:
        mine = {k: r for k, r in rows.items() if k.startswith(f"{preset} ")}
        before = [r for k, r in mine.items() if k.endswith("before")]
        for state in ("before", "after (ground truth)", "after (CNN)"):
            picked = [r for k, r in mine.items() if k.endswith(state)]
            out[f"{preset}, all volumes, {state}"] = {
                "two_soma": sum(r["two_soma"] for r in picked),
                "axon_dendrite": sum(r["axon_dendrite"] for r in picked),
                "somata": sum(r["somata"] for r in picked),
                "voi_split_change": float(
                    np.mean([a["voi_split"] - b["voi_split"] for a, b in zip(picked, before)])
                ),
                "voi_merge_change": float(
                    np.mean([a["voi_merge"] - b["voi_merge"] for a, b in zip(picked, before)])
                ),
                "somata_detected": sum(r.get("somata_detected", 0) for r in picked),
            }
    return out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="CNN (default: the shipped mouse model)")
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 96))
    parser.add_argument("--over", type=float, default=0.2, help="threshold above the best state's")
    parser.add_argument("--presets", nargs="+", default=list(HELD_OUT))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="volumes (default: HELD_OUT's)")
    parser.add_argument("--cache", default=None, help="folder to keep the CNN's predictions in")
    parser.add_argument("--out", default=str(ROOT / "build" / "models"))
    args = parser.parse_args()
    model = args.model or models.pretrained("mouse")
    rows = {}
    for preset, seed in ((p, s) for p in args.presets for s in (args.seeds or HELD_OUT[p])):
        t0 = time.time()
        volume = synthetic.generate(
            tuple(args.shape), preset, seed, progress=False, min_somata=MIN_SOMATA[preset]
        )
        predictor = Predictor(model, batch=2)
        pred = cached_prediction(
            predictor, volume.image, args.cache, f"{preset}-{seed}-{'x'.join(map(str, args.shape))}"
        )
        affinities = np.asfortranarray(pred[predictor.channels("affinities")[:3]])
        states = affinity_states(affinities, volume.cells)
        fragments, best = states.fragments, states.best
        k = int(np.argmin(np.abs(np.asarray(THRESHOLDS) - min(THRESHOLDS[best] + args.over, THRESHOLDS[-1]))))
        before = states.mapping(k)
        channels = ground_truth_channels(volume)
        settings = synapses.settings_for(preset)

        base = f"{preset} {seed}, threshold {THRESHOLDS[k]} (best {THRESHOLDS[best]})"
        rows[f"{base}, before"] = scores(
            volume,
            states.segmentation(k),
            before,
            synapses.synapse_stage(*channels, fragments, volume.voxel_size, settings)[0],
        )
        soma_channels = {
            "ground truth": ground_truth_soma_channel(volume),
            "CNN": pred[predictor.channels("soma")[0]],
        }
        for source in ("ground truth", "CNN"):
            # The pipeline with somata: fragments split between somata, agglomerated as before,
            # then soma exclusion.
            soma = np.asfortranarray(soma_channels[source])
            split, parent = vx.somata.split_fragments(fragments, soma, voxel_size=volume.voxel_size)
            split_graph = vx.region_graph(split, affinities=affinities, bins=0)
            state = vx.agglomerate(split_graph, [THRESHOLDS[k]])
            split_before = dict(zip(state.nodes.tolist(), state.segments[0].tolist()))
            compartments = (
                ground_truth_compartments(volume, split)
                if source == "ground truth"
                else vx.somata.fragment_means(split, pred[predictor.channels("compartments")])
            )
            somata = vx.detect_somata(soma, fragments=split, voxel_size=volume.voxel_size)
            result = vx.soma_exclusion(split_graph, split_before, somata, compartments=compartments)
            after = vx.segmentation.remap(split, (result.nodes, result.segments))
            row = scores(
                volume,
                after,
                result.table(),
                synapses.synapse_stage(*channels, split, volume.voxel_size, settings)[0],
            )
            row["fragments_split"] = len(np.unique(parent[int(fragments.max()) + 1 :]))
            row["somata_detected"] = len(somata)
            row["cuts"] = {
                name: int((result.cuts["reason"] == code).sum()) for name, code in vx.somata.REASONS.items()
            }
            rows[f"{base}, after ({source})"] = row
        print(f"{preset} {seed}: {time.time() - t0:.0f} s", flush=True)
    rows.update(totals(rows, args.presets))
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    print(" | ".join(["", *keys]))
    for name, row in rows.items():
        print(
            " | ".join(
                [
                    name,
                    *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in (row.get(k, "") for k in keys)),
                ]
            )
        )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "evaluation-somata.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
