"""The run report: one self-contained HTML file (images inlined) per run, rebuilt from the run's
records by ``voxelytics report RUN``.

It shows the workflow (YAML and its DAG), per task its state, reason, config, inputs, output
artifacts with sizes, duration and per-unit time and peak memory, thumbnails of a z-slice of
every output layer (segmentations overlaid on the image), the evaluation when there is one
("which agglomeration state is best?": every state's VOI / ARAND / ERL in a table and a plot, the
best marked; the synapse detection's precision and recall), links that open each dataset in
Neuroglancer (through ``voxelytics serve``) or webKnossos, and the log."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import urllib.parse

import numpy as np

from ..core import Box
from .engine import RECORDS, _read_json

STATE_COLOURS = {
    "complete": "#2e7d32",
    "skipped": "#607d8b",
    "running": "#1565c0",
    "pending": "#9e9e9e",
    "failed": "#c62828",
    "cancelled": "#ef6c00",
    "stale": "#8d6e63",
}
SERVE_URL = "http://127.0.0.1:8000"  # where `voxelytics serve WORK_DIR` serves the datasets


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        total += sum(
            os.path.getsize(os.path.join(root, f)) for f in files if not os.path.islink(os.path.join(root, f))
        )
    return total


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _table(rows: list, header: list) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _dag_svg(tasks: dict, deps: dict) -> str:
    """Tasks in columns by depth, arrows from each input task; coloured by state."""
    depth = {}
    for name in tasks:  # tasks are in dependency order
        depth[name] = 1 + max((depth[d] for d in deps.get(name, []) if d in depth), default=-1)
    columns = {}
    for name, d in depth.items():
        columns.setdefault(d, []).append(name)
    w, h, gx, gy = 150, 34, 50, 18
    pos = {
        n: (d * (w + gx) + 10, i * (h + gy) + 10) for d, names in columns.items() for i, n in enumerate(names)
    }
    width = (max(columns) + 1) * (w + gx) + 10
    height = max(len(v) for v in columns.values()) * (h + gy) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="dag">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
        '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
    ]
    for name, ds in deps.items():
        for d in ds:
            if d in pos and name in pos:
                (x0, y0), (x1, y1) = pos[d], pos[name]
                parts.append(
                    f'<line x1="{x0 + w}" y1="{y0 + h / 2}" x2="{x1}" y2="{y1 + h / 2}" stroke="#555" '
                    'marker-end="url(#arrow)"/>'
                )
    for name, (x, y) in pos.items():
        state = tasks[name].get("state", "pending")
        colour = STATE_COLOURS.get(state, "#9e9e9e")
        parts.append(
            f'<a href="#task-{html.escape(name)}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" '
            f'fill="{colour}"/><text x="{x + w / 2}" y="{y + 14}" text-anchor="middle" fill="white" '
            f'font-size="12">{html.escape(name)}</text><text x="{x + w / 2}" y="{y + 28}" '
            f'text-anchor="middle" fill="white" font-size="10">{state}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _datasets(folder: str) -> list:
    """webKnossos datasets inside a task's output folder."""
    out = []
    for root, dirs, files in os.walk(folder):
        if "datasource-properties.json" in files:
            out.append(root)
            dirs[:] = []
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(out)


def _thumbnails(dataset_path: str, image_path: str | None) -> list:
    """(layer name, PNG) for a middle z-slice of every layer; segmentation layers drawn in random
    colours over the image (``image_path``'s color layer, when it has one of the same box)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import Dataset

    ds = Dataset.open(dataset_path)
    background = None
    if image_path:
        img_ds = Dataset.open(image_path)
        colour_layers = [
            n for n, layer in img_ds.layers.items() if layer.category == "color" and layer.num_channels == 1
        ]
        if colour_layers:
            background = img_ds.get_layer(colour_layers[0])
    out = []
    for name, layer in sorted(ds.layers.items()):
        box = layer.bounding_box
        if box.is_empty():
            continue
        z = box.topleft[2] + box.size[2] // 2
        plane = Box((box.topleft[0], box.topleft[1], z), (box.size[0], box.size[1], 1))
        data = layer.get_mag(1).read(plane)[:, :, :, 0]
        fig, ax = plt.subplots(figsize=(3.2, 3.2 * box.size[1] / max(box.size[0], 1)))
        ax.set_axis_off()
        ax.set_title(f"{name} (z = {z})", fontsize=9)
        if layer.category == "segmentation":
            ids = data[0].astype(np.uint64)
            if background is not None and background.bounding_box.contains_box(plane):
                ax.imshow(background.get_mag(1).read(plane)[0, :, :, 0].T, cmap="gray")
            rng = np.random.default_rng(0)
            _, inverse = np.unique(ids, return_inverse=True)
            colours = rng.random((inverse.max() + 1, 4))
            colours[:, 3] = 0.45
            rgba = colours[inverse.reshape(ids.shape)]
            rgba[ids == 0, 3] = 0
            ax.imshow(rgba.transpose(1, 0, 2))
        else:
            channel = data[0] if data.shape[0] != 3 else np.moveaxis(data, 0, -1)
            ax.imshow(
                np.asarray(channel, np.float32).swapaxes(0, 1), cmap="gray" if channel.ndim == 2 else None
            )
        out.append((name, _png(fig)))
    return out


def _neuroglancer(dataset_path: str, work_dir: str) -> str:
    from ..io import Dataset

    ds = Dataset.open(dataset_path)
    rel = os.path.relpath(os.path.realpath(dataset_path), os.path.realpath(work_dir))
    vs = ds.voxel_size
    layers = []
    for name, layer in sorted(ds.layers.items()):
        source = f"zarr3://{SERVE_URL}/{urllib.parse.quote(rel)}/{urllib.parse.quote(name)}/1/"
        kind = "segmentation" if layer.category == "segmentation" else "image"
        layers.append({"type": kind, "source": source, "name": name})
    state = {
        "dimensions": {"x": [vs[0] * 1e-9, "m"], "y": [vs[1] * 1e-9, "m"], "z": [vs[2] * 1e-9, "m"]},
        "layers": layers,
        "layout": "xy",
    }
    return "https://neuroglancer-demo.appspot.com/#!" + urllib.parse.quote(
        json.dumps(state, separators=(",", ":"))
    )


def _evaluation(summary: dict) -> str:
    states = summary.get("agglomeration_states")
    parts = []
    if states:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        best = summary.get("best_state")

        def number(value, digits: int, scale: float = 1) -> str:  # "–": not measured (no such truth)
            return "–" if value is None else f"{value / scale:.{digits}f}"

        rows = []
        for s in states:
            mark = " <b>(best)</b>" if s["threshold"] == best else ""
            rows.append(
                [
                    f"{s['threshold']:.2f}{mark}",
                    number(s.get("voi_split"), 3),
                    number(s.get("voi_merge"), 3),
                    number(s.get("voi"), 3),
                    number(s.get("arand"), 4),
                    number(s.get("erl_nm"), 2, 1000),
                    s["segments"],
                ]
            )
        parts.append("<h4>Which agglomeration state is best?</h4>")
        perfect = summary.get("erl_of_perfect_segmentation_nm")
        along = summary.get("erl_skeletons")
        parts.append(
            f"<p>Best by {html.escape(summary.get('best_by') or 'voi')}: threshold <b>{best}</b>."
            + (f" ERL along the skeletons of {html.escape(along)}." if along else "")
            + (f" ERL of a perfect segmentation: {perfect / 1000:.2f} µm." if perfect else "")
            + "</p>"
        )
        parts.append(
            _table(rows, ["threshold", "VOI split", "VOI merge", "VOI", "ARAND", "ERL (µm)", "segments"])
        )
        t = [s["threshold"] for s in states]
        has_voi = all(s.get("voi") is not None for s in states)  # a dense truth
        has_erl = all(s.get("erl_nm") is not None for s in states)  # skeletons
        panels = int(has_voi) + int(has_erl or has_voi)
        if panels:
            fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3), squeeze=False)
            axes = list(axes[0])
            if has_voi:
                for key, label in (("voi_split", "VOI split"), ("voi_merge", "VOI merge"), ("voi", "VOI")):
                    axes[0].plot(t, [s[key] for s in states], "o-", label=label)
                axes[0].legend(fontsize=8)
            key, label, scale = ("erl_nm", "ERL (µm)", 1000) if has_erl else ("arand", "ARAND", 1)
            axes[-1].plot(t, [s[key] / scale for s in states], "o-", color="C3")
            axes[-1].set_ylabel(label)
            for ax in axes:
                if best is not None:
                    ax.axvline(best, color="k", ls="--", lw=1)
                ax.set_xlabel("agglomeration threshold")
            parts.append(_img(_png(fig), "agglomeration states"))
    soma = summary.get("soma_exclusion")
    if soma:
        keys = [
            ("two_soma", "two-soma mergers"),
            ("axon_dendrite", "axon-dendrite mergers"),
            ("somata", "true somata held"),
            ("voi_split", "VOI split"),
            ("voi_merge", "VOI merge"),
        ]
        rows = [[label, _fmt(soma["before"][k]), _fmt(soma["after"][k])] for k, label in keys]
        parts.append(f"<h4>Soma exclusion (state {soma['state']})</h4>")
        parts.append(_table(rows, ["", "before", "after"]))
    table = summary.get("synapse_table")
    if table:
        parts.append(
            f"<h4>Synapse detection against the table given ({table['true_synapses']} synapses)</h4>"
        )
        keys = ["detection_precision", "detection_recall", "detection_f1"]
        parts.append(_table([[k.replace("_", " "), f"{table[k]:.3f}"] for k in keys], ["metric", "value"]))
    syn = summary.get("synapses")
    if syn:
        keys = [
            "detection_precision",
            "detection_recall",
            "detection_f1",
            "partner_precision",
            "partner_recall",
            "partner_f1",
            "type_accuracy",
            "edge_precision",
            "edge_recall",
        ]
        parts.append(f"<h4>Precision and recall of the synapse detection (state {syn.get('state')})</h4>")
        parts.append(
            _table([[k.replace("_", " "), f"{syn[k]:.3f}"] for k in keys if k in syn], ["metric", "value"])
        )
        parts.append(
            f"<p>{int(syn.get('true_synapses', 0))} true synapses, "
            f"{int(syn.get('detected', 0))} detected.</p>"
        )
    return "".join(parts)


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _unit_plot(stats: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7, 2.2))
    axes[0].hist(stats["seconds"], bins=min(30, max(5, len(stats["seconds"]))), color="C0")
    axes[0].set_xlabel("seconds per unit")
    axes[1].hist(
        np.array(stats["peak_rss_bytes"]) / 2**20, bins=min(30, max(5, len(stats["seconds"]))), color="C1"
    )
    axes[1].set_xlabel("peak memory per unit (MiB)")
    return _img(_png(fig), "per-unit time and memory")


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:.7em;overflow-x:auto;font-size:12px}
.state{color:white;padding:1px 6px;border-radius:4px}section{border-top:1px solid #ddd;margin-top:1.5em}
img{margin:4px;vertical-align:top}.thumbs{display:flex;flex-wrap:wrap}"""


def write_report(run_dir: str, workflow=None) -> str:
    """Writes ``<run_dir>/report.html`` from the run's records (and ``report.html`` in the work
    folder, the latest run's); returns its path."""
    run = _read_json(os.path.join(run_dir, "run.json"))
    if run is None:
        raise FileNotFoundError(f"{run_dir}: no run.json: not a voxelytics run folder")
    work_dir = run["work_dir"]
    with open(os.path.join(run_dir, "workflow.yaml")) as f:
        text = f.read()
    if workflow is None:
        from .spec import load_workflow

        try:
            workflow = load_workflow(text, base_dir=os.path.dirname(os.path.abspath(run["workflow"])))
        except Exception:  # noqa: BLE001  (a report of a workflow that no longer loads: without the DAG's edges)
            workflow = None
    deps = {n: workflow.dependencies(n) for n in workflow.order} if workflow else {}
    tasks = run["tasks"]
    wk_url = workflow.spec.global_parameters.webknossos_url if workflow else None
    out = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>voxelytics run {os.path.basename(run_dir)}"
        f"</title><style>{CSS}</style></head><body>",
        f"<h1>voxelytics run {html.escape(os.path.basename(run_dir))}</h1>",
        f"<p>Workflow <code>{html.escape(run['workflow'])}</code>, "
        f"work folder <code>{html.escape(work_dir)}</code>."
        f" {'<b>Error:</b> ' + html.escape(run['error']) if run.get('error') else ''}</p>",
        "<h2>Tasks</h2>",
        _dag_svg(tasks, deps),
    ]
    rows = []
    for name, t in tasks.items():
        state = t.get("state", "pending")
        secs = t.get("seconds")
        stats = t.get("unit_stats") or {}
        rows.append(
            [
                f'<a href="#task-{html.escape(name)}">{html.escape(name)}</a>',
                html.escape(t.get("task", "")),
                f'<span class="state" style="background:{STATE_COLOURS.get(state, "#999")}">{state}</span>',
                html.escape(t.get("reason", "")),
                f"{secs:.1f} s" if secs else "",
                stats.get("count", ""),
                _human(stats["peak_rss_max_bytes"]) if stats else "",
            ]
        )
    out.append(_table(rows, ["task", "class", "state", "why", "duration", "units", "peak memory / unit"]))
    for name, t in tasks.items():
        folder = os.path.join(work_dir, name)
        record = _read_json(os.path.join(folder, RECORDS, "task.json")) or {}
        out.append(
            f'<section id="task-{html.escape(name)}"><h3>{html.escape(name)} '
            f"<small>({html.escape(t.get('task', ''))}, {t.get('state')})</small></h3>"
        )
        if workflow and workflow.spec.tasks[name].description:
            out.append(f"<p>{html.escape(workflow.spec.tasks[name].description)}</p>")
        config = record.get("config") or (workflow.configs[name].model_dump(mode="json") if workflow else {})
        out.append("<b>config</b><pre>" + html.escape(json.dumps(config, indent=1)) + "</pre>")
        if record.get("inputs"):
            rows = [
                [
                    html.escape(k),
                    f"<code>{html.escape(v)}</code>",
                    _human(_size(v)) if os.path.exists(v) else "",
                ]
                for k, v in record["inputs"].items()
            ]
            out.append(_table(rows, ["input", "path", "size"]))
        if os.path.isdir(folder) and workflow:
            artifacts = []
            for key, rel in workflow.task_class(name).outputs.items():
                path = os.path.join(folder, rel)
                if os.path.exists(path):
                    artifacts.append(
                        [html.escape(key), f"<code>{html.escape(path)}</code>", _human(_size(path))]
                    )
            out.append(_table(artifacts, ["output", "path", "size"]))
        stats = t.get("unit_stats") or record.get("unit_stats")
        if stats:
            out.append("<div>")
            out.append(
                f"<p>{stats['count']} unit(s) on {', '.join(stats['hosts'])}: median "
                f"{stats['seconds_median']:.2f} s, max {stats['seconds_max']:.2f} s; peak memory median "
                f"{_human(stats['peak_rss_median_bytes'])}, max {_human(stats['peak_rss_max_bytes'])}.</p>"
            )
            if stats["count"] > 1:
                out.append(_unit_plot(stats))
            out.append("</div>")
        summary = t.get("summary") or record.get("summary")
        if summary:
            if isinstance(summary, dict) and "agglomeration_states" in summary:
                out.append(_evaluation(summary))
            else:
                out.append("<b>summary</b><pre>" + html.escape(json.dumps(summary, indent=1)) + "</pre>")
        if os.path.isdir(folder) and t.get("state") in ("complete", "skipped"):
            image_source = None
            if workflow:
                refs = [r for r in workflow.inputs[name].values() if r.task]
                image_source = next(
                    (p for r in refs for p in _datasets(os.path.join(work_dir, r.task))), None
                )
            for ds_path in _datasets(folder):
                links = (
                    f'<a href="{html.escape(_neuroglancer(ds_path, work_dir))}">open in Neuroglancer</a> '
                    "(after <code>voxelytics serve " + html.escape(work_dir) + "</code>)"
                )
                if wk_url:
                    url = wk_url.rstrip("/") + "/" + os.path.basename(ds_path)
                    links += f' · <a href="{html.escape(url)}">webKnossos</a>'
                out.append(f"<p><code>{html.escape(ds_path)}</code>: {links}</p><div class='thumbs'>")
                for layer, src in _thumbnails(ds_path, image_source or ds_path):
                    out.append(_img(src, layer))
                out.append("</div>")
        out.append("</section>")
    out.append("<section><h2>Workflow</h2><pre>" + html.escape(text) + "</pre></section>")
    log_path = os.path.join(run_dir, "run.log")
    if os.path.exists(log_path):
        with open(log_path) as f:
            out.append("<section><h2>Log</h2><pre>" + html.escape(f.read()[-200_000:]) + "</pre></section>")
    # Once loaded, the page counts its images that decoded and its tables (what a headless
    # browser check reads back from the DOM).
    out.append(
        "<script>window.addEventListener('load',()=>{const i=[...document.images];"
        "document.body.dataset.images=i.length;"
        "document.body.dataset.imagesShown=i.filter(x=>x.complete&&x.naturalWidth>0).length;"
        "document.body.dataset.tables=document.querySelectorAll('table').length;});</script>"
    )
    out.append("</body></html>")
    page = "".join(out)
    path = os.path.join(run_dir, "report.html")
    for target in (path, os.path.join(work_dir, "report.html")):
        tmp = target + ".tmp"
        with open(tmp, "w") as f:
            f.write(page)
        os.replace(tmp, target)
    return path
