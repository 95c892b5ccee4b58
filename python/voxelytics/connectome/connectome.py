"""The connectome: the synapse table and the neuron graph built from it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core import unique_pairs
from ..graph import _positions
from . import webknossos

#: Synapse types: the sign (excitatory / inhibitory) and the target compartment; the
#: webKnossos type names are "<kind>-<compartment>-synapse" (its own default list names the
#: compartments only: dendritic-shaft-synapse, spine-head-synapse, soma-synapse).
KINDS = ("excitatory", "inhibitory")
COMPARTMENTS = ("dendritic-shaft", "spine-head", "soma")
UNKNOWN = "unknown"

_COORDS = ("x", "y", "z")
SYNAPSE_COLUMNS = (
    "id", "pre", "post", "kind", "compartment", "score", "voxels",
    *(f"{s}_{a}" for s in ("position", "pre", "post") for a in _COORDS),
    *(f"{s}_{a}_nm" for s in ("position", "pre", "post") for a in _COORDS),
)  # fmt: skip


def _position_columns(which: str, positions, voxel_size) -> dict[str, np.ndarray]:
    """``<which>_x`` .. ``<which>_z`` (voxels) and ``<which>_x_nm`` .. of (n, 3) positions."""
    positions = np.asarray(positions, float).reshape(-1, 3)
    vs = np.asarray(voxel_size, float)
    columns = {f"{which}_{axis}": positions[:, a] for a, axis in enumerate(_COORDS)}
    columns.update({f"{which}_{axis}_nm": positions[:, a] * vs[a] for a, axis in enumerate(_COORDS)})
    return columns


class Connectome:
    """A synapse table and the neuron graph it implies.

    ``synapses`` (a pyarrow Table, one row per synapse): ``id``, ``pre``/``post`` (segment ids),
    ``kind`` (excitatory / inhibitory / unknown), ``compartment`` (dendritic-shaft / spine-head /
    soma / unknown), ``score``, ``voxels`` (cleft size), the synapse's ``position_*`` and its
    pre/post sites ``pre_*``/``post_*`` in voxels and in nm (``*_nm``). ``edges``: one row per
    (pre, post) segment pair with ``synapses`` (count), ``voxels`` (summed sizes) and the count
    of each kind and compartment.
    """

    def __init__(self, synapses, voxel_size=(1.0, 1.0, 1.0)):
        import pyarrow as pa

        table = synapses if isinstance(synapses, pa.Table) else pa.table(synapses)
        missing = [c for c in SYNAPSE_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"a synapse table needs the columns {missing}")
        self.synapses = table.select(
            list(SYNAPSE_COLUMNS) + [c for c in table.column_names if c not in SYNAPSE_COLUMNS]
        )
        self.voxel_size = tuple(float(v) for v in voxel_size)
        ids = self.column("id")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("synapse ids must be unique")

    # -- construction
    @classmethod
    def from_partners(cls, detections, partners, types=None) -> Connectome:
        """From :func:`voxelytics.synapses.detect_synapses` and
        :func:`~voxelytics.synapses.assign_partners` results, with ``types`` (a dict of ``kind``
        and ``compartment`` name arrays, one per partner row, e.g. from
        :func:`voxelytics.synapses.classify_synapses`) or without (types "unknown")."""
        p = partners.table
        index = (p["synapse"] - 1).astype(np.int64)  # detection ids are 1..n
        s = detections.synapses
        n = len(index)
        types = types or {}
        columns = {
            "id": p["synapse"].astype(np.uint64),
            "pre": p["pre"].astype(np.uint64),
            "post": p["post"].astype(np.uint64),
            "kind": np.asarray(types.get("kind", [UNKNOWN] * n), dtype=object),
            "compartment": np.asarray(types.get("compartment", [UNKNOWN] * n), dtype=object),
            "score": s["score"][index],
            "voxels": s["voxels"][index].astype(np.uint64),
        }
        for which, where in (
            ("position", s["position"][index]),
            ("pre", p["pre_position"]),
            ("post", p["post_position"]),
        ):
            columns.update(_position_columns(which, where, detections.voxel_size))
        return cls({k: columns[k] for k in SYNAPSE_COLUMNS}, detections.voxel_size)

    def with_cells(self, cells: dict) -> Connectome:
        """A copy whose synapses (and so edges) carry the class of their pre- and postsynaptic
        segments: ``pre_type``/``post_type`` and ``pre_class``/``post_class`` from ``cells``
        (``segment``, ``type``, ``compartment`` columns, as
        :func:`voxelytics.classify_cells` gives; segments it does not name are "unknown")."""
        segments = np.asarray(cells["segment"], np.uint64)
        order = np.argsort(segments)
        segments = segments[order]
        columns = {}
        for side in ("pre", "post"):
            ids = self.column(side)
            at, known = _positions(segments, ids)
            for source, target in (("type", "type"), ("compartment", "class")):
                names = np.asarray(cells[source], object)[order]
                columns[f"{side}_{target}"] = np.where(known, names[at] if len(names) else UNKNOWN, UNKNOWN)
        table = self.synapses
        for name, values in columns.items():
            if name in table.column_names:
                table = table.drop_columns([name])
            table = table.append_column(name, _string_array(values))
        return Connectome(table, self.voxel_size)

    # -- access
    def __len__(self) -> int:
        return self.synapses.num_rows

    def __repr__(self) -> str:
        return f"Connectome({len(self)} synapses, {self.edges.num_rows} edges)"

    def column(self, name: str) -> np.ndarray:
        return self.synapses.column(name).to_numpy(zero_copy_only=False)

    def positions(self, which: str = "position", nm: bool = False) -> np.ndarray:
        """(n, 3) positions: ``which`` is "position", "pre" or "post"."""
        suffix = "_nm" if nm else ""
        return np.stack([self.column(f"{which}_{a}{suffix}") for a in _COORDS], axis=1)

    @property
    def edges(self):
        """The neuron graph as a pyarrow Table (see the class docs), sorted by (pre, post)."""
        import pyarrow as pa

        pairs, inverse, _ = unique_pairs(self.column("pre"), self.column("post"))
        columns = {
            "pre": pairs[:, 0].astype(np.uint64),
            "post": pairs[:, 1].astype(np.uint64),
            "synapses": np.bincount(inverse, minlength=len(pairs)).astype(np.uint64),
            "voxels": np.bincount(inverse, self.column("voxels").astype(float), len(pairs)).astype(np.uint64),
        }
        for column, names in (("kind", KINDS), ("compartment", COMPARTMENTS)):
            values = self.column(column)
            for name in names:
                columns[name] = np.bincount(inverse, values == name, len(pairs)).astype(np.uint64)
        first = np.unique(inverse, return_index=True)[1]  # a segment's class is the same on all its rows
        for name in ("pre_type", "post_type", "pre_class", "post_class"):
            if name in self.synapses.column_names:
                columns[name] = _string_array(self.column(name)[first])
        return pa.table(columns)

    def to_scipy(self, weight: str = "synapses"):
        """``(matrix, ids)``: a scipy.sparse CSR matrix of the edges' ``weight`` column, rows
        (pre) and columns (post) indexed by position in ``ids`` (the sorted segment ids)."""
        import scipy.sparse

        e = self.edges
        pre, post = e.column("pre").to_numpy(), e.column("post").to_numpy()
        ids = np.unique(np.r_[pre, post]).astype(np.uint64)
        rows, cols = np.searchsorted(ids, pre), np.searchsorted(ids, post)
        matrix = scipy.sparse.csr_matrix(
            (e.column(weight).to_numpy().astype(np.float64), (rows, cols)), shape=(len(ids), len(ids))
        )
        return matrix, ids

    def to_networkx(self):
        """A networkx DiGraph: nodes are segment ids, edges carry the columns of :attr:`edges`."""
        import networkx as nx

        graph = nx.DiGraph()
        e = self.edges.to_pydict()
        keys = [k for k in e if k not in ("pre", "post")]
        for i in range(len(e["pre"])):
            graph.add_edge(int(e["pre"][i]), int(e["post"][i]), **{k: int(e[k][i]) for k in keys})
        return graph

    # -- files
    def write(self, folder) -> Path:
        """``synapses.parquet``, ``edges.parquet``, ``synapses.csv`` and ``edges.csv`` in
        ``folder``; each file written under a temporary name, then renamed."""
        import pyarrow.csv as csv
        import pyarrow.parquet as pq

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {b"voxelytics.voxel_size": ",".join(map(str, self.voxel_size)).encode()}
        for name, table in (("synapses", self.synapses), ("edges", self.edges)):
            table = table.replace_schema_metadata(meta)
            for suffix, writer in ((".parquet", pq.write_table), (".csv", csv.write_csv)):
                target = folder / f"{name}{suffix}"
                partial = target.with_name(target.name + ".partial")
                writer(table, str(partial))
                os.replace(partial, target)
        return folder

    @classmethod
    def read(cls, folder) -> Connectome:
        """The connectome :meth:`write` wrote (from its Parquet file)."""
        import pyarrow.parquet as pq

        path = Path(folder) / "synapses.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no connectome there")
        table = pq.read_table(path)
        meta = (table.schema.metadata or {}).get(b"voxelytics.voxel_size", b"1,1,1").decode()
        return cls(table.replace_schema_metadata(None), tuple(float(v) for v in meta.split(",")))

    def type_names(self) -> list[str]:
        return [f"{k}-{c}-synapse" for k in (*KINDS, UNKNOWN) for c in (*COMPARTMENTS, UNKNOWN)]

    def write_webknossos(self, layer, mapping_name: str, name: str = "connectome") -> dict:
        """Writes the connectome as a zarr3 connectome attachment of the segmentation ``layer``
        (a :class:`voxelytics.io.Layer`) in ``<layer>/connectomes/<name>`` and declares it in
        datasource-properties.json. ``mapping_name``: the layer's agglomerate mapping whose
        agglomerate ids the ``pre``/``post`` segments are; the positions are in voxels of the
        layer's finest mag. Returns the attachment's entry."""
        if layer.category != "segmentation":
            raise ValueError(
                f"layer {layer.name!r} is a {layer.category} layer; connectomes attach to segmentation"
            )
        names = self.type_names()
        index = {n: i for i, n in enumerate(names)}
        kinds, comps = self.column("kind"), self.column("compartment")
        types = np.array(
            [index.get(f"{k}-{c}-synapse", len(names) - 1) for k, c in zip(kinds, comps)], np.uint64
        )
        arrays = webknossos.connectome_arrays(
            self.column("pre"), self.column("post"), self.positions(), types, self.column("id")
        )
        relative = f"{layer.name}/connectomes/{name}"
        webknossos.write_attachment(Path(layer.dataset.path) / relative, arrays, mapping_name, names)
        return layer.add_attachment("connectomes", name, relative, "zarr3")

    @classmethod
    def read_webknossos(cls, path, voxel_size=(1.0, 1.0, 1.0)) -> tuple[Connectome, str]:
        """``(connectome, mapping_name)`` from a connectome attachment (the folder of its group);
        only what the attachment holds: ids, partners, types and positions (pre/post sites and
        nm positions are the synapse position; score and size 0)."""
        arrays, attributes = webknossos.read_attachment(path)
        names = attributes["synapse_type_names"]
        kind, compartment = [], []
        for t in arrays["synapse_types"]:
            label = names[int(t)].removesuffix("-synapse")
            k = next((k for k in (*KINDS, UNKNOWN) if label.startswith(k + "-")), UNKNOWN)
            kind.append(k)
            compartment.append(label[len(k) + 1 :] if label.startswith(k + "-") else UNKNOWN)
        order = np.argsort(arrays["synapse_ids"])
        positions = arrays["synapse_positions"].astype(float).reshape(-1, 3)[order]
        n = len(order)
        columns = {
            "id": arrays["synapse_ids"][order],
            "pre": arrays["synapse_to_src_agglomerate"][order],
            "post": arrays["synapse_to_dst_agglomerate"][order],
            "kind": np.asarray(kind, object)[order],
            "compartment": np.asarray(compartment, object)[order],
            "score": np.zeros(n),
            "voxels": np.zeros(n, np.uint64),
        }
        for which in ("position", "pre", "post"):
            columns.update(_position_columns(which, positions, voxel_size))
        mapping = attributes.get("metadata/mapping_name", attributes.get("mapping_name"))
        return cls({k: columns[k] for k in SYNAPSE_COLUMNS}, voxel_size), mapping


def _string_array(values):
    import pyarrow as pa

    return pa.array([str(v) for v in values], pa.string())
