// label_statistics: per nonzero label of a volume, its voxel count, the first and second moments
// of its voxel positions and the sum and maximum of value volumes over its voxels -- what shape
// and intensity features per segment (volume, centroid, covariance extents, mean and maximum
// depth, mean channel values) are made of, in one pass, without per-voxel temporaries.
//
// Positions are (offset + index) * voxel_size, offset in voxels (a block's place in its volume),
// so statistics of disjoint blocks add up (maxima: the larger) to the volume's. The moments are
// summed as integers (exact), the values per slab of a fixed number of planes, slabs merged in
// order: the result does not depend on the thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"

namespace vx::segmentation {

struct LabelStatistics {
    static constexpr int num_moments = 9;  // Σx, Σy, Σz, Σx², Σy², Σz², Σxy, Σxz, Σyz
    std::vector<std::uint64_t> labels;     // sorted, nonzero
    std::vector<std::uint64_t> counts;
    std::vector<double> moments;       // label-major: num_moments per label
    std::vector<double> sums, maxima;  // label-major: one per value volume
};

namespace detail {

__extension__ typedef __int128 Wide;  // exact sums of squared positions

// Σ i and Σ i² for i in [a, b).
inline Wide sum_range(Wide a, Wide b) { return (a + b - 1) * (b - a) / 2; }
inline Wide sum_squares_below(Wide m) { return m * (m - 1) * (2 * m - 1) / 6; }  // Σ i², i in [0, m)
inline Wide sum_squares_range(Wide a, Wide b) {
    // Σ i² over [a, b) with a possibly negative: split at 0.
    if (a >= 0) return sum_squares_below(b) - sum_squares_below(a);
    if (b <= 0) return sum_squares_range(-b + 1, -a + 1);
    return sum_squares_below(-a + 1) + sum_squares_below(b);
}

// One slab's statistics: labels in first-seen order, then sorted.
struct SlabStatistics {
    std::vector<std::uint64_t> labels, counts;
    std::vector<std::array<Wide, LabelStatistics::num_moments>> moments;
    std::vector<double> sums, maxima;
};

}  // namespace detail

template <class Label>
LabelStatistics label_statistics(View<const Label> labels, const std::vector<View<const float>>& values,
                                 std::array<double, 3> voxel_size, Vec3 offset, ThreadPool& pool) {
    for (const auto& v : values) require_same_shape(labels, v, "label_statistics: labels and values");
    const Vec3 shape = labels.shape();
    const std::size_t nv = values.size();
    constexpr std::int64_t slab_planes = 4;  // fixed: results must not depend on the thread count
    const std::int64_t num_slabs = (shape.z + slab_planes - 1) / slab_planes;
    std::vector<detail::SlabStatistics> slabs(static_cast<std::size_t>(num_slabs));
    parallel_for(pool, 0, num_slabs, [&](std::int64_t s) {
        detail::SlabStatistics& out = slabs[static_cast<std::size_t>(s)];
        std::unordered_map<std::uint64_t, std::size_t> index;
        auto slot = [&](std::uint64_t label) {
            const auto [it, added] = index.emplace(label, out.labels.size());
            if (added) {
                out.labels.push_back(label);
                out.counts.push_back(0);
                out.moments.push_back({});
                out.sums.resize(out.sums.size() + nv, 0.0);
                out.maxima.resize(out.maxima.size() + nv, -std::numeric_limits<double>::infinity());
            }
            return it->second;
        };
        const std::int64_t z_end = std::min(shape.z, (s + 1) * slab_planes);
        for (std::int64_t z = s * slab_planes; z < z_end; ++z)
            for (std::int64_t y = 0; y < shape.y; ++y) {
                const std::int64_t row = labels.offset(0, y, z);
                for (std::int64_t x = 0; x < shape.x;) {
                    const Label label = labels[row + x];
                    std::int64_t end = x + 1;
                    while (end < shape.x && labels[row + end] == label) ++end;
                    if (label != 0) {
                        const std::size_t k = slot(static_cast<std::uint64_t>(label));
                        const detail::Wide n = end - x, gx0 = offset.x + x, gx1 = offset.x + end, gy = offset.y + y,
                                           gz = offset.z + z;
                        const detail::Wide sx = detail::sum_range(gx0, gx1);
                        auto& m = out.moments[k];
                        m[0] += sx;
                        m[1] += n * gy;
                        m[2] += n * gz;
                        m[3] += detail::sum_squares_range(gx0, gx1);
                        m[4] += n * gy * gy;
                        m[5] += n * gz * gz;
                        m[6] += sx * gy;
                        m[7] += sx * gz;
                        m[8] += n * gy * gz;
                        out.counts[k] += static_cast<std::uint64_t>(end - x);
                        for (std::size_t v = 0; v < nv; ++v) {
                            double sum = 0, top = out.maxima[k * nv + v];
                            for (std::int64_t i = x; i < end; ++i) {
                                const double value = values[v][row + i];
                                sum += value;
                                top = std::max(top, value);
                            }
                            out.sums[k * nv + v] += sum;
                            out.maxima[k * nv + v] = top;
                        }
                    }
                    x = end;
                }
            }
    });
    // Merge the slabs in order (a label's floating-point sums always add up in the same order).
    std::unordered_map<std::uint64_t, std::size_t> index;
    std::vector<std::uint64_t> order_labels, counts;
    std::vector<std::array<detail::Wide, LabelStatistics::num_moments>> moments;
    std::vector<double> sums, maxima;
    for (const auto& slab : slabs)
        for (std::size_t i = 0; i < slab.labels.size(); ++i) {
            const auto [it, added] = index.emplace(slab.labels[i], order_labels.size());
            const std::size_t k = it->second;
            if (added) {
                order_labels.push_back(slab.labels[i]);
                counts.push_back(0);
                moments.push_back({});
                sums.resize(sums.size() + nv, 0.0);
                maxima.resize(maxima.size() + nv, -std::numeric_limits<double>::infinity());
            }
            counts[k] += slab.counts[i];
            for (int j = 0; j < LabelStatistics::num_moments; ++j) moments[k][j] += slab.moments[i][j];
            for (std::size_t v = 0; v < nv; ++v) {
                sums[k * nv + v] += slab.sums[i * nv + v];
                maxima[k * nv + v] = std::max(maxima[k * nv + v], slab.maxima[i * nv + v]);
            }
        }
    std::vector<std::size_t> order(order_labels.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return order_labels[a] < order_labels[b]; });
    const std::array<double, LabelStatistics::num_moments> scale{voxel_size[0],
                                                                 voxel_size[1],
                                                                 voxel_size[2],
                                                                 voxel_size[0] * voxel_size[0],
                                                                 voxel_size[1] * voxel_size[1],
                                                                 voxel_size[2] * voxel_size[2],
                                                                 voxel_size[0] * voxel_size[1],
                                                                 voxel_size[0] * voxel_size[2],
                                                                 voxel_size[1] * voxel_size[2]};
    LabelStatistics result;
    for (const std::size_t k : order) {
        result.labels.push_back(order_labels[k]);
        result.counts.push_back(counts[k]);
        for (int j = 0; j < LabelStatistics::num_moments; ++j)
            result.moments.push_back(static_cast<double>(moments[k][j]) * scale[static_cast<std::size_t>(j)]);
        for (std::size_t v = 0; v < nv; ++v) {
            result.sums.push_back(sums[k * nv + v]);
            result.maxima.push_back(maxima[k * nv + v]);
        }
    }
    return result;
}

}  // namespace vx::segmentation
