// output_channels: some channels of a prediction, as stored. A prediction is (C, x, y, z) float32
// with channels fastest; an output layer takes a subset of them, as float32 or as uint8
// probabilities quantised to 0..255 (round half to even of value * 255, clipped: numpy's
// clip(rint(p * 255), 0, 255)). One threaded pass instead of a gather and four numpy passes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"

namespace vx::inference {

template <class Out>
Out stored_value(float p) {
    if constexpr (std::is_same_v<Out, float>) {
        return p;
    } else {
        return static_cast<Out>(std::min(std::max(std::nearbyint(p * 255.0f), 0.0f), 255.0f));
    }
}

/// out[k, i] = the stored value of in[channels[k], i] for i in [0, voxels): `in` holds
/// `num_channels` values per voxel, `out` channels.size() (both channels fastest).
template <class Out>
void output_channels(const float* in, std::int64_t num_channels, std::int64_t voxels,
                     const std::vector<std::int64_t>& channels, Out* out, ThreadPool& pool) {
    for (const std::int64_t c : channels)
        if (c < 0 || c >= num_channels)
            throw InvalidArgument("output_channels: channel " + std::to_string(c) + " of a prediction with " +
                                  std::to_string(num_channels));
    const auto k = static_cast<std::int64_t>(channels.size());
    constexpr std::int64_t chunk = 1 << 14;  // voxels per task
    parallel_for(pool, 0, (voxels + chunk - 1) / chunk, [&](std::int64_t part) {
        const std::int64_t end = std::min(voxels, (part + 1) * chunk);
        for (std::int64_t i = part * chunk; i < end; ++i)
            for (std::int64_t j = 0; j < k; ++j)
                out[i * k + j] = stored_value<Out>(in[i * num_channels + channels[static_cast<std::size_t>(j)]]);
    });
}

}  // namespace vx::inference
