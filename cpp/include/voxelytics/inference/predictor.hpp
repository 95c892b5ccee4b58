// Tiled inference of a valid-convolution network (voxelytics.models): the output box is cut into
// tiles of the network's output patch, each tile's input is its box grown by half the network's
// context on every side, and tiles are run in batches. A valid network's output voxel depends
// only on its own input window, so the tiles give exactly what one pass over the whole volume
// would: nothing is blended. Input voxels outside the given input are mirrored back into it
// (symmetric: ..., 1, 0 | 0, 1, ... | n-1, n-2, ...), so any box, even one smaller than the
// field of view, gets a prediction.
//
// Layouts are voxelytics' (x fastest): input (c, x, y, z) with channels fastest, as Mag.read
// returns it; output (C, x, y, z), channels fastest, as a (C, x, y, z) mag stores it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include <torch/script.h>

#include "voxelytics/core/box.hpp"
#include "voxelytics/core/detail/reflect.hpp"
#include "voxelytics/core/errors.hpp"
#include "voxelytics/inference/torchscript.hpp"

namespace vx::inference {

/// What a model card says about tiling a model: its patch shapes ([x, y, z]), its channels, its
/// input normalisation (the network sees (value - mean) / std) and its alignment: the product
/// of its poolings per axis. Tiles start at multiples of it, so that every tile pools on the
/// same grid as one pass over the whole volume would (another phase gives other values).
struct PatchSpec {
    Vec3 input_patch, output_patch;
    std::int64_t in_channels = 1, out_channels = 1;
    float mean = 0.0f, std = 1.0f;
    Vec3 alignment{1, 1, 1};

    /// Input minus output shape; checked even on every axis.
    Vec3 context() const {
        const Vec3 c = input_patch - output_patch;
        if (c.x < 0 || c.y < 0 || c.z < 0 || c.x % 2 || c.y % 2 || c.z % 2 || output_patch.x < 1 ||
            output_patch.y < 1 || output_patch.z < 1 || alignment.x < 1 || alignment.y < 1 || alignment.z < 1 ||
            output_patch.x < alignment.x || output_patch.y < alignment.y || output_patch.z < alignment.z) {
            std::ostringstream msg;
            msg << "patch shapes: input " << input_patch << " minus output " << output_patch
                << " must be even and >= 0 on every axis, with an output of at least the alignment " << alignment;
            throw InvalidArgument(msg.str());
        }
        return c;
    }
};

namespace detail {

// Start positions, multiples of `align`, of tiles of `patch` voxels covering [0, n): a step of
// `patch` rounded down to the alignment, the last tile moved back as far as the alignment allows
// towards ending at n (tiles may overlap; a valid network gives the overlap the same values;
// a last tile may also reach past n, where its output is dropped).
// Needs patch >= align (else aligned tiles leave gaps).
inline std::vector<std::int64_t> tile_starts(std::int64_t n, std::int64_t patch, std::int64_t align) {
    const std::int64_t step = std::max(align, patch - patch % align);
    std::vector<std::int64_t> starts;
    std::int64_t s = 0;
    for (; s + patch < n; s += step) starts.push_back(s);
    const std::int64_t last = std::max<std::int64_t>(0, (n - patch + align - 1) / align * align);
    starts.push_back(std::min(last, s));
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    return starts;
}

}  // namespace detail

/// Predicts the output box (`out_offset` in input voxel coordinates, may lie partly or wholly
/// outside the input, and `out_shape`) from `input` ((c, x, y, z), channels fastest, of
/// `in_shape` voxels) into `out` ((C, x, y, z) float32, channels fastest, out_shape voxels),
/// running `batch` tiles per forward pass. Throws InvalidArgument if the model's output has
/// other channels or another shape than `spec` says, or contains NaN or infinity.
template <class T>
void predict(TorchScriptModel& model, const PatchSpec& spec, const T* input, Vec3 in_shape, Vec3 out_offset,
             Vec3 out_shape, float* out, std::int64_t batch = 1) {
    const Vec3 context = spec.context();
    if (in_shape.x < 1 || in_shape.y < 1 || in_shape.z < 1) throw InvalidArgument("predict: the input is empty");
    if (out_shape.x < 0 || out_shape.y < 0 || out_shape.z < 0) throw InvalidArgument("predict: negative output shape");
    if (batch < 1) throw InvalidArgument("predict: batch must be >= 1");
    if (out_shape.prod() == 0) return;
    const Vec3 half{context.x / 2, context.y / 2, context.z / 2};
    const Vec3 ip = spec.input_patch, op = spec.output_patch;
    const std::int64_t C = spec.in_channels, K = spec.out_channels;

    std::vector<Vec3> tiles;
    const Vec3 a = spec.alignment;
    for (const std::int64_t z : detail::tile_starts(out_shape.z, op.z, a.z))
        for (const std::int64_t y : detail::tile_starts(out_shape.y, op.y, a.y))
            for (const std::int64_t x : detail::tile_starts(out_shape.x, op.x, a.x)) tiles.push_back({x, y, z});

    const float scale = 1.0f / spec.std;
    std::vector<std::int64_t> xs(static_cast<std::size_t>(ip.x)), ys(static_cast<std::size_t>(ip.y)),
        zs(static_cast<std::size_t>(ip.z));
    for (std::size_t first = 0; first < tiles.size(); first += static_cast<std::size_t>(batch)) {
        const std::size_t count = std::min<std::size_t>(static_cast<std::size_t>(batch), tiles.size() - first);
        torch::Tensor x = torch::empty({static_cast<std::int64_t>(count), C, ip.z, ip.y, ip.x}, torch::kFloat32);
        float* dst = x.data_ptr<float>();
        for (std::size_t b = 0; b < count; ++b) {
            const Vec3 origin = out_offset + tiles[first + b] - half;  // the tile's input, in input voxels
            for (std::int64_t i = 0; i < ip.x; ++i)
                xs[static_cast<std::size_t>(i)] = vx::detail::reflect(origin.x + i, in_shape.x);
            for (std::int64_t i = 0; i < ip.y; ++i)
                ys[static_cast<std::size_t>(i)] = vx::detail::reflect(origin.y + i, in_shape.y);
            for (std::int64_t i = 0; i < ip.z; ++i)
                zs[static_cast<std::size_t>(i)] = vx::detail::reflect(origin.z + i, in_shape.z);
            for (std::int64_t c = 0; c < C; ++c)
                for (std::int64_t z = 0; z < ip.z; ++z)
                    for (std::int64_t y = 0; y < ip.y; ++y) {
                        const T* row = input + C * in_shape.x *
                                                   (ys[static_cast<std::size_t>(y)] +
                                                    in_shape.y * zs[static_cast<std::size_t>(z)]);
                        for (std::int64_t i = 0; i < ip.x; ++i)
                            *dst++ =
                                (static_cast<float>(row[C * xs[static_cast<std::size_t>(i)] + c]) - spec.mean) * scale;
                    }
        }
        const torch::Tensor y = model.forward(x).to(torch::kFloat32).contiguous();
        if (y.dim() != 5 || y.size(0) != static_cast<std::int64_t>(count) || y.size(1) != K || y.size(2) != op.z ||
            y.size(3) != op.y || y.size(4) != op.x) {
            std::ostringstream msg;
            msg << "model " << model.path() << " returned shape (";
            for (std::int64_t d = 0; d < y.dim(); ++d) msg << (d ? ", " : "") << y.size(d);
            msg << ") for " << count << " input patch(es) " << ip << "; its card says " << K << " channels of " << op
                << " (x, y, z)";
            throw InvalidArgument(msg.str());
        }
        const float* res = y.data_ptr<float>();
        const std::int64_t plane = op.x * op.y * op.z;
        for (std::size_t b = 0; b < count; ++b) {
            const Vec3 t = tiles[first + b];
            const float* tile = res + static_cast<std::int64_t>(b) * K * plane;
            const Vec3 n{std::min(op.x, out_shape.x - t.x), std::min(op.y, out_shape.y - t.y),
                         std::min(op.z, out_shape.z - t.z)};
            for (std::int64_t z = 0; z < n.z; ++z)
                for (std::int64_t yy = 0; yy < n.y; ++yy)
                    for (std::int64_t i = 0; i < n.x; ++i) {
                        float* o = out + K * (t.x + i + out_shape.x * (t.y + yy + out_shape.y * (t.z + z)));
                        const float* src = tile + i + op.x * (yy + op.y * z);
                        for (std::int64_t k = 0; k < K; ++k) {
                            const float v = src[k * plane];
                            if (!std::isfinite(v)) {
                                std::ostringstream msg;
                                msg << "model " << model.path() << " produced " << v << " in channel " << k
                                    << " at output voxel " << Vec3{t.x + i, t.y + yy, t.z + z};
                                throw InvalidArgument(msg.str());
                            }
                            o[k] = v;
                        }
                    }
        }
    }
}

}  // namespace vx::inference
