// distance_height: the height map whose steepest-ascent basins are the distance watershed's
// fragments (Python: DistanceWatershed). Voxels with boundary < threshold are inside cells and
// get their distance to the nearest boundary voxel, capped at `cap` and Gaussian-smoothed;
// boundary voxels get -(their distance to the nearest inside voxel, capped, + boundary_weight x
// their boundary value), so they run downhill to the nearest cell and cuts follow the membranes.
//
// One capped transform of two labels (1 inside, 2 boundary) gives both distances; the cap keeps
// the transform's windows short and a block's halo small (a fragment never needs to see farther).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"
#include "voxelytics/filters/gaussian.hpp"
#include "voxelytics/segmentation/distance_transform.hpp"

namespace vx::segmentation {

/// `sigma` (x, y, z) in voxels (0: no smoothing along that axis); `voxel_size` and `cap` in the
/// same units as each other. Gaussian as in filters::gaussian_filter (truncate 4, reflect).
inline void distance_height(View<const float> boundary, View<float> out, float threshold,
                            std::array<double, 3> voxel_size, double cap, std::array<double, 3> sigma,
                            float boundary_weight, ThreadPool& pool) {
    require_same_shape(boundary, View<const float>(out), "distance_height: boundary and out");
    const std::int64_t n = boundary.size();
    std::vector<std::uint8_t> labels(static_cast<std::size_t>(n));
    parallel_for(pool, 0, n,
                 [&](std::int64_t i) { labels[static_cast<std::size_t>(i)] = boundary[i] < threshold ? 1 : 2; });
    // Both distances into `out` first; it becomes the height at the end.
    distance_transform(View<const std::uint8_t>(labels.data(), boundary.shape()), out, voxel_size, false,
                       Border::same_label, pool, cap);
    // The smoothed inside distance (0 on the boundary) ...
    std::vector<float> inner(static_cast<std::size_t>(n)), scratch;
    parallel_for(pool, 0, n, [&](std::int64_t i) {
        inner[static_cast<std::size_t>(i)] = labels[static_cast<std::size_t>(i)] == 1 ? out[i] : 0.0f;
    });
    const View<float> smooth(inner.data(), boundary.shape());
    filters::gaussian_filter(smooth, smooth, sigma, 4.0, pool, scratch);
    // ... inside cells, the negated distance to them elsewhere.
    parallel_for(pool, 0, n, [&](std::int64_t i) {
        out[i] = labels[static_cast<std::size_t>(i)] == 1 ? smooth[i] : -(out[i] + boundary_weight * boundary[i]);
    });
}

}  // namespace vx::segmentation
