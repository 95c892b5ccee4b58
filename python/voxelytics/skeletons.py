"""Ground-truth skeletons in webKnossos' NML format, and the ERL of a segmentation along them.

An NML file (what webKnossos exports for a skeleton annotation) is XML: ``<things>`` holds
``<parameters>`` (``<scale x y z/>``: the voxel size, nm unless ``unit`` says otherwise) and one
``<thing id name>`` per tree with ``<nodes>`` (``<node id x y z radius/>``; x, y, z in voxels of
mag 1, radius in nm) and ``<edges>`` (``<edge source target/>``, node ids). Node ids are unique in
the whole file. ``read_nml`` keeps the trees, nodes and edges and ignores everything else
(comments, branch points, groups, colours); ``write_nml`` writes what webKnossos and
webknossos-libs read.

>>> import numpy as np, voxelytics as vx
>>> sk = vx.skeletons.Skeletons(tree_ids=[1, 1, 1], node_ids=[1, 2, 3],
...     positions=[[0, 0, 0], [2, 0, 0], [4, 0, 0]], edges=[[0, 1], [1, 2]], voxel_size=(10, 10, 30))
>>> seg = np.zeros((5, 1, 1), np.uint64); seg[:3] = 7; seg[3:] = 8  # the tree split at x = 3
>>> rl = vx.skeletons.run_length(sk, seg)
>>> rl.erl, rl.max_erl  # 20 nm correct of 40 nm: 20**2 / 40
(10.0, 40.0)

``run_length`` is ``metrics.expected_run_length`` (funlib.evaluate's definition) over the nodes
that lie in the segmentation's box, edges measured in nm.
"""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from . import metrics

__all__ = ["Skeletons", "read_nml", "run_length", "write_nml"]

# <scale unit="..."> -> nm (webKnossos writes "nanometer"; files without a unit are in nm)
_UNIT_NM = {"nm": 1.0, "nanometer": 1.0, "pm": 1e-3, "picometer": 1e-3, "angstrom": 0.1, "Å": 0.1,
            "um": 1e3, "µm": 1e3, "micrometer": 1e3, "mm": 1e6, "millimeter": 1e6}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Skeletons:
    """Skeleton trees as flat per-node arrays: node ``k`` belongs to tree ``tree_ids[k]``, has the
    NML id ``node_ids[k]`` (unique) and lies at voxel ``positions[k]`` (x, y, z, mag 1); ``edges``
    are (m, 2) pairs of node indices within one tree. ``radii`` (nm, NaN where a node has none)
    and ``tree_names`` (tree id -> name; trees without nodes are kept there) are optional."""

    tree_ids: np.ndarray
    node_ids: np.ndarray
    positions: np.ndarray
    edges: np.ndarray
    voxel_size: tuple[float, float, float]
    radii: np.ndarray | None = None
    tree_names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("tree_ids", np.asarray(self.tree_ids, dtype=np.int64).reshape(-1))
        n = len(self.tree_ids)
        put("node_ids", np.asarray(self.node_ids, dtype=np.int64).reshape(-1))
        put("positions", np.asarray(self.positions, dtype=np.int64).reshape(-1, 3))
        put("edges", np.asarray(self.edges, dtype=np.int64).reshape(-1, 2))
        put("voxel_size", tuple(float(v) for v in self.voxel_size))
        if self.radii is not None:
            put("radii", np.asarray(self.radii, dtype=np.float64).reshape(-1))
        put("tree_names", {int(k): str(v) for k, v in self.tree_names.items()})
        for name in ("node_ids", "positions") + (("radii",) if self.radii is not None else ()):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Skeletons: {name} has {len(getattr(self, name))} entries, tree_ids {n}")
        if len(self.voxel_size) != 3 or not all(v > 0 for v in self.voxel_size):
            raise ValueError(f"Skeletons: voxel_size must be 3 positive numbers (nm), got {self.voxel_size}")
        if len(np.unique(self.node_ids)) != n:
            ids, counts = np.unique(self.node_ids, return_counts=True)
            raise ValueError(f"Skeletons: node id {int(ids[counts > 1][0])} is used twice")
        e = self.edges
        if e.size and (e.min() < 0 or e.max() >= n):
            bad = int(e.max() if e.max() >= n else e.min())
            raise ValueError(f"Skeletons: an edge names node index {bad}; there are {n} nodes")
        if e.size and (self.tree_ids[e[:, 0]] != self.tree_ids[e[:, 1]]).any():
            a, b = e[np.argmax(self.tree_ids[e[:, 0]] != self.tree_ids[e[:, 1]])]
            raise ValueError(
                f"Skeletons: edge between nodes {self.node_ids[a]} and {self.node_ids[b]} "
                f"joins trees {self.tree_ids[a]} and {self.tree_ids[b]}"
            )

    def __len__(self) -> int:
        return len(self.tree_ids)

    @property
    def trees(self) -> list[int]:
        """The tree ids, ascending: those of the nodes and those named in ``tree_names``."""
        return sorted(set(self.tree_ids.tolist()) | set(self.tree_names))

    def select(self, keep) -> Skeletons:
        """The nodes where ``keep`` (bool, one per node) is True, and the edges between them."""
        keep = np.asarray(keep, dtype=bool).reshape(-1)
        if len(keep) != len(self):
            raise ValueError(f"select: {len(keep)} flags for {len(self)} nodes")
        index = np.cumsum(keep) - 1
        edges = index[self.edges[keep[self.edges].all(axis=1)]]
        radii = None if self.radii is None else self.radii[keep]
        return Skeletons(
            self.tree_ids[keep],
            self.node_ids[keep],
            self.positions[keep],
            edges,
            self.voxel_size,
            radii,
            dict(self.tree_names),
        )


def read_nml(path) -> Skeletons:
    """The trees of a webKnossos NML file (a path or a binary file object). Node coordinates are
    rounded to the nearest voxel. Raises ``ValueError`` naming the file for what is not an NML
    file, a missing voxel size, a node id used twice or an edge naming a node its tree lacks."""
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else getattr(path, "name", "<NML stream>")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{name}: not an NML file (not XML: {e})") from None
    if root.tag != "things":
        raise ValueError(f"{name}: not an NML file (the root element is <{root.tag}>, not <things>)")
    scale = root.find("parameters/scale")
    if scale is None:
        raise ValueError(f"{name}: no voxel size (<parameters><scale x=.. y=.. z=../></parameters>)")
    unit = scale.get("unit", "nm")
    if unit not in _UNIT_NM:
        raise ValueError(f"{name}: <scale unit={unit!r}>: unknown unit (known: {sorted(_UNIT_NM)})")
    voxel_size = tuple(_number(name, "<scale>", scale, a) * _UNIT_NM[unit] for a in "xyz")

    tree_ids, node_ids, positions, radii, edges, names = [], [], [], [], [], {}
    tree_of = {}  # node id -> tree id
    for thing in root.findall("thing"):
        tree = int(_number(name, "a <thing>", thing, "id"))
        if tree in names:
            raise ValueError(f"{name}: tree id {tree} is used twice")
        names[tree] = thing.get("name", "")
        where = f"tree {tree}"
        for node in thing.iterfind("nodes/node"):
            nid = int(_number(name, f"{where}: a <node>", node, "id"))
            if nid in tree_of:
                raise ValueError(f"{name}: node id {nid} is used twice (trees {tree_of[nid]} and {tree})")
            tree_of[nid] = tree
            node_ids.append(nid)
            tree_ids.append(tree)
            positions.append([_number(name, f"{where}: node {nid}", node, a) for a in "xyz"])
            r = node.get("radius")
            radii.append(float(r) if r is not None else np.nan)
        for edge in thing.iterfind("edges/edge"):
            ends = [int(_number(name, f"{where}: an <edge>", edge, a)) for a in ("source", "target")]
            edges.append((tree, *ends))
    for tree, *ends in edges:  # once every tree is read: an edge may name a node of a later tree
        for nid in ends:
            if tree_of.get(nid) != tree:
                other = f" (it is in tree {tree_of[nid]})" if nid in tree_of else ", which does not exist"
                raise ValueError(f"{name}: tree {tree}: edge {ends[0]} -> {ends[1]} names node {nid}{other}")
    index = {nid: k for k, nid in enumerate(node_ids)}
    return Skeletons(
        tree_ids=tree_ids,
        node_ids=node_ids,
        positions=np.rint(np.array(positions, dtype=np.float64).reshape(-1, 3)),
        edges=[(index[a], index[b]) for _, a, b in edges],
        voxel_size=voxel_size,
        radii=radii if not np.isnan(radii).all() else None,
        tree_names=names,
    )


def _number(file: str, what: str, element, attribute: str) -> float:
    value = element.get(attribute)
    if value is None:
        raise ValueError(f"{file}: {what} lacks the attribute {attribute!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{file}: {what}: {attribute}={value!r} is not a number") from None


def write_nml(path_or_file, skeletons: Skeletons, *, name: str = "voxelytics") -> None:
    """Writes ``skeletons`` as an NML file (``name``: the annotation's dataset name). A path is
    written under a temporary name and renamed into place; a file object gets the bytes (or the
    text, if it is a text file)."""
    sk = skeletons
    root = ET.Element("things")
    parameters = ET.SubElement(root, "parameters")
    ET.SubElement(parameters, "experiment", name=name)
    x, y, z = (repr(v) for v in sk.voxel_size)
    ET.SubElement(parameters, "scale", x=x, y=y, z=z, unit="nanometer")
    edge_tree = sk.tree_ids[sk.edges[:, 0]]
    for tree in sk.trees:
        thing = ET.SubElement(root, "thing", id=str(tree), name=sk.tree_names.get(tree, f"tree {tree}"))
        nodes = ET.SubElement(thing, "nodes")
        for k in np.flatnonzero(sk.tree_ids == tree):
            node = ET.SubElement(nodes, "node", id=str(sk.node_ids[k]))
            if sk.radii is not None and not np.isnan(sk.radii[k]):
                node.set("radius", repr(float(sk.radii[k])))
            for axis, v in zip("xyz", sk.positions[k]):
                node.set(axis, str(v))
        edges = ET.SubElement(thing, "edges")
        for a, b in sk.edges[edge_tree == tree]:
            ET.SubElement(edges, "edge", source=str(sk.node_ids[a]), target=str(sk.node_ids[b]))
    for tag in ("branchpoints", "comments", "groups"):
        ET.SubElement(root, tag)
    ET.indent(root)
    text = '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    if not isinstance(path_or_file, (str, os.PathLike)):
        is_text = isinstance(path_or_file, io.TextIOBase)
        path_or_file.write(text if is_text else text.encode("utf-8"))
        return
    path = os.fspath(path_or_file)
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def run_length(skeletons: Skeletons, segmentation, *, offset=(0, 0, 0)) -> metrics.RunLength:
    """ERL (``metrics.RunLength``, nm) of ``segmentation`` ([x, y, z], the box whose first voxel
    is ``offset``, mag 1) along ``skeletons``. Nodes outside the box are dropped with their edges,
    as skeletons cut to the evaluated box; edge lengths are measured between the nodes' voxels
    scaled by the voxel size. A segment holding nodes of two trees merges them: both count zero."""
    seg = np.asarray(segmentation)
    if seg.ndim != 3:
        raise ValueError(f"run_length: segmentation must be 3D [x, y, z], got shape {seg.shape}")
    local = skeletons.positions - np.asarray(offset, dtype=np.int64).reshape(3)
    inside = ((local >= 0) & (local < seg.shape)).all(axis=1)
    return nodes_run_length(skeletons.select(inside), seg[tuple(local[inside].T)])


def nodes_run_length(skeletons: Skeletons, segments) -> metrics.RunLength:
    """ERL along ``skeletons`` whose every node's segment is given (``segments``, one per node),
    e.g. looked up block by block; edges measured as :func:`run_length` measures them."""
    return metrics.expected_run_length(
        skeletons.tree_ids, segments, skeletons.edges,
        positions=skeletons.positions * np.asarray(skeletons.voxel_size),
    )  # fmt: skip
