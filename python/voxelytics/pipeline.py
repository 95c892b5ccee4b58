"""Compositions of the domain steps, which import each other but never this module.

``build_connectome``: the connectome of one agglomeration state in one call, e.g. again for the
state that soma exclusion corrected: one synapse detection (contacts per fragment) serves every
state. ``typed_partners``: its first step, the partners and their types."""

from __future__ import annotations

from .cells import cell_features, classify_cells
from .connectome import Connectome
from .synapses import assign_partners
from .synapses.types import SynapseTypeModel, classify_synapses, pretrained_type_model

__all__ = ["build_connectome", "typed_partners"]


def typed_partners(detections, mapping=None, synapse_types: SynapseTypeModel | str | None = "mouse"):
    """(partners of ``detections`` under ``mapping``, their types by ``synapse_types`` (a model,
    the name of a shipped one) or None when it is None)."""
    partners = assign_partners(detections, mapping)
    if synapse_types is None:
        return partners, None
    model = pretrained_type_model(synapse_types) if isinstance(synapse_types, str) else synapse_types
    return partners, classify_synapses(detections, partners, model)


def build_connectome(
    detections,
    mapping=None,
    *,
    synapse_types: SynapseTypeModel | str | None = "mouse",
    fragments=None,
    compartments=None,
    somata=None,
    cell_types="mouse",
    threads: int | None = None,
) -> Connectome:
    """Partners of ``detections`` (:func:`voxelytics.detect_synapses` with fragments) under the
    fragment -> segment ``mapping``, their types by ``synapse_types`` (a model, the name of a
    shipped one, or None: "unknown"), the :class:`Connectome`; with ``fragments`` (the [x, y, z]
    labels the detection saw) and ``cell_types`` (a model or a shipped name), every segment's
    cell type and class joined to it (:meth:`Connectome.with_cells`), from
    :func:`voxelytics.cell_features` with ``compartments`` ([5, x, y, z]) and ``somata``
    detected on those fragments, as the shipped cell model needs them."""
    partners, types = typed_partners(detections, mapping, synapse_types)
    connectome = Connectome.from_partners(detections, partners, types)
    if fragments is None or cell_types is None:
        return connectome
    features = cell_features(
        fragments, mapping, voxel_size=detections.voxel_size, compartments=compartments, somata=somata,
        partners=partners, synapse_types=types, threads=threads,
    )  # fmt: skip
    return connectome.with_cells(classify_cells(features, cell_types))
