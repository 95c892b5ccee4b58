"""Somata and soma exclusion: somata detected from a soma channel or a segmentation's thick cores
(:mod:`.detection`), merge errors corrected on the agglomeration graph (:mod:`.exclusion`) and,
where one fragment floods a soma and more, before it (:mod:`.splitting`).

The corrected state, from a CNN's predictions ``pred`` (affinities, soma, compartments)::

    fragments, _ = vx.affinity_watershed(affinities)
    fragments, parent = vx.somata.split_fragments(fragments, soma, voxel_size=vs)
    graph = vx.region_graph(fragments, affinities=affinities)
    state = vx.agglomerate(graph, [0.6]).mapping(0)
    somata = vx.detect_somata(soma, fragments=fragments, voxel_size=vs)
    corrected = vx.soma_exclusion(graph, state, somata,
                                  compartments=vx.somata.fragment_means(fragments, compartments))
    vx.write_agglomerates(layer, "corrected", graph, corrected.table(),
                          vx.agglomerates.fragment_positions(fragments, graph.nodes))
    connectome = vx.build_connectome(synapses, corrected.table(), fragments=fragments,
                                     compartments=compartments, somata=somata)
"""

from .detection import SomaDetection, Somata, detect_somata
from .exclusion import REASONS, SomaExclusion, fragment_means, soma_exclusion
from .splitting import split_fragments

__all__ = [
    "REASONS",
    "SomaDetection",
    "SomaExclusion",
    "Somata",
    "detect_somata",
    "fragment_means",
    "soma_exclusion",
    "split_fragments",
]
