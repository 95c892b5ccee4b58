"""Soma exclusion: automatic correction of merge errors on the agglomeration graph.

A segment holding two or more somata is split between them by a seeded watershed on its part of
the region graph (:func:`voxelytics.graph.seeded_cut`: each soma's fragments are a seed; edges in
increasing score join pieces that do not hold different somata), so each piece keeps one soma and
the cut falls on the weakest edge of the strongest path between two somata. Then, with compartment
predictions per fragment, every *branch* of a segment (a component of it once its somatic fragments
are removed) that holds both axon and dendrite fragments is cut between the two the same way: an
axon and a dendrite of one neuron meet only at its soma, so a branch that has both is two cells
touching. Of a cut branch, the piece with the most contact to the rest of its segment stays in it.
Last, a neuron has one axon: of the axonal branches (more axon than dendrite) that touch a piece's
soma, the one with the weakest boundary to it (its own axon leaves the soma without a membrane)
stays, the others are cut off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import unique_pairs
from ..graph import RegionGraph, _positions, seeded_cut
from ..segmentation import label_statistics
from ..synapses.partners import _best_per_group, _segments_of
from .detection import Somata

__all__ = ["SomaExclusion", "fragment_means", "soma_exclusion", "REASONS"]

#: Codes of the ``reason`` column of :attr:`SomaExclusion.cuts`.
REASONS = {"somata": 1, "axon_dendrite": 2, "second_axon": 3}


@dataclass(frozen=True)
class SomaExclusion:
    """The corrected agglomeration state: ``segments[i]`` is the new segment of fragment
    ``nodes[i]``, ``before[i]`` the one it was in. A split segment keeps its id for its largest
    piece; the other pieces get new ids above every id of ``before``. ``cuts``: per removed edge
    (an edge inside a segment of ``before`` between two pieces) ``segment`` (of ``before``),
    ``u``, ``v`` (fragments), ``score``, ``reason`` (:data:`REASONS`) and, with fragment
    positions, ``position_nm`` (the midpoint of the two)."""

    nodes: np.ndarray
    before: np.ndarray
    segments: np.ndarray
    cuts: dict[str, np.ndarray]

    def mapping(self) -> dict[int, int]:
        """Fragment id -> corrected segment id."""
        return dict(zip(self.nodes.tolist(), self.segments.tolist()))

    def table(self) -> np.ndarray:
        """The corrected segments as an array indexed by fragment id (0 -> 0), the form
        :func:`voxelytics.assign_partners` takes (``remap`` takes ``(nodes, segments)``)."""
        out = np.zeros(int(self.nodes.max(initial=0)) + 1, np.uint64)
        out[self.nodes.astype(np.int64)] = self.segments
        return out

    @property
    def split_segments(self) -> np.ndarray:
        """The segments of ``before`` that were split, sorted."""
        return np.unique(self.cuts["segment"])

    def __repr__(self) -> str:
        reasons = {name: int((self.cuts["reason"] == code).sum()) for name, code in REASONS.items()}
        return f"SomaExclusion({len(self.split_segments)} segments split, edges cut: {reasons})"


def fragment_means(fragments, channels) -> tuple[np.ndarray, np.ndarray]:
    """Per fragment of ``fragments`` ([x, y, z] labels, 0 = background) the mean of each of
    ``channels`` (a sequence of arrays of its shape, or a [C, x, y, z] array; as float32) over its voxels:
    ``(fragment ids, (n, C) means)``, e.g. the compartments head's probabilities summarised as
    :func:`soma_exclusion` takes them."""
    labels = np.asarray(fragments)
    channels = [np.asarray(c) for c in channels]
    for k, c in enumerate(channels):
        if c.shape != labels.shape:
            raise ValueError(f"channel {k} has shape {c.shape}, the fragments {labels.shape}")
    stats = label_statistics(labels, [np.asarray(c, np.float32) for c in channels])
    return stats.labels, stats.sums / stats.counts[:, None]


def _edge_scores(graph: RegionGraph, scoring: str, quantile: float) -> np.ndarray:
    if scoring == "mean":
        return graph.mean
    if scoring in ("max", "min"):
        return getattr(graph, scoring).astype(np.float64)
    if scoring == "quantile":
        return graph.quantile(quantile)
    raise ValueError(f"scoring must be mean, max, min or quantile, got {scoring!r}")


def _soma_seeds(somata: Somata, nodes, sizes, seed_share: float) -> np.ndarray:
    """Per node the soma it belongs to (0: none): fragments with at least ``seed_share`` of their
    voxels in a soma, and each soma's fragment of largest overlap; a fragment in two somata goes
    to the one it shares more voxels with."""
    c = somata.contacts
    seeds = np.zeros(len(nodes), np.uint64)
    if not len(c["soma"]) or not len(nodes):
        return seeds
    fragment = c["fragment"].astype(np.uint64)
    where, found = _positions(nodes, fragment)
    if not found.all():
        raise ValueError(
            f"soma {int(c['soma'][~found][0])} touches fragment {int(fragment[~found][0])}, which is "
            "not a node of the graph: were the somata detected on other fragments?"
        )
    voxels = c["voxels"].astype(np.float64)
    soma = c["soma"].astype(np.int64)
    best_of_soma = _best_per_group(soma, np.arange(len(soma)), (-voxels,), int(soma.max()))
    claimed = voxels >= seed_share * sizes[where]
    claimed[best_of_soma[best_of_soma >= 0]] = True
    # per fragment the soma it shares the most voxels with
    rows = _best_per_group(where + 1, np.flatnonzero(claimed), (-voxels,), len(nodes))
    rows = rows[rows >= 0]
    seeds[where[rows]] = c["soma"][rows].astype(np.uint64)
    return seeds


def _compartment_classes(compartments, nodes, confidence: float):
    """(axon, dendrite, soma) masks per node from ``compartments`` = (fragment ids, (n, 5) mean
    probabilities of axon, dendrite, spine, soma, glia) or None."""
    none = np.zeros(len(nodes), bool)
    if compartments is None:
        return none, none, none
    ids, probs = np.asarray(compartments[0], np.uint64), np.asarray(compartments[1], np.float64)
    if probs.ndim != 2 or probs.shape[0] != len(ids) or probs.shape[1] < 4:
        raise ValueError(
            "compartments must be (fragment ids, (n, 5) probabilities of axon, dendrite, spine, soma, glia), "
            f"got {len(ids)} ids and probabilities shaped {probs.shape}"
        )
    order = np.argsort(ids)
    ids, probs = ids[order], probs[order]
    at, known = _positions(ids, nodes)
    p = np.where(known[:, None], probs[at] if len(ids) else 0.0, 0.0)
    return p[:, 0] >= confidence, p[:, 1] + p[:, 2] >= confidence, p[:, 3] >= confidence


def _keys(a, b) -> np.ndarray:
    """A compact label per distinct pair (a[i], b[i])."""
    return unique_pairs(a, b)[1]


def soma_exclusion(
    graph: RegionGraph,
    mapping,
    somata: Somata,
    *,
    compartments=None,
    scoring: str = "mean",
    quantile: float = 0.5,
    seed_share: float = 0.5,
    confidence: float = 0.6,
    min_class_voxels: int = 0,
    fragment_positions=None,
) -> SomaExclusion:
    """Soma exclusion (see the module docs) on the region ``graph`` of the fragments, at the
    agglomeration state ``mapping`` (fragment -> segment: a dict or an array indexed by fragment
    id; fragments it does not name keep their id), with ``somata`` detected on those fragments.

    ``compartments``: (fragment ids, (n, 5) mean probabilities of axon, dendrite, spine, soma,
    glia per fragment, e.g. from the CNN's compartments head), enabling the axon-dendrite cut; a
    fragment is axonal (dendritic: dendrite + spine; somatic) where that probability reaches
    ``confidence``, and a branch is cut when it holds more than ``min_class_voxels`` of each.
    Edge scores: the contacts' boundary statistic ``scoring`` (as in agglomeration: low = one
    neuron). ``fragment_positions``: (n, 3) nm per graph node, for the cuts' positions."""
    nodes = np.asarray(graph.nodes, np.uint64)
    sizes = np.asarray(graph.sizes, np.float64)
    if not len(nodes):
        raise ValueError("soma_exclusion: the region graph has no fragments (an empty volume or block?)")
    before = _segments_of(nodes, mapping).astype(np.uint64)
    where, found = _positions(nodes, graph.edges.reshape(-1, 2))
    if not found.all():
        raise ValueError("soma_exclusion: every edge end of the graph must be one of its nodes")
    scores = _edge_scores(graph, scoring, quantile)
    u, v = where[:, 0], where[:, 1]
    inside = before[u] == before[v]
    seeds = _soma_seeds(somata, nodes, sizes, seed_share)

    # 1. segments with two or more somata: split between them
    pairs = unique_pairs(before[seeds > 0], seeds[seeds > 0])[0]
    segment_ids, counts = np.unique(pairs[:, 0], return_counts=True)
    multi = np.isin(before, segment_ids[counts >= 2])
    sel = inside & multi[u]
    pieces = seeded_cut(nodes, graph.edges[sel], scores[sel], np.where(multi, seeds, 0))
    state = _keys(before, np.where(multi, pieces, 0))

    # 2. branches holding both axon and dendrite: cut between the two
    axon, dendrite, somatic = _compartment_classes(compartments, nodes, confidence)
    somatic |= seeds > 0
    branch_edges, branches, branch_axon, branch_dendrite = _branches(
        graph, nodes, sizes, u, v, scores, state, somatic, axon, dendrite
    )
    least = max(min_class_voxels, 0)  # at least one voxel of each
    mixed = (branch_axon > least) & (branch_dendrite > least)
    in_mixed = mixed[branches] & ~somatic
    labels = np.where(in_mixed & axon, 2 * branches + 1, np.where(in_mixed & dendrite, 2 * branches + 2, 0))
    sel = branch_edges & in_mixed[u]
    parts = seeded_cut(nodes, graph.edges[sel], scores[sel], labels.astype(np.uint64))
    part = np.where(in_mixed, _positions(nodes, parts)[0] + 1, 0)
    # the piece of each cut branch with the most contact to the rest of its segment stays in it
    rest = (state[u] == state[v]) & (in_mixed[u] != in_mixed[v])
    piece_of = np.where(in_mixed[u[rest]], part[u[rest]], part[v[rest]])
    contact = np.bincount(piece_of, weights=graph.count[rest].astype(np.float64), minlength=len(nodes) + 1)
    # (of equal contact, the piece with the smaller fragment id)
    touching = np.flatnonzero(in_mixed & (contact[part] > 0))
    best = _best_per_group(branches + 1, touching, (-contact[part], part), len(nodes))
    staying_part = np.where(best >= 0, part[best], -1)
    stays = in_mixed & (part == staying_part[branches])
    state2 = _keys(state, np.where(in_mixed & ~stays, part, 0))
    state3 = _one_axon(graph, nodes, sizes, u, v, scores, state2, somatic, seeds, axon, dendrite, least)

    segments = _name_pieces(before, state3, sizes)
    cut = inside & (segments[u] != segments[v])
    cuts = {
        "segment": before[u[cut]],
        "u": nodes[u[cut]],
        "v": nodes[v[cut]],
        "score": scores[cut],
        "reason": np.select(
            [state[u[cut]] != state[v[cut]], state2[u[cut]] != state2[v[cut]]],
            [REASONS["somata"], REASONS["axon_dendrite"]],
            REASONS["second_axon"],
        ).astype(np.uint8),
    }
    if fragment_positions is not None:
        positions = np.asarray(fragment_positions, np.float64)
        if positions.shape != (len(nodes), 3):
            raise ValueError(f"fragment_positions must be ({len(nodes)}, 3), got {positions.shape}")
        cuts["position_nm"] = (positions[u[cut]] + positions[v[cut]]) / 2
    return SomaExclusion(nodes, before, segments, cuts)


def _branches(graph, nodes, sizes, u, v, scores, state, somatic, axon, dendrite):
    """The branches of ``state``'s pieces (components without their somatic fragments): the
    edges inside them, per node its branch (a node index) and per branch its axon and dendrite
    voxels."""
    inner = (state[u] == state[v]) & ~somatic[u] & ~somatic[v]
    branches = _positions(nodes, seeded_cut(nodes, graph.edges[inner], scores[inner],
                                            np.zeros(len(nodes), np.uint64)))[0]  # fmt: skip
    axon_voxels = np.bincount(branches, weights=sizes * (axon & ~somatic), minlength=len(nodes))
    dendrite_voxels = np.bincount(branches, weights=sizes * (dendrite & ~somatic), minlength=len(nodes))
    return inner, branches, axon_voxels, dendrite_voxels


def _one_axon(graph, nodes, sizes, u, v, scores, state, somatic, seeds, axon, dendrite, least):
    """``state`` with every axonal branch touching a soma cut off but the one with the lowest
    boundary score to it (ties: the branch with the first node)."""
    _, branches, axon_voxels, dendrite_voxels = _branches(
        graph, nodes, sizes, u, v, scores, state, somatic, axon, dendrite
    )
    n = len(nodes)
    axonal = (axon_voxels > least) & (axon_voxels > dendrite_voxels)
    holds_soma = np.zeros(int(state.max(initial=0)) + 1, bool)
    holds_soma[state[seeds > 0]] = True
    # contacts between a soma-holding piece's somatic fragments and its axonal branches
    touch = (state[u] == state[v]) & (somatic[u] != somatic[v]) & holds_soma[state[u]]
    branch_end = np.where(somatic[u], v, u)
    touch &= axonal[branches[branch_end]] & ~somatic[branch_end]
    if not touch.any():
        return state
    branch = branches[branch_end[touch]]
    weakest = np.full(n, np.inf)
    np.minimum.at(weakest, branch, scores[touch])
    touching = np.unique(branch)
    piece = state[touching]  # a branch lies in one piece
    keep = _best_per_group(
        piece + 1, np.arange(len(touching)), (weakest[touching], touching), int(piece.max()) + 1
    )
    cut_branch = np.zeros(n, bool)
    cut_branch[touching] = True
    cut_branch[touching[keep[keep >= 0]]] = False
    return _keys(state, np.where(cut_branch[branches] & ~somatic, branches + 1, 0))


def _name_pieces(before: np.ndarray, pieces: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Segment ids for ``pieces`` (compact labels refining ``before``): the largest piece of each
    segment keeps its id (ties: the piece with the first node), the others get ids after the
    largest of ``before``, in the order of their segment and first node."""
    out = before.copy()
    if not len(before):
        return out
    volume = np.bincount(pieces, weights=sizes)
    first = np.full(pieces.max() + 1, len(before))
    np.minimum.at(first, pieces, np.arange(len(before)))
    piece_segment = before[first]
    order = np.lexsort((first, -volume, piece_segment))  # per segment: largest piece first
    keeps = np.r_[True, piece_segment[order][1:] != piece_segment[order][:-1]]
    new_pieces = order[~keeps]
    new_pieces = new_pieces[np.lexsort((first[new_pieces], piece_segment[new_pieces]))]
    name = piece_segment.copy()
    name[new_pieces] = before.max() + 1 + np.arange(len(new_pieces), dtype=np.uint64)
    return name[pieces]
