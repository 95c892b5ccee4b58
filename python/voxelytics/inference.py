"""Run TorchScript models through LibTorch (the C++ path workers use), from Python.

>>> import numpy as np, torch, voxelytics.inference as vxi
>>> class Double(torch.nn.Module):
...     def forward(self, x):
...         return 2 * x
>>> torch.jit.script(Double()).save("/tmp/double.pt")
>>> model = vxi.TorchScriptModel("/tmp/double.pt")
>>> float(model(np.ones((1, 1, 2, 2, 2), np.float32)).sum())
16.0
"""

from __future__ import annotations

import json
import os

import numpy as np

from . import _core
from .core import Box, progress_bar, resolve_threads, shifted_slices

# The largest default output tile (x, y, z): for the shipped networks' 40 x 40 x 16 voxels of
# context, 64 x 64 x 32 tiles of a 128^3 block run about twice as fast as their 52 x 52 x 20
# training patch (which covers 128 with 156 x 156 x 140), and 1.2x as fast as 64^3 tiles or
# larger ones, whose activations outgrow the caches (benchmarks/bench_inference.py).
TILE = (64, 64, 32)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


__all__ = ["Predictor", "TorchScriptModel", "available", "predict_dataset"]


def available() -> bool:
    """Whether this build of voxelytics includes LibTorch inference."""
    return bool(_core.with_torch)


class TorchScriptModel:
    """A model saved with ``torch.jit.save``, loaded and run by LibTorch in C++.

    Inputs are converted to float32 (one copy if they are not float32 C-ordered already); the
    output comes back as a float32 numpy array. ``device`` is a torch device string;
    ``precision`` the weights' type ("float32", or "float16" / "bfloat16", mainly for GPUs);
    ``optimize``: frozen and optimised for inference (``torch.jit.optimize_for_inference``'s
    passes, done by LibTorch: about 1.4x faster convolutions on CPU, equal to float rounding).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        device: str = "cpu",
        *,
        optimize: bool = False,
        precision: str = "float32",
    ):
        if not available():
            raise RuntimeError("this voxelytics build has no LibTorch (built with VOXELYTICS_WITH_TORCH=OFF)")
        self._model = _core.inference.TorchScriptModel(os.fspath(path), device, optimize, precision)

    @property
    def path(self) -> str:
        return self._model.path

    @property
    def device(self) -> str:
        return self._model.device

    @property
    def precision(self) -> str:
        return self._model.precision

    @property
    def optimized(self) -> bool:
        return self._model.optimized

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._model.forward(np.ascontiguousarray(x, dtype=np.float32))

    def __repr__(self) -> str:
        return (f"TorchScriptModel({self.path!r}, device={self.device!r}, optimize={self.optimized}, "
                f"precision={self.precision!r})")  # fmt: skip


class Predictor:
    """A saved voxelytics model (``.pt`` + card ``.json``, see :mod:`voxelytics.models`) run tile
    by tile in C++: each output tile's input is its box grown by half the model's context, input
    beyond the volume is mirrored, and ``batch`` tiles go through the network at once. The card
    is checked against the model file (SHA-256) and gives the patch shapes, normalisation and
    channels.

    ``predict(volume)``: a uint8 or float32 volume [x, y, z] (or (c, x, y, z), channels first) ->
    (C, x, y, z) float32, channels fastest (Fortran order, the layout of a (C, x, y, z) mag); the
    same values as the model run on the whole (mirror-padded) volume at once.

    ``tile``: the output box of one network call, a multiple of the card's alignment on every
    axis. The network's convolutions are valid, so every tile costs its context as well
    (``card.output.context``, e.g. 40 x 40 x 16 voxels) and the result is the same for any tile:
    larger tiles waste less, to a point (caches). ``None`` (default): the predicted box split
    evenly into tiles of at most ``TILE`` = 64 x 64 x 32 voxels (a 128^3 block into 32 tiles:
    about twice as fast as the card's training patch).

    ``optimize`` (default on) and ``precision``: see :class:`TorchScriptModel`."""

    def __init__(
        self,
        model_path,
        device: str = "cpu",
        *,
        batch: int = 1,
        threads: int | None = None,
        optimize: bool = True,
        precision: str = "float32",
        tile=None,
    ):
        from .models.card import locate

        self.card, path = locate(model_path)
        self.model = TorchScriptModel(path, device, optimize=optimize, precision=precision)
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.batch, self.threads = int(batch), threads
        self.tile = None if tile is None else tuple(int(t) for t in tile)
        align = tuple(self.card.output.alignment)
        if self.tile is not None and (
            len(self.tile) != 3 or any(t < a or t % a for t, a in zip(self.tile, align))
        ):
            raise ValueError(
                f"tile must be three positive multiples of the model's alignment {align}, got {tile}"
            )

    def tile_for(self, shape) -> tuple[int, int, int]:
        """The output tile used for a box of ``shape``: ``tile``, or the box split evenly on each
        axis into the fewest pieces of at most ``TILE`` voxels, rounded up to the alignment."""
        if self.tile is not None:
            return self.tile
        out = []
        for n, a, most in zip(shape, self.card.output.alignment, TILE):
            piece = _ceil_div(int(n), _ceil_div(int(n), most))
            out.append(max(a, _ceil_div(piece, a) * a))
        return tuple(out)

    @property
    def context(self) -> tuple[int, int, int]:
        return tuple(self.card.output.context)

    def channels(self, head: str) -> list[int]:
        """The output channels of `head` (KeyError naming the model's heads if it has none)."""
        return self.card.head_channels(head)

    def predict(
        self, volume, *, offset=(0, 0, 0), shape=None, threads: int | None = None, augment: int = 1
    ) -> np.ndarray:
        """Predicts the box (``offset``, ``shape``; default: the whole volume) of `volume`.

        ``augment``: test-time augmentation, the mean of 1 (none), 2, 4, 8 (every flip and
        transpose in the section plane) or 16 (and flipped in z) predictions of the volume
        transformed, each transformed back: direction vectors turned along, affinities to a
        mirrored offset moved back to their own channel (where both voxels lie in the box)."""
        a = self._checked(volume)
        shape = a.shape[1:] if shape is None else tuple(int(s) for s in shape)
        offset = tuple(int(o) for o in offset)
        if augment not in _TRANSFORMS:
            raise ValueError(f"augment must be one of {sorted(_TRANSFORMS)}, got {augment}")
        if augment == 1:
            return self._predict(a, offset, shape, threads)
        total = np.zeros((len(self.card.output.channels),) + shape, np.float32, order="F")
        count = np.zeros_like(total)
        for flip, transpose in _TRANSFORMS[augment]:
            flipped = (slice(None),) + tuple(slice(None, None, -1) if f else slice(None) for f in flip)
            t_offset = [n - o - s if f else o for n, o, s, f in zip(a.shape[1:], offset, shape, flip)]
            t_shape = list(shape)
            t = a[flipped]
            if transpose:
                t, t_offset, t_shape = (
                    t.swapaxes(1, 2),
                    [t_offset[1], t_offset[0], t_offset[2]],
                    [t_shape[1], t_shape[0], t_shape[2]],
                )
            pred = self._predict(np.asfortranarray(t), t_offset, t_shape, threads)
            if transpose:
                pred = pred.swapaxes(1, 2)
            pred = pred[flipped]  # a flip is its own inverse
            self._accumulate(pred, flip, transpose, total, count)
        return np.asfortranarray(total / count)

    def _accumulate(self, pred, flip, transpose, total, count) -> None:
        """Adds a prediction transformed back to original axes to the running sums, each channel
        to the channel it estimates there."""
        offsets = {tuple(o): i for i, o in enumerate(c.offset for c in self.card.output.channels) if o}
        for k, c in enumerate(self.card.output.channels):
            if c.head == "direction":  # vector components: swapped and negated along
                axis = "xyz".index(c.name[-1])
                source = k + ({0: 1, 1: -1}.get(axis, 0) if transpose else 0)
                sign = -1.0 if flip[axis] else 1.0  # v = F P v_transformed
                total[k] += sign * pred[source]
                count[k] += 1
            elif c.offset is not None:  # pred[k] is the affinity to the offset seen in original axes
                o = list(c.offset)
                if transpose:
                    o[0], o[1] = o[1], o[0]
                seen = tuple(-v if f else v for v, f in zip(o, flip))
                if seen in offsets:
                    total[offsets[seen]] += pred[k]
                    count[offsets[seen]] += 1
                elif tuple(-v for v in seen) in offsets:  # aff(u, u - o_j) = channel j at u - o_j
                    j = offsets[tuple(-v for v in seen)]
                    here, there = shifted_slices(pred.shape[1:], tuple(-v for v in seen))
                    total[j][here] += pred[k][there]
                    count[j][here] += 1
            else:
                total[k] += pred[k]
                count[k] += 1

    def _checked(self, volume) -> np.ndarray:
        a = np.asarray(volume)
        if a.ndim == 3:
            a = a[np.newaxis]
        if a.ndim != 4:
            raise ValueError(f"volume must be [x, y, z] or (c, x, y, z), got shape {a.shape}")
        spec = self.card.input
        if a.shape[0] != spec.channels:
            raise ValueError(
                f"volume has {a.shape[0]} channel(s), the model {self.card.name!r} takes {spec.channels}"
            )
        if a.dtype not in (np.uint8, np.float32):
            raise TypeError(f"volume must be uint8 or float32, got {a.dtype}")
        if a.dtype == np.float32 and not np.isfinite(a).all():
            where = tuple(int(v) for v in np.argwhere(~np.isfinite(a))[0][1:])
            raise ValueError(f"volume has NaN or infinity at voxel {where}")
        return np.asfortranarray(a)

    def _predict(self, a, offset, shape, threads) -> np.ndarray:
        spec = self.card.input
        tile = self.tile_for(shape)
        return _core.inference.predict(
            self.model._model, a, tuple(t + c for t, c in zip(tile, self.context)), tile,
            tuple(self.card.output.alignment),
            len(self.card.output.channels), spec.normalization.mean, spec.normalization.std,
            tuple(int(o) for o in offset), shape, self.batch, resolve_threads(threads or self.threads),
        )  # fmt: skip

    def __repr__(self) -> str:
        model = self.model
        return (f"Predictor({self.card.name!r}, {model.path!r}, device={model.device!r}, batch={self.batch}, "
                f"tile={self.tile})")  # fmt: skip


# Test-time augmentations: (flips of x, y, z; x/y transpose), the first n of them for augment=n.
_DIHEDRAL = [((fx, fy, False), t) for t in (False, True) for fy in (False, True) for fx in (False, True)]
_ALL = _DIHEDRAL + [((fx, fy, True), t) for (fx, fy, _), t in _DIHEDRAL]
_TRANSFORMS = {n: _ALL[:n] for n in (1, 2, 4, 8, 16)}


def predict_dataset(
    dataset,
    layer: str,
    model,
    output,
    *,
    box=None,
    block_shape=(256, 256, 128),
    dtype="float32",
    device: str = "cpu",
    batch: int = 2,
    threads: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
):
    """Predicts ``model`` over ``layer`` (mag 1) of a webKnossos ``dataset`` (path or Dataset)
    into (C, x, y, z) color layers, block by block: memory holds one block and its context, not
    the dataset. The result equals one pass over the whole box (blocks are multiples of the
    model's alignment; input beyond the dataset is mirrored).

    ``output``: a layer name (every channel into one layer) or a mapping head -> layer name (each
    of those heads into its own layer, e.g. ``{"affinities": "affinities", "boundaries":
    "boundaries"}``; heads not named are not written). ``dtype``: ``"float32"`` or ``"uint8"``
    (probabilities quantised to 0..255; refused for heads without an activation, whose values are
    not probabilities). ``resume``: skip the blocks a previous run of the same model over the same
    box finished (recorded in ``<output layer>/.voxelytics-predict.json`` of each output layer,
    whose ``complete`` turns true at the end only). Returns the output Layer, or a dict head ->
    Layer when ``output`` is a mapping."""
    from .io import Dataset

    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    predictor = (
        model if isinstance(model, Predictor) else Predictor(model, device, batch=batch, threads=threads)
    )
    card = predictor.card
    source = ds.get_layer(layer)
    if source.num_channels != card.input.channels:
        raise ValueError(
            f"layer {layer!r} of {ds.path} has {source.num_channels} channel(s), model {card.name!r} takes "
            f"{card.input.channels}"
        )
    if source.dtype not in (np.uint8, np.float32):
        raise TypeError(
            f"layer {layer!r} of {ds.path} is {source.dtype}; the predictor takes uint8 or float32"
        )
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float32):
        raise ValueError(f"dtype must be float32 or uint8, got {dtype}")
    # (layer name, channel indices) per output layer
    if isinstance(output, str):
        targets = {output: list(range(len(card.output.channels)))}
    else:
        targets = {name: predictor.channels(head) for head, name in dict(output).items()}
        if len(set(targets)) != len(dict(output)):
            raise ValueError(f"output maps two heads to one layer: {dict(output)}")
    if dtype == np.uint8:
        for channels in targets.values():
            heads = sorted(
                {
                    card.output.channels[c].head
                    for c in channels
                    if card.output.channels[c].activation == "none"
                }
            )
            if heads:
                raise ValueError(
                    f"heads {heads} of model {card.name!r} have no activation: write them as float32"
                )
    bounds = source.bounding_box
    box = bounds if box is None else box
    if not bounds.contains_box(box):
        raise ValueError(f"box {box} is not inside layer {layer!r}'s bounding box {bounds}")
    align = np.array(card.output.alignment)
    block = np.maximum(np.array(block_shape) // align, 1) * align
    mags = {name: _output_mag(ds, name, len(channels), dtype, card) for name, channels in targets.items()}

    job = {"model_sha256": card.model_sha256, "layer": layer, "box": [list(box.topleft), list(box.size)],
           "block_shape": [int(b) for b in block], "dtype": dtype.name}  # fmt: skip
    markers = {name: os.path.join(ds.path, name, ".voxelytics-predict.json") for name in targets}
    # A block counts as done only if every output layer's marker records it.
    done = None
    for name, marker in markers.items():
        recorded = set()
        if resume and os.path.exists(marker):
            with open(marker) as f:
                state = json.load(f)
            if all(state.get(k) == v for k, v in {**job, "channels": targets[name]}.items()):
                recorded = {tuple(b) for b in state.get("done", [])}
        done = recorded if done is None else done & recorded

    def save_state(complete):
        for name, marker in markers.items():
            tmp = marker + ".tmp"
            with open(tmp, "w") as f:
                json.dump({**job, "channels": targets[name], "done": sorted(done), "complete": complete}, f)
            os.replace(tmp, marker)

    save_state(False)
    source_mag = source.get_mag(1)
    top, size = np.array(box.topleft), np.array(box.size)
    starts = [
        (x, y, z)
        for z in range(0, size[2], block[2])
        for y in range(0, size[1], block[1])
        for x in range(0, size[0], block[0])
    ]
    for start in progress_bar([s for s in starts if s not in done], progress, "predicting"):
        core = Box(tuple(int(v) for v in top + start), tuple(int(v) for v in np.minimum(block, size - start)))
        predict_block(predictor, source_mag, core, {mags[n]: c for n, c in targets.items()}, dtype, threads)
        done.add(tuple(int(v) for v in start))
        save_state(False)
    save_state(True)
    if isinstance(output, str):
        return ds.get_layer(output)
    return {head: ds.get_layer(name) for head, name in dict(output).items()}


def predict_block(predictor: Predictor, source_mag, core: Box, targets: dict, dtype, threads=None) -> None:
    """Predicts the box ``core`` of ``source_mag`` (its input grown by the model's context,
    clipped to the layer and mirrored beyond it) and writes channels ``targets[mag]`` into each
    output mag (as uint8 0..255 or float32 for ``dtype``)."""
    half = np.array(predictor.card.output.context) // 2
    top = np.array(core.topleft)
    outer = Box(tuple(int(v) for v in top - half), tuple(int(v) for v in np.array(core.size) + 2 * half))
    outer = outer.intersection(source_mag.layer.bounding_box)
    data = source_mag.read(outer, threads=threads)
    offset = tuple(int(v) for v in top - np.array(outer.topleft))
    pred = predictor.predict(data, offset=offset, shape=core.size, threads=threads)
    for mag, channels in targets.items():
        part = output_channels(pred, channels, dtype, threads=threads)
        mag.write(part, offset=core.topleft, threads=threads)


def output_channels(prediction: np.ndarray, channels, dtype=np.float32, *, threads=None) -> np.ndarray:
    """Channels ``channels`` of a (C, x, y, z) float32 prediction, channels fastest, as float32
    or as uint8 (probabilities quantised: ``clip(rint(p * 255), 0, 255)``), in one threaded pass.

    >>> import numpy as np, voxelytics.inference as vxi
    >>> p = np.asfortranarray(np.array([0.0, 0.5, 1.0, 0.002], np.float32).reshape(4, 1, 1, 1))
    >>> vxi.output_channels(p, [2, 1, 3], np.uint8)[:, 0, 0, 0]
    array([255, 128,   1], dtype=uint8)
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float32):
        raise ValueError(f"dtype must be float32 or uint8, got {dtype}")
    prediction = np.asfortranarray(prediction, np.float32)
    return _core.inference.output_channels(
        prediction, [int(c) for c in channels], dtype.name, resolve_threads(threads)
    )


def _output_mag(ds, name: str, channels: int, dtype, card, layout=None):
    """Mag 1 of output layer ``name``, created if missing; an existing one must match."""
    if name in ds.layers:
        out_layer = ds.get_layer(name)
        if out_layer.num_channels != channels or out_layer.dtype != dtype:
            raise ValueError(
                f"output layer {name!r} of {ds.path} exists with {out_layer.num_channels} channel(s) of "
                f"{out_layer.dtype}; model {card.name!r} writes {channels} of {dtype}"
            )
        return out_layer.get_mag(1) if (1, 1, 1) in out_layer.mags else out_layer.add_mag(1, **(layout or {}))
    return ds.add_layer(name, "color", dtype, num_channels=channels).add_mag(1, **(layout or {}))
