"""Synthetic EM neuropil with complete ground truth, and simple synthetic label volumes.

``make_scene`` builds the geometry of a volume of neuropil in nm: neurons as branching, tortuous
skeleton trees with radii (thin axons with boutons, thicker dendrites with spines, somata with
nuclei), glia filling what the neurites leave, mitochondria, and synapses at axon-dendrite
contacts (vesicle cloud and active zone on the axon side, a postsynaptic density on the other;
excitatory ones asymmetric and mostly onto spine heads, inhibitory ones symmetric and onto shafts
and somata). The C++ core (``vx::synthetic``) renders any box of a scene: cell ids, compartments,
mitochondria and the EM image (membranes, textured cytoplasm, blur, noise, contrast drift, section
defects). Each voxel is a pure function of the scene and its position, so blocks render on their
own, in any order and on any number of threads, to the same bytes.

>>> import voxelytics as vx
>>> vol = vx.synthetic.generate((64, 64, 32), preset="mouse", seed=1)
>>> vol.image.dtype, vol.cells.shape
(dtype('uint8'), (64, 64, 32))
>>> bool((vol.cells > 0).all())
True

Presets mirror the species differences connectomics studies report (Loomba et al., Science 2022,
"Connectomic comparison of mouse and human cortex"): ``mouse`` has about 1 synapse per um^3;
``human`` has larger cells, about 2.5x sparser synapses and more interneurons. Any preset field
can be overridden by keyword (``generate(..., synapse_density=0.5)``).

Ground truth (``SyntheticVolume``): ``cells`` (neuron and glia ids, no voxel unlabelled),
``compartments`` (``COMPARTMENTS`` codes), ``mitochondria`` (ids, 0 outside), ``neurons`` (id,
type, soma centre), ``synapses`` (id, pre and post cell, pre/post/cleft positions in nm, type,
target compartment) and ``skeletons`` (nodes in nm with radii, edges, per cell). Positions are
in nm from the volume origin; voxel (i, j, k) spans [i, i+1) * voxel_size. ``write_dataset``
stores all of it as a webKnossos dataset.

``voronoi_labels`` tiles a volume with Voronoi cells (a quick stand-in for a dense segmentation).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ._core import synthetic as _syn
from .core import BlockGrid, Box, progress_bar, resolve_threads

__all__ = [
    "COMPARTMENTS",
    "CELL_TYPES",
    "PRESETS",
    "Preset",
    "Scene",
    "SyntheticVolume",
    "generate",
    "make_scene",
    "skeleton_nodes",
    "traced_skeletons",
    "voronoi_labels",
    "write_dataset",
]

#: Codes of the compartment ground truth.
COMPARTMENTS = {"axon": 1, "dendrite": 2, "spine": 3, "soma": 4, "glia": 5, "nucleus": 6}
#: Codes of the cell type column of ``SyntheticVolume.neurons``.
CELL_TYPES = {"excitatory": 1, "inhibitory": 2, "glia": 3}
_SYNAPSE_TYPES = {"excitatory": 1, "inhibitory": 2}


@dataclass(frozen=True)
class Preset:
    """Tissue and imaging parameters of a synthetic volume; lengths in nm, densities per um^3."""

    name: str
    voxel_size: tuple[float, float, float] = (11.24, 11.24, 30.0)  # cortex SBEM
    axon_density: float = 16.0  # um of axon per um^3
    axon_radius: float = 95.0  # median; lognormal spread below
    axon_radius_spread: float = 0.3
    dendrite_density: float = 0.5  # um per um^3
    dendrite_radius: tuple[float, float] = (200.0, 450.0)
    tortuosity: float = 0.25  # direction change per step (radians, roughly)
    axon_branching: float = 0.05  # branch points per um
    dendrite_branching: float = 0.08
    synapse_density: float = 1.0  # per um^3
    inhibitory_fraction: float = 0.15  # of neurons, and so of axons and of synapses
    excitatory_onto_spines: float = 0.85
    inhibitory_onto_somata: float = 0.25  # when a soma is in reach
    bouton_radius: tuple[float, float] = (180.0, 300.0)
    spine_head_radius: tuple[float, float] = (140.0, 240.0)
    spine_neck_radius: float = 45.0
    spine_length: tuple[float, float] = (250.0, 1500.0)  # shaft surface to head centre
    psd_radius: tuple[float, float] = (100.0, 180.0)
    vesicles: int = 40
    soma_radius: float = 6000.0
    soma_density: float = 1e-4  # somata per um^3 (about 100,000 neurons per mm^3)
    min_somata: int = 1  # partly in view even in small volumes, so that nuclei and somata show
    primary_dendrites: int = 5
    nucleus_fraction: float = 0.6  # nucleus radius / soma radius
    glia_density: float = 0.03  # glia cells per um^3 (their processes fill the gaps)
    mitochondria_per_um: float = 1.0  # of dendrite and axon; boutons hold one half of the time
    fill_length: float = 100.0  # nm; gaps wider than glia_gap * fill_length become glia
    glia_gap: float = 1.5
    missing_sections: float = 0.005  # fraction of sections missing
    shifted_sections: float = 0.01  # fraction of sections shifted in x, y
    max_shift: int = 6  # voxels
    imaging: dict = field(default_factory=dict)  # overrides of voxelytics._core.synthetic.Imaging


PRESETS = {
    "mouse": Preset("mouse"),
    # Human cortex: larger cells, thicker dendrites, ~2.5x sparser synapses, about twice the share
    # of interneurons (Loomba et al. 2022; DeFelipe et al. 2002 for synapse densities).
    "human": Preset(
        "human",
        axon_density=12.0,
        axon_radius=110.0,
        dendrite_density=0.4,
        dendrite_radius=(280.0, 650.0),
        synapse_density=0.4,
        inhibitory_fraction=0.3,
        bouton_radius=(200.0, 340.0),
        spine_head_radius=(160.0, 270.0),
        soma_radius=8000.0,
        soma_density=3e-5,
        primary_dendrites=6,
    ),
}


# --- scene tables ---------------------------------------------------------------------------------


@dataclass
class Scene:
    """The geometry of a synthetic volume (nm) plus its ground-truth tables; ``render`` voxelises."""

    shape: tuple[int, int, int]
    preset: Preset
    seed: int
    core: object  # voxelytics._core.synthetic.Scene
    neurons: dict[str, np.ndarray]
    synapses: dict[str, np.ndarray]
    skeletons: dict[int, dict[str, np.ndarray]]

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return tuple(self.preset.voxel_size)

    def render(self, offset=(0, 0, 0), shape=None, *, threads: int | None = None, **outputs) -> dict:
        """Renders the box (offset, shape) in voxels; returns the arrays named in ``outputs``
        (cells, compartments, mitochondria, image; all by default), [x, y, z] Fortran order."""
        shape = self.shape if shape is None else tuple(int(s) for s in shape)
        return _syn.render(
            self.core, tuple(int(o) for o in offset), shape, resolve_threads(threads), **outputs
        )


@dataclass
class SyntheticVolume:
    """A rendered synthetic volume with its ground truth (see the module docs)."""

    image: np.ndarray
    cells: np.ndarray
    compartments: np.ndarray
    mitochondria: np.ndarray
    scene: Scene

    @property
    def voxel_size(self):
        return self.scene.voxel_size

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.scene.shape)

    @property
    def neurons(self):
        return self.scene.neurons

    @property
    def synapses(self):
        return self.scene.synapses

    @property
    def skeletons(self):
        return self.scene.skeletons

    def run_length(self, segmentation: np.ndarray):
        """Expected run length (``metrics.RunLength``: ``erl`` and the perfect ``max_erl``, nm) of a
        segmentation of this volume along the cells' skeletons as an annotator would trace them
        (``traced_skeletons``: nodes inside the volume and inside their own cell), edges measured
        between the nodes' exact positions in nm."""
        from .metrics import expected_run_length

        sk, nm = traced_skeletons(self.scene, lambda voxels: self.cells[tuple(voxels.T)])
        segments = segmentation[tuple(sk.positions.T)]
        return expected_run_length(sk.tree_ids, segments, sk.edges, positions=nm)


def skeleton_nodes(scene: Scene) -> tuple:
    """Every node of the scene's skeletons, as ``skeletons.Skeletons`` (the voxels holding the
    nodes, some outside the volume; radii in nm; tree ``k`` from 1 is the scene's ``k``-th cell,
    named ``cell <id>``; node ids count the nodes from 1) and their positions in nm."""
    from .skeletons import Skeletons

    cells = list(scene.skeletons)
    counts = [len(scene.skeletons[c]["nodes"]) for c in cells]
    starts = np.cumsum([0] + counts)[:-1]
    nodes = np.concatenate([scene.skeletons[c]["nodes"] for c in cells] + [np.zeros((0, 4))])
    edges = [scene.skeletons[c]["edges"] + s for c, s in zip(cells, starts)]
    sk = Skeletons(
        tree_ids=np.repeat(np.arange(1, len(cells) + 1), counts),
        node_ids=np.arange(1, len(nodes) + 1),
        positions=np.floor(nodes[:, :3] / np.asarray(scene.voxel_size)).astype(np.int64),
        edges=np.concatenate(edges + [np.zeros((0, 2), np.int64)]),
        voxel_size=scene.voxel_size,
        radii=np.round(nodes[:, 3], 2),
        tree_names={k + 1: f"cell {c}" for k, c in enumerate(cells)},
    )
    return sk, nodes[:, :3]


def traced_skeletons(scene: Scene, cell_at) -> tuple:
    """The scene's skeletons as an annotator would trace them in the rendered volume, as
    ``skeletons.Skeletons`` and the kept nodes' positions in nm: of :func:`skeleton_nodes`, only
    nodes inside the volume and inside their own cell's voxels (about 2% of axis points render
    in a neighbour where cells cross; one such node would count a perfect segmentation as a
    merger), and the edges between them. ``cell_at``: a function giving the rendered cell ids
    at (k, 3) voxels, or an array of the cell id at every node of :func:`skeleton_nodes` (any
    value outside the volume). Node ids stay :func:`skeleton_nodes`' whichever are dropped."""
    sk, nm = skeleton_nodes(scene)
    own_cell = np.asarray(list(scene.skeletons), np.uint64)[sk.tree_ids - 1]
    keep = ((sk.positions >= 0) & (sk.positions < scene.shape)).all(axis=1)
    found = cell_at(sk.positions[keep]) if callable(cell_at) else np.asarray(cell_at)[keep]
    keep[keep] = np.asarray(found) == own_cell[keep]
    return sk.select(keep), nm[keep]


class _Builder:
    """Grows the scene: neurite trees step by step, then synapses, organelles and defects."""

    def __init__(self, shape, preset: Preset, seed: int):
        self.p = preset
        self.rng = np.random.default_rng(seed)
        self.shape = shape
        self.extent = np.array(shape, float) * np.array(preset.voxel_size)  # nm
        self.margin = 800.0  # neurites start and end this far outside the volume
        self.lo = -np.full(3, self.margin)
        self.hi = self.extent + self.margin
        self.segments: list[tuple] = []  # (ax, ay, az, bx, by, bz, ra, rb, cell, compartment)
        self.cell_type: dict[int, int] = {}
        self.soma: dict[int, tuple[np.ndarray, float]] = {}
        self.nodes: dict[int, list] = defaultdict(list)  # cell -> [(x, y, z, r)]
        self.edges: dict[int, list] = defaultdict(list)
        self.paths: dict[str, list] = {"axon": [], "dendrite": []}  # (cell, [node ids]) per branch
        self.solid = defaultdict(list)  # 1 um grid cell -> dendrite/soma segment ids (for avoidance)
        self.next_cell = 1

    # -- helpers
    def new_cell(self, kind: str) -> int:
        cell = self.next_cell
        self.next_cell += 1
        self.cell_type[cell] = CELL_TYPES[kind]
        return cell

    def add_node(self, cell, pos, radius, parent=None) -> int:
        self.nodes[cell].append((*pos, radius))
        node = len(self.nodes[cell]) - 1
        if parent is not None:
            self.edges[cell].append((parent, node))
        return node

    def add_segment(self, a, b, ra, rb, cell, compartment, solid=False) -> int:
        self.segments.append((*a, *b, ra, rb, cell, COMPARTMENTS[compartment]))
        k = len(self.segments) - 1
        if solid:
            r = max(ra, rb)
            lo = np.floor((np.minimum(a, b) - r) / 1000).astype(int)
            hi = np.floor((np.maximum(a, b) + r) / 1000).astype(int)
            for i in range(lo[0], hi[0] + 1):
                for j in range(lo[1], hi[1] + 1):
                    for m in range(lo[2], hi[2] + 1):
                        self.solid[(i, j, m)].append(k)
        return k

    def seg_array(self, ids) -> np.ndarray:
        return np.array([self.segments[k][:8] for k in ids], float).reshape(-1, 8)

    def collides(self, p, r, own_cell) -> bool:
        """True if a ball (p, r) would cut into a dendrite or soma of another cell."""
        key = tuple(np.floor(p / 1000).astype(int))
        ids = [k for k in self.solid.get(key, ()) if self.segments[k][8] != own_cell]
        if not ids:
            return False
        s = self.seg_array(ids)
        t, d = _closest(s[:, 0:3], s[:, 3:6], p)
        radius = s[:, 6] + t * (s[:, 7] - s[:, 6])
        return bool((d < radius + r + 30.0).any())

    def inside(self, p) -> bool:
        return bool((p >= self.lo).all() and (p <= self.hi).all())

    def random_direction(self):
        v = self.rng.normal(size=3)
        return v / np.linalg.norm(v)

    # -- neurites
    def grow(self, cell, kind, start, direction, radius, parent_node, steps_left=400, avoid=True):
        """Grows one branch (and its side branches) until it leaves the volume's margin."""
        p = self.p
        step = 200.0 if kind == "axon" else 400.0
        branching = p.axon_branching if kind == "axon" else p.dendrite_branching
        pos, d, node = np.asarray(start, float), direction, parent_node
        path = [node]
        for _ in range(steps_left):
            turned = self.step_from(pos, d, step, radius, cell, avoid)
            if turned is None:
                break  # boxed in: the branch ends here
            nxt, nd = turned
            # Dendrites taper slowly, down to half the thinnest starting radius; axons keep theirs.
            r_next = max(0.995 * radius, 0.5 * p.dendrite_radius[0]) if kind == "dendrite" else radius
            self.add_segment(pos, nxt, radius, r_next, cell, kind, solid=kind == "dendrite")
            node = self.add_node(cell, nxt, r_next, node)
            path.append(node)
            pos, d, radius = nxt, nd, r_next
            if not self.inside(pos):
                break
            if self.rng.random() < branching * step / 1000:
                b = d + 1.2 * self.random_direction()
                b /= np.linalg.norm(b)
                child_r = radius * (0.75 if kind == "dendrite" else 1.0)
                self.grow(cell, kind, pos, b, child_r, node, steps_left // 2, avoid)
        self.paths[kind].append((cell, path))
        return path

    def step_from(self, pos, d, step, radius, cell, avoid):
        """The next point of a growing branch: the direction turns a little at random; up to six
        ever wider turns are tried to get around dendrites and somata. (point, direction), or
        None if all collide."""
        for attempt in range(6):
            nd = d + self.p.tortuosity * self.rng.normal(size=3) * (1 + attempt)
            nd /= np.linalg.norm(nd)
            nxt = pos + step * nd
            if not avoid or not self.collides(nxt, radius, cell):
                return nxt, nd
        return None

    def neurite(self, kind, length_so_far):
        """A neurite tree passing through the volume: grown both ways from a random point."""
        p = self.p
        inhibitory = self.rng.random() < p.inhibitory_fraction
        cell = self.new_cell("inhibitory" if inhibitory else "excitatory")
        if kind == "axon":
            radius = p.axon_radius * math.exp(p.axon_radius_spread * self.rng.normal())
            radius = float(np.clip(radius, 0.5 * p.axon_radius, 2.5 * p.axon_radius))
        else:
            radius = float(self.rng.uniform(*p.dendrite_radius))
        for _ in range(20):
            start = self.rng.uniform(self.lo, self.hi)
            if not self.collides(start, radius, cell):
                break
        else:
            return length_so_far
        d = self.random_direction()
        root = self.add_node(cell, start, radius)
        n0 = len(self.segments)
        self.grow(cell, kind, start, d, radius, root)
        self.grow(cell, kind, start, -d, radius, root)
        return length_so_far + sum(np.linalg.norm(np.subtract(s[3:6], s[0:3])) for s in self.segments[n0:])

    def somata(self):
        p = self.p
        volume_um3 = float(np.prod(self.hi - self.lo)) / 1e9
        count = max(p.min_somata, int(self.rng.poisson(p.soma_density * volume_um3)))
        for _ in range(count):
            inhibitory = self.rng.random() < p.inhibitory_fraction
            cell = self.new_cell("inhibitory" if inhibitory else "excitatory")
            r = p.soma_radius * float(self.rng.uniform(0.85, 1.15))
            centre = self.rng.uniform(0, self.extent)
            if np.all(self.extent > 2.5 * r):
                pass  # fits: anywhere inside
            else:
                # Too small a volume for a whole soma: a cap of it reaches in through the x or y face.
                axis = int(self.rng.integers(0, 2))
                depth = min(0.5 * r, 0.3 * self.extent[axis])
                centre[axis] = -r + depth if self.rng.random() < 0.5 else self.extent[axis] + r - depth
            self.soma[cell] = (centre, r)
            self.add_segment(centre, centre, r, r, cell, "soma", solid=True)
            root = self.add_node(cell, centre, r)
            kinds = ["axon"] + ["dendrite"] * p.primary_dendrites
            for kind in kinds:
                d = self.random_direction()
                surface = centre + d * r
                rr = (
                    p.axon_radius * 1.5
                    if kind == "axon"
                    else float(self.rng.uniform(*p.dendrite_radius)) * 1.6
                )
                inner = centre + d * (r - 2 * rr)
                self.add_segment(inner, surface, rr, rr, cell, kind)  # root of the neurite in the soma
                node = self.add_node(cell, surface, rr, root)
                self.grow(cell, kind, surface, d, rr, node, steps_left=200, avoid=False)

    # -- synapses
    def synapses(self):
        p = self.p
        volume_um3 = float(np.prod(self.extent)) / 1e9
        target = int(self.rng.poisson(p.synapse_density * volume_um3))
        seg = np.array([s[:8] for s in self.segments], float)
        cells = np.array([s[8] for s in self.segments], np.int64)
        comp = np.array([s[9] for s in self.segments], np.int64)
        types = np.array([self.cell_type.get(int(c), 0) for c in cells])
        axon_ids = np.flatnonzero(comp == COMPARTMENTS["axon"])
        dend_ids = np.flatnonzero((comp == COMPARTMENTS["dendrite"]) | (comp == COMPARTMENTS["soma"]))
        if len(axon_ids) == 0 or len(dend_ids) == 0:
            return []
        length = np.linalg.norm(seg[axon_ids, 3:6] - seg[axon_ids, 0:3], axis=1)
        made = []
        for _ in range(target):
            inhibitory = self.rng.random() < p.inhibitory_fraction
            if inhibitory:
                kind = "soma" if self.rng.random() < p.inhibitory_onto_somata else "shaft"
            else:
                kind = "spine" if self.rng.random() < p.excitatory_onto_spines else "shaft"
            want = CELL_TYPES["inhibitory" if inhibitory else "excitatory"]
            mask = types[axon_ids] == want
            if not mask.any():
                continue
            pool, w = axon_ids[mask], length[mask]
            # Try points along axons of the right type until one has a target in reach.
            for _attempt in range(60):
                k = int(pool[self.rng.choice(len(pool), p=w / w.sum())])
                a = seg[k, 0:3] + self.rng.uniform(0.2, 0.8) * (seg[k, 3:6] - seg[k, 0:3])
                if not ((a > 300).all() and (a < self.extent - 300).all()):
                    continue
                syn = self.try_synapse(k, a, inhibitory, kind, seg, cells, comp, dend_ids)
                if syn is not None:
                    made.append(syn)
                    break
        # A later synapse's bouton or spine may have taken an earlier one's points: keep those
        # whose pre and post voxels still belong to their partners in the finished scene.
        kept = []
        for syn in made:
            points = self.voxel_centres(np.array([syn["pre_position"], syn["post_position"]]))
            got, got_comp = self.labels_at(points, seg, cells, comp)
            ok_comp = list(got_comp) == [COMPARTMENTS["axon"], syn["target_compartment"]]
            if list(got) == [syn["pre"], syn["post"]] and ok_comp:
                kept.append(syn)
        return kept

    def try_synapse(self, k, a, inhibitory, target, seg, cells, comp, dend_ids):
        p = self.p
        pre = int(cells[k])
        s = seg[dend_ids]
        t, d = _closest(s[:, 0:3], s[:, 3:6], a)
        radius = s[:, 6] + t * (s[:, 7] - s[:, 6])
        gap = d - radius
        other = cells[dend_ids] != pre
        spiny = np.array([self.cell_type[int(c)] == CELL_TYPES["excitatory"] for c in cells[dend_ids]])
        is_soma = comp[dend_ids] == COMPARTMENTS["soma"]
        rb = float(self.rng.uniform(*p.bouton_radius))
        rh = float(self.rng.uniform(*p.spine_head_radius))
        reach = gap - rb - rh  # the spine's length if it grew from the nearest shaft point
        if target == "spine":
            ok = (
                other
                & spiny
                & ~is_soma
                & (reach > max(p.spine_length[0], rh + 80))
                & (reach < p.spine_length[1])
            )
        elif target == "soma":
            ok = other & is_soma & (gap < 1200)
            if not ok.any():
                target, ok = "shaft", other & ~is_soma & (gap < 600)
        else:
            ok = other & ~is_soma & (gap < 600)
        if not ok.any():
            return None
        j = int(np.flatnonzero(ok)[np.argmin(np.where(ok, gap, np.inf)[ok])])
        post = int(cells[dend_ids[j]])
        sj = s[j]
        q = sj[0:3] + t[j] * (sj[3:6] - sj[0:3])  # nearest point on the target's axis
        u = a - q
        u /= np.linalg.norm(u)  # from the target towards the axon
        r_post = float(radius[j])
        new = []
        if target == "spine":
            bouton = a
            head = bouton - u * (rb + rh)
            new.append((q, head, p.spine_neck_radius, p.spine_neck_radius, post, "spine"))
            new.append((head, head, rh, rh, post, "spine"))
            post_pos = head + u * (0.5 * rh)
            post_comp = "spine"
        else:
            bouton = q + u * (r_post + rb)  # a bouton pulled onto the shaft or soma surface
            new.append((a, bouton, seg[k, 6], seg[k, 6], pre, "axon"))
            post_pos = q + u * (r_post - min(0.5 * r_post, 120.0))
            post_comp = "soma" if target == "soma" else "dendrite"
        new.append((bouton, bouton, rb, rb, pre, "axon"))
        cleft = bouton - u * rb
        pre_pos = bouton - u * (0.5 * rb)
        # Check against the scene with the new pieces: the pre and post points must lie in their
        # cells (the renderer's own rule), and nothing else may be swallowed.
        n0 = len(self.segments)
        for piece in new:
            self.add_segment(*piece)
        checks = np.array([pre_pos, post_pos, bouton] + ([head] if target == "spine" else []))
        want = [pre, post, pre] + ([post] if target == "spine" else [])
        got, got_comp = self.labels_at(self.voxel_centres(checks), seg, cells, comp)
        compartments_ok = got_comp[0] == COMPARTMENTS["axon"] and got_comp[1] == COMPARTMENTS[post_comp]
        if list(got) != want or not compartments_ok:
            del self.segments[n0:]
            return None
        if target == "spine":
            self.add_node(post, head, rh, self._nearest_node(post, q))
        else:
            self.add_node(pre, bouton, rb, self._nearest_node(pre, a))
        return dict(
            pre=pre,
            post=post,
            pre_position=pre_pos,
            post_position=post_pos,
            cleft_position=cleft,
            type=_SYNAPSE_TYPES["inhibitory" if inhibitory else "excitatory"],
            target_compartment=COMPARTMENTS[post_comp],
            bouton=bouton,
            bouton_radius=rb,
            normal=-u,  # from the bouton into the post-synaptic cell
        )

    def voxel_centres(self, points):
        """The centres of the voxels holding `points` (where the renderer decides their label)."""
        vs = np.array(self.p.voxel_size)
        return (np.floor(points / vs) + 0.5) * vs

    def _nearest_node(self, cell, pos):
        nodes = np.array(self.nodes[cell])[:, :3]
        return int(np.argmin(np.linalg.norm(nodes - pos, axis=1)))

    def labels_at(self, points, base, base_cells, base_comp) -> np.ndarray:
        """Cell ids at points (nm) by the renderer's rule, from the segments that can reach them:
        those of `base` (the scene before synapses) near the points, and all added since."""
        lo, hi = points.min(axis=0), points.max(axis=0)
        reach = np.maximum(base[:, 6], base[:, 7]) + self.p.glia_gap * self.p.fill_length
        near = (np.minimum(base[:, 0:3], base[:, 3:6]) - reach[:, None] <= hi).all(axis=1) & (
            np.maximum(base[:, 0:3], base[:, 3:6]) + reach[:, None] >= lo
        ).all(axis=1)
        tail = self.segments[len(base) :]
        seg = np.concatenate([base[near], np.array([t[:8] for t in tail], float).reshape(-1, 8)])
        cells = np.concatenate([base_cells[near], np.array([t[8] for t in tail], np.int64)]).astype(np.uint64)
        comp = np.concatenate([base_comp[near], np.array([t[9] for t in tail], np.int64)]).astype(np.uint8)
        scene = _syn.Scene(
            seg, cells, comp, np.zeros((1, 3)), np.zeros(1, np.uint64),
            np.zeros((0, 7)), np.zeros(0, np.uint64), np.zeros(0, np.uint64),
            np.zeros((0, 4)), np.zeros(0, np.uint64), np.zeros((0, 9)), np.zeros(0, np.uint64),
            np.zeros((0, 4)), np.zeros(0, np.uint64), np.zeros(0, np.uint8), np.zeros((0, 2), np.int64),
            self.p.fill_length, self.p.glia_gap, _syn.Imaging(),
        )  # fmt: skip
        return _syn.labels_at(scene, points)


def _closest(a: np.ndarray, b: np.ndarray, p: np.ndarray):
    """Parameter t in [0, 1] and distance of the closest point of each segment a[i]-b[i] to p."""
    ab = b - a
    len2 = np.einsum("ij,ij->i", ab, ab)
    t = np.where(len2 > 0, np.einsum("ij,ij->i", p - a, ab) / np.where(len2 > 0, len2, 1), 0.0)
    t = np.clip(t, 0.0, 1.0)
    q = a + t[:, None] * ab
    return t, np.linalg.norm(p - q, axis=1)


def _preset(preset, overrides) -> Preset:
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; available: {sorted(PRESETS)}")
        preset = PRESETS[preset]
    names = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown preset fields {unknown}; available: {sorted(names - {'name'})}")
    if "voxel_size" in overrides and overrides["voxel_size"] is not None:
        overrides["voxel_size"] = tuple(float(v) for v in overrides["voxel_size"])
    return dataclasses.replace(preset, **{k: v for k, v in overrides.items() if v is not None})


def _fill(b, kind: str, target_nm: float, patience: int = 100) -> None:
    """Neurites of ``kind`` until their length reaches ``target_nm``, or until ``patience``
    neurites in a row find no room (somata filling a small volume leave none)."""
    length, idle = 0.0, 0
    while length < target_nm and idle < patience:
        grown = b.neurite(kind, length)
        idle = idle + 1 if grown - length < 1.0 else 0
        length = grown


def make_scene(shape, preset="mouse", seed: int = 0, **overrides) -> Scene:
    """Builds the scene of a volume of ``shape`` voxels (x, y, z); see the module docs."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive extents (x, y, z), got {shape}")
    p = _preset(preset, overrides)
    if min(p.voxel_size) <= 0:
        raise ValueError(f"voxel_size must be positive, got {p.voxel_size}")
    b = _Builder(shape, p, seed)
    margin_volume_um3 = float(np.prod(b.hi - b.lo)) / 1e9
    glia_count = max(2, int(b.rng.poisson(p.glia_density * margin_volume_um3)))
    b.glia = b.rng.uniform(b.lo, b.hi, size=(glia_count, 3))
    b.somata()
    _fill(b, "dendrite", p.dendrite_density * margin_volume_um3 * 1000)
    _fill(b, "axon", p.axon_density * margin_volume_um3 * 1000)
    glia_ids = np.arange(b.next_cell, b.next_cell + glia_count, dtype=np.uint64)
    for g in glia_ids:
        b.cell_type[int(g)] = CELL_TYPES["glia"]
    synapses = b.synapses()
    return _assemble(b, glia_ids, synapses, seed)


def _assemble(b: _Builder, glia_ids, synapses, seed) -> Scene:
    p, rng = b.p, b.rng
    seg = np.array([s[:8] for s in b.segments], float)
    cells = np.array([s[8] for s in b.segments], np.uint64)
    comp = np.array([s[9] for s in b.segments], np.uint8)

    # Mitochondria: runs of consecutive dendrite segments, and one in half of the boutons.
    mito, mito_cells = [], []
    for kind, step_um, width in (("dendrite", 0.4, 0.4), ("axon", 0.2, 0.6)):
        for cell, path in b.paths[kind]:
            nodes = np.array(b.nodes[cell])
            i = 0
            while i < len(path) - 1:
                if rng.random() >= p.mitochondria_per_um * step_um * (0.5 if kind == "axon" else 1.0):
                    i += 1
                    continue
                run = int(rng.integers(1, 5))  # segments; a mitochondrion 0.2 to 1.6 um long
                for j in range(i, min(i + run, len(path) - 1)):
                    a, c = nodes[path[j]], nodes[path[j + 1]]
                    mito.append((*a[:3], *c[:3], width * min(a[3], c[3])))
                    mito_cells.append(cell)
                i += run + 1
    # Consecutive capsules of one run share an id: the renderer draws them as one organelle.
    mito_ids = []
    next_id, prev_end = 0, None
    for m in mito:
        if prev_end is None or not np.allclose(m[0:3], prev_end):
            next_id += 1
        mito_ids.append(next_id)
        prev_end = m[3:6]
    vesicles, vesicle_cells, densities, density_cells = [], [], [], []
    for s in synapses:
        centre, rb, n = np.asarray(s["bouton"]), s["bouton_radius"], np.asarray(s["normal"])
        if rng.random() < 0.5:
            back = centre - n * 0.45 * rb
            next_id += 1
            mito.append((*back, *back, 0.35 * rb))
            mito_cells.append(s["pre"])
            mito_ids.append(next_id)
        excitatory = s["type"] == _SYNAPSE_TYPES["excitatory"]
        count = p.vesicles if excitatory else int(0.7 * p.vesicles)
        for _ in range(count):
            v = rng.normal(size=3)
            v /= np.linalg.norm(v)
            if v @ n < 0:
                v = v - 1.2 * (v @ n) * n  # most vesicles crowd towards the active zone
            v /= np.linalg.norm(v)
            r = (rb - 40) * rng.random() ** (1 / 3)
            vesicles.append((*(centre + v * r), 20.0 if excitatory else 17.0))
            vesicle_cells.append(s["pre"])
        psd_r = float(rng.uniform(*p.psd_radius))
        cleft = np.asarray(s["cleft_position"])
        densities.append((*cleft, *n, psd_r, 45.0 if excitatory else 15.0, 70.0 if excitatory else 45.0))
        density_cells.append(s["post"])
        densities.append((*cleft, *(-n), psd_r * 0.9, 15.0, 40.0))
        density_cells.append(s["pre"])
    nuclei = [(*c, r * p.nucleus_fraction) for c, r in b.soma.values()]
    nucleus_cells = list(b.soma)

    # Section defects (global z index); shifts in voxels.
    z = b.shape[2]
    defects = np.zeros(z, np.uint8)
    shifts = np.zeros((z, 2), np.int64)
    u = rng.random(z)
    defects[u < p.missing_sections] = 1
    shifted = (u >= p.missing_sections) & (u < p.missing_sections + p.shifted_sections)
    defects[shifted] = 2
    if p.max_shift > 0:
        shifts[shifted] = rng.integers(-p.max_shift, p.max_shift + 1, size=(int(shifted.sum()), 2))

    imaging = _syn.Imaging()
    imaging.voxel_size = list(p.voxel_size)
    imaging.seed = int(seed)
    # A section images its whole thickness: average enough planes that none lies farther than
    # about half an xy voxel from one (odd: the middle plane gives the labels).
    samples = max(1, round(p.voxel_size[2] / min(p.voxel_size[:2])))
    imaging.section_samples = samples + 1 - samples % 2
    for key, value in p.imaging.items():
        if not hasattr(imaging, key):
            raise ValueError(f"unknown imaging parameter {key!r}")
        setattr(imaging, key, value)
    f64, u64 = np.float64, np.uint64
    core = _syn.Scene(
        seg, cells, comp, b.glia, glia_ids,
        np.array(mito, f64).reshape(-1, 7), np.array(mito_cells, u64), np.array(mito_ids, u64),
        np.array(vesicles, f64).reshape(-1, 4), np.array(vesicle_cells, u64),
        np.array(densities, f64).reshape(-1, 9), np.array(density_cells, u64),
        np.array(nuclei, f64).reshape(-1, 4), np.array(nucleus_cells, u64),
        defects, shifts, p.fill_length, p.glia_gap, imaging,
    )  # fmt: skip

    ids = np.array(sorted(b.cell_type), np.uint64)
    soma_centre = np.full((len(ids), 3), np.nan)
    for i, cell in enumerate(ids):
        if int(cell) in b.soma:
            soma_centre[i] = b.soma[int(cell)][0]
    neurons = {
        "id": ids,
        "type": np.array([b.cell_type[int(c)] for c in ids], np.uint8),
        "soma_centre": soma_centre,
    }
    keys = ("pre", "post", "pre_position", "post_position", "cleft_position", "type", "target_compartment")
    table = {k: np.array([s[k] for s in synapses]) for k in keys}
    table["id"] = np.arange(1, len(synapses) + 1, dtype=np.uint64)
    for k in ("pre", "post"):
        table[k] = table[k].astype(np.uint64)
    for k in ("pre_position", "post_position", "cleft_position"):
        table[k] = table[k].astype(float).reshape(-1, 3)
    for k in ("type", "target_compartment"):
        table[k] = table[k].astype(np.uint8)
    skeletons = {
        int(c): {
            "nodes": np.array(b.nodes[c], float).reshape(-1, 4),
            "edges": np.array(b.edges[c], np.int64).reshape(-1, 2),
        }
        for c in sorted(b.nodes)
    }
    return Scene(b.shape, p, seed, core, neurons, table, skeletons)


def generate(
    shape,
    preset="mouse",
    seed: int = 0,
    *,
    threads: int | None = None,
    block: int = 128,
    progress: bool | None = None,
    **overrides,
) -> SyntheticVolume:
    """Builds a scene and renders it block by block into numpy arrays ([x, y, z], Fortran order).
    ``progress``: a progress bar over the blocks (default: when there are 8 or more)."""
    scene = make_scene(shape, preset, seed, **overrides)
    shape = scene.shape
    out = {
        "image": np.empty(shape, np.uint8, order="F"),
        "cells": np.empty(shape, np.uint64, order="F"),
        "compartments": np.empty(shape, np.uint8, order="F"),
        "mitochondria": np.empty(shape, np.uint64, order="F"),
    }
    for offset, size in progress_bar(_blocks(shape, block), progress, "rendering"):
        arrays = scene.render(offset, size, threads=threads)
        sl = tuple(slice(o, o + s) for o, s in zip(offset, size))
        for key, a in arrays.items():
            out[key][sl] = a
    return SyntheticVolume(scene=scene, **out)


def _blocks(shape, block):
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    grid = BlockGrid(Box((0, 0, 0), tuple(shape)), block_shape=(block, block, block))
    return [(b.core.topleft, b.core.size) for b in grid]


def write_dataset(scene: Scene, path, *, block: int = 256, threads: int | None = None, progress: bool = True):
    """Renders ``scene`` block by block into a webKnossos dataset at ``path`` (which must not
    exist): layers ``color`` (EM), ``cells``, ``compartments``, ``mitochondria`` (segmentation),
    and next to them ``synapses.csv``, ``neurons.csv`` and ``skeletons.nml`` (webKnossos skeleton
    format, node positions in voxels, radii in nm; the nodes an annotator would place:
    ``traced_skeletons``, for ``skeletons.run_length``). The dataset is written under a temporary
    name and renamed when complete, so an interrupted run never leaves a dataset that looks
    finished."""
    from .io import Dataset

    path = os.fspath(path)
    if os.path.exists(path):
        raise FileExistsError(f"{path} already exists")
    tmp = path + ".partial"
    if os.path.exists(tmp):
        import shutil

        shutil.rmtree(tmp)
    ds = Dataset.create(tmp, voxel_size=scene.voxel_size)
    layers = {
        "image": ds.add_layer("color", "color", "uint8").add_mag(1),
        "cells": ds.add_layer("cells", "segmentation", "uint64").add_mag(1),
        "compartments": ds.add_layer("compartments", "segmentation", "uint8").add_mag(1),
        "mitochondria": ds.add_layer("mitochondria", "segmentation", "uint64").add_mag(1),
    }
    for offset, size in progress_bar(_blocks(scene.shape, block), progress, "writing dataset"):
        for key, a in scene.render(offset, size, threads=threads).items():
            layers[key].write(a, offset=offset)
    _write_tables(scene, tmp)
    os.rename(tmp, path)
    return Dataset.open(path)


def _write_tables(scene: Scene, folder):
    names = {v: k for k, v in CELL_TYPES.items()}
    comps = {v: k for k, v in COMPARTMENTS.items()}
    syn_types = {v: k for k, v in _SYNAPSE_TYPES.items()}
    with open(os.path.join(folder, "neurons.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "type", "soma_x_nm", "soma_y_nm", "soma_z_nm"])
        n = scene.neurons
        for i, t, c in zip(n["id"], n["type"], n["soma_centre"]):
            w.writerow([int(i), names[int(t)], *("" if math.isnan(v) else f"{v:.1f}" for v in c)])
    with open(os.path.join(folder, "synapses.csv"), "w", newline="") as f:
        w = csv.writer(f)
        axes = ("x", "y", "z")
        w.writerow(
            ["id", "pre", "post", "type", "target_compartment"]
            + [f"{k}_{a}_nm" for k in ("pre", "post", "cleft") for a in axes]
        )
        s = scene.synapses
        for i in range(len(s["id"])):
            row = [int(s["id"][i]), int(s["pre"][i]), int(s["post"][i]), syn_types[int(s["type"][i])]]
            row.append(comps[int(s["target_compartment"][i])])
            for k in ("pre_position", "post_position", "cleft_position"):
                row += [f"{v:.1f}" for v in s[k][i]]
            w.writerow(row)
    _write_skeletons(scene, folder)
    with open(os.path.join(folder, "synthetic.json"), "w") as f:
        json.dump(
            {"preset": dataclasses.asdict(scene.preset), "seed": scene.seed, "shape": scene.shape},
            f,
            indent=2,
        )


def _write_skeletons(scene: Scene, folder):
    """``skeletons.nml``: the skeletons an annotator would trace (``traced_skeletons``) in the
    ``cells`` layer of the dataset at ``folder``, read around the nodes block by block."""
    from .io import Dataset
    from .skeletons import write_nml

    mag = Dataset.open(folder).get_layer("cells").get_mag(1)
    sk, _ = traced_skeletons(scene, mag.read_points)
    write_nml(os.path.join(folder, "skeletons.nml"), sk, name="synthetic")


def voronoi_labels(
    shape: tuple[int, int, int],
    num_cells: int,
    *,
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0),
    membranes: bool = True,
    seed: int = 0,
    dtype=np.uint64,
) -> np.ndarray:
    """A ``[x, y, z]`` Fortran-ordered label volume of ``num_cells`` Voronoi cells, ids 1..num_cells.

    With ``membranes=True`` every voxel whose +x, +y or +z neighbour lies in another cell is set
    to 0, so cells are separated by background as in a real segmentation.
    """
    from scipy import ndimage

    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive extents (x, y, z), got {shape}")
    if num_cells < 1:
        raise ValueError(f"num_cells must be >= 1, got {num_cells}")
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, dtype=bool, order="F")
    flat = rng.choice(int(np.prod(shape)), size=min(num_cells, int(np.prod(shape))), replace=False)
    seeds.ravel(order="F")[flat] = True
    seed_ids = np.zeros(shape, dtype=dtype, order="F")
    seed_ids.ravel(order="F")[flat] = np.arange(1, len(flat) + 1, dtype=dtype)
    # Nearest seed of every voxel, in physical units.
    nearest = ndimage.distance_transform_edt(
        ~seeds, sampling=voxel_size, return_distances=False, return_indices=True
    )
    labels = np.asfortranarray(seed_ids[tuple(nearest)])
    if membranes:
        boundary = np.zeros(shape, dtype=bool, order="F")
        boundary[:-1] |= labels[:-1] != labels[1:]
        boundary[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        boundary[:, :, :-1] |= labels[:, :, :-1] != labels[:, :, 1:]
        labels[boundary] = 0
    return labels
