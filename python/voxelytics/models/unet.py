"""A 3D U-Net with valid convolutions for anisotropic EM, and named output heads.

Valid (unpadded) convolutions make every output voxel a function of a fixed input window only,
so a volume predicted tile by tile equals the volume predicted whole, with no blending seams:
each tile's input is its output box grown by the model's ``context`` (input minus output shape).

Axes: shapes in this module are [x, y, z] like the rest of voxelytics; tensors are
(N, C, z, y, x), PyTorch's (N, C, D, H, W) applied to the C-ordered view ``volume.T`` of an
[x, y, z] Fortran array. When z is coarse (e.g. 11 x 11 x 30 nm), the first
``anisotropic_levels`` levels convolve and pool in-plane only (kernels 3 x 3 x 1, pooling
2 x 2 x 1), after which voxels are about isotropic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

ACTIVATIONS = ("sigmoid", "softmax", "none")


@dataclass(frozen=True)
class Head:
    """One named output: ``channels`` channels with one activation (softmax: over the head's
    channels, e.g. a class map); ``names`` label the channels (default ``name0``, ``name1``, ...);
    ``offsets``: for an affinity head, each channel's neighbour offset [x, y, z]."""

    name: str
    channels: int
    activation: str = "sigmoid"
    names: tuple[str, ...] = ()
    offsets: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self):
        if self.channels < 1:
            raise ValueError(f"head {self.name!r}: channels must be >= 1, got {self.channels}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"head {self.name!r}: activation must be one of {ACTIVATIONS}, got {self.activation!r}"
            )
        if self.names and len(self.names) != self.channels:
            raise ValueError(f"head {self.name!r}: {len(self.names)} names for {self.channels} channels")
        if self.offsets and len(self.offsets) != self.channels:
            raise ValueError(f"head {self.name!r}: {len(self.offsets)} offsets for {self.channels} channels")

    def channel_names(self) -> tuple[str, ...]:
        return self.names or tuple(f"{self.name}{i}" for i in range(self.channels))


@dataclass(frozen=True)
class UNetConfig:
    """Architecture: ``width`` features at the top level, times ``growth`` per level down,
    ``depth`` poolings; the first ``anisotropic_levels`` levels stay in-plane."""

    in_channels: int = 1
    width: int = 12
    depth: int = 2
    growth: int = 2
    anisotropic_levels: int = 1
    heads: tuple[Head, ...] = field(default_factory=lambda: (Head("boundaries", 1),))

    def __post_init__(self):
        if self.in_channels < 1 or self.width < 1 or self.depth < 0 or self.growth < 1:
            raise ValueError(f"invalid U-Net configuration {self}")
        if not 0 <= self.anisotropic_levels <= self.depth + 1:
            raise ValueError(f"anisotropic_levels must be in 0..depth+1, got {self.anisotropic_levels}")
        if not self.heads or len({h.name for h in self.heads}) != len(self.heads):
            raise ValueError("a model needs at least one head, with distinct names")

    @property
    def out_channels(self) -> int:
        return sum(h.channels for h in self.heads)

    def features(self, level: int) -> int:
        return self.width * self.growth**level

    def kernel(self, level: int) -> tuple[int, int, int]:
        """Convolution kernel at `level`, [x, y, z]."""
        return (3, 3, 1) if level < self.anisotropic_levels else (3, 3, 3)

    def pooling(self, level: int) -> tuple[int, int, int]:
        """Pooling from `level` to `level` + 1, [x, y, z]."""
        return (2, 2, 1) if level < self.anisotropic_levels else (2, 2, 2)

    def alignment(self) -> tuple[int, int, int]:
        """The product of the poolings per axis: a tile's input must start at a multiple of it
        (relative to the whole volume's) to pool on the same grid and give the same values."""
        out = [1, 1, 1]
        for level in range(self.depth):
            out = [a * p for a, p in zip(out, self.pooling(level))]
        return tuple(out)

    def output_shape(self, input_shape) -> tuple[int, int, int]:
        """The output shape for an input of `input_shape` ([x, y, z]); ValueError if the input
        does not fit the poolings (see :meth:`valid_input_shape`) or leaves no output."""
        return tuple(self._axis_output(int(s), a) for a, s in enumerate(input_shape))

    def valid_input_shape(self, at_least) -> tuple[int, int, int]:
        """The smallest input shape >= `at_least` (per axis) that gives a valid output."""
        shape = []
        for a, s in enumerate(at_least):
            s = max(int(s), 1)
            while self._axis_output(s, a, check=False) is None:
                s += 1
            shape.append(s)
        return tuple(shape)

    def context(self) -> tuple[int, int, int]:
        """Input minus output shape per axis (the same for every valid input)."""
        probe = self.valid_input_shape((1, 1, 1))
        return tuple(i - o for i, o in zip(probe, self.output_shape(probe)))

    def _axis_output(self, size: int, axis: int, check: bool = True):
        def fail(why):
            if check:
                raise ValueError(f"input size {size} on axis {'xyz'[axis]} {why}")
            return None

        s = size
        for level in range(self.depth):
            s -= 2 * (self.kernel(level)[axis] - 1)
            f = self.pooling(level)[axis]
            if s < 1:
                return fail("is smaller than the U-Net's field of view")
            if s % f:
                return fail(
                    f"does not fit the U-Net (level {level} would have {s} voxels, not a multiple of {f})"
                )
            s //= f
        s -= 2 * (self.kernel(self.depth)[axis] - 1)
        if s < 1:
            return fail("is smaller than the U-Net's field of view")
        for level in reversed(range(self.depth)):
            s = s * self.pooling(level)[axis] - 2 * (self.kernel(level)[axis] - 1)
            if s < 1:
                return fail("is smaller than the U-Net's field of view")
        return s


def _zyx(v) -> tuple[int, int, int]:
    return tuple(reversed(v))


class _ConvBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel):
        super().__init__(
            nn.Conv3d(c_in, c_out, _zyx(kernel)),
            nn.ReLU(inplace=True),
            nn.Conv3d(c_out, c_out, _zyx(kernel)),
            nn.ReLU(inplace=True),
        )


def _center_crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    dz, dy, dx = (x.shape[i] - like.shape[i] for i in (2, 3, 4))
    return x[
        :,
        :,
        dz // 2 : dz // 2 + like.shape[2],
        dy // 2 : dy // 2 + like.shape[3],
        dx // 2 : dx // 2 + like.shape[4],
    ]


class _Up(nn.Module):
    """Upsampling by the level's pooling factor, then the level's convolutions on the centre of
    the skip connection concatenated with it."""

    def __init__(self, c_in: int, c_out: int, factor, kernel):
        super().__init__()
        self.up = nn.ConvTranspose3d(c_in, c_out, _zyx(factor), stride=_zyx(factor))
        self.block = _ConvBlock(2 * c_out, c_out, kernel)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.block(torch.cat([_center_crop(skip, x), x], dim=1))


class UNet(nn.Module):
    """The U-Net of a :class:`UNetConfig`. ``forward`` takes (N, C, z, y, x) float32 and returns
    (N, out_channels, z', y', x'): every head's channels, in order, after its activation."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config
        self.down = nn.ModuleList()
        self.pools = nn.ModuleList()
        c_in = c.in_channels
        for level in range(c.depth):
            self.down.append(_ConvBlock(c_in, c.features(level), c.kernel(level)))
            self.pools.append(nn.MaxPool3d(_zyx(c.pooling(level))))
            c_in = c.features(level)
        self.bottom = _ConvBlock(c_in, c.features(c.depth), c.kernel(c.depth))
        self.ups = nn.ModuleList(
            _Up(c.features(level + 1), c.features(level), c.pooling(level), c.kernel(level))
            for level in reversed(range(c.depth))
        )
        self.out = nn.Conv3d(c.features(0), c.out_channels, 1)
        spans, first = [], 0  # (first channel, count, activation index) per head
        for h in c.heads:
            spans.append((first, h.channels, ACTIVATIONS.index(h.activation)))
            first += h.channels
        self.spans = spans
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output before the heads' activations (what the training losses take)."""
        skips: list[torch.Tensor] = []
        for block, pool in zip(self.down, self.pools):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottom(x)
        for i, up in enumerate(self.ups):
            x = up(x, skips[len(skips) - 1 - i])
        return self.out(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.logits(x)
        parts: list[torch.Tensor] = []
        for first, count, activation in self.spans:
            part = y[:, first : first + count]
            if activation == 0:
                part = torch.sigmoid(part)
            elif activation == 1:
                part = torch.softmax(part, dim=1)
            parts.append(part)
        return torch.cat(parts, dim=1)
