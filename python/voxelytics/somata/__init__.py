"""Somata and soma exclusion: somata detected from a soma channel or a segmentation's thick cores
(:mod:`.detection`), merge errors corrected on the agglomeration graph (:mod:`.exclusion`) and,
where one fragment floods two somata, before it (:mod:`.splitting`)."""

from .detection import Somata, detect_somata
from .exclusion import REASONS, SomaExclusion, fragment_means, soma_exclusion
from .splitting import split_fragments

__all__ = [
    "REASONS",
    "SomaExclusion",
    "Somata",
    "detect_somata",
    "fragment_means",
    "soma_exclusion",
    "split_fragments",
]
