// Downsampling kernels for building mags: each output voxel summarises a cell of
// factor.x * factor.y * factor.z input voxels, per channel. `mean` (color layers) averages,
// rounding to nearest for integer types; `mode` (segmentation layers) takes the most frequent
// value, ties going to the smallest, so ids are never invented. Arrays are (c, x, y, z) in
// Fortran order; the input extent must be a multiple of the factor on each axis.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/vec3.hpp"

namespace vx::io {

enum class Downsampling { mean, mode };

/// `in` has `channels` x in_size (x, y, z) elements; `out` gets channels x in_size / factor.
template <class T>
void downsample(const T* in, std::int64_t channels, Vec3 in_size, Vec3 factor, Downsampling method, T* out,
                ThreadPool& pool) {
    if (factor.x < 1 || factor.y < 1 || factor.z < 1) throw InvalidArgument("downsampling factors must be >= 1");
    if (in_size.x % factor.x || in_size.y % factor.y || in_size.z % factor.z)
        throw InvalidArgument("downsample: input size is not a multiple of the factor");
    const Vec3 out_size = floor_div(in_size, factor);
    const std::int64_t cell = factor.prod();
    parallel_for(pool, 0, out_size.z, [&](std::int64_t oz) {
        std::vector<T> values(static_cast<std::size_t>(cell));
        for (std::int64_t oy = 0; oy < out_size.y; ++oy)
            for (std::int64_t ox = 0; ox < out_size.x; ++ox)
                for (std::int64_t c = 0; c < channels; ++c) {
                    std::size_t k = 0;
                    for (std::int64_t dz = 0; dz < factor.z; ++dz)
                        for (std::int64_t dy = 0; dy < factor.y; ++dy)
                            for (std::int64_t dx = 0; dx < factor.x; ++dx) {
                                const std::int64_t x = ox * factor.x + dx, y = oy * factor.y + dy,
                                                   z = oz * factor.z + dz;
                                values[k++] = in[c + channels * (x + in_size.x * (y + in_size.y * z))];
                            }
                    T result;
                    if (method == Downsampling::mean) {
                        double sum = 0;
                        for (T v : values) sum += static_cast<double>(v);
                        const double mean = sum / static_cast<double>(cell);
                        result =
                            std::is_floating_point_v<T> ? static_cast<T>(mean) : static_cast<T>(std::floor(mean + 0.5));
                    } else {
                        std::sort(values.begin(), values.end());
                        result = values[0];
                        std::size_t best = 0;
                        for (std::size_t i = 0; i < values.size();) {
                            std::size_t j = i;
                            while (j < values.size() && values[j] == values[i]) ++j;
                            if (j - i > best) {  // strictly more: ties keep the smaller value
                                best = j - i;
                                result = values[i];
                            }
                            i = j;
                        }
                    }
                    out[c + channels * (ox + out_size.x * (oy + out_size.y * oz))] = result;
                }
    });
}

/// The next mag when building a pyramid for `voxel_size` (nm) from `mag`: axes whose physical
/// voxel size is clearly below the largest (by 1.5x or more) are halved first, so anisotropic
/// data (e.g. 11 x 11 x 25 nm) goes 1 -> 2-2-1 -> 4-4-2 and becomes near-isotropic.
inline Vec3 next_mag(Vec3 mag, const double voxel_size[3]) {
    double physical[3], largest = 0;
    for (std::size_t d = 0; d < 3; ++d) {
        physical[d] = voxel_size[d] * static_cast<double>(mag[d]);
        largest = std::max(largest, physical[d]);
    }
    Vec3 factor{1, 1, 1};
    bool any = false;
    for (std::size_t d = 0; d < 3; ++d)
        if (physical[d] * 1.5 <= largest) {
            factor[d] = 2;
            any = true;
        }
    if (!any) factor = {2, 2, 2};
    return mag * factor;
}

}  // namespace vx::io
