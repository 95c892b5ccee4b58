// steepest_ascent_basins: fragments as the basins of a steepest-ascent forest. Every voxel is
// linked to the face neighbour it climbs to (a Rule says which); voxels that climb nowhere are
// peaks, and neighbouring peaks on one level form one plateau. The connected components of these
// links are the fragments: one per maximum (or plateau of maxima), holding every voxel whose
// ascent ends there.
//
// Why this and not a priority flood: a voxel's link depends only on values within a few voxels
// of it, so a block that reads a small halo links its core exactly as the whole volume would.
// Each block labels its core on its own and reports which voxels on its upper faces link across
// them; joining those links gives the whole volume's fragments, whatever the block shape.
//
// A rule gives active(i, p) (false: label 0), climb(i, p) (the region index voxel i at p climbs
// to, -1 for a peak) and level(i, direction, j) (peaks i and j, face neighbours, lie on one
// plateau). Each rule sees the region it was given as the whole world:
//   HeightRule    climb to the highest neighbour if it is higher (first in -x,+x,-y,+y,-z,+z
//                 order on ties); plateau = equal height. Needs a halo of 2 voxels.
//   AffinityRule  Zlateski & Seung's watershed on affinities: an edge's weight is its affinity
//                 capped at `high`, edges below `low` are cut; a voxel climbs along its strongest
//                 edge to a neighbour whose own strongest edge is stronger; voxels with no edge
//                 left are in no fragment (label 0); plateau = strongest edges of equal weight
//                 (everything joined by affinities >= high is one plateau). Needs a halo of 3.
//                 Refuses NaN.
//
// Cost: links are found, and joined within z-slabs, in parallel; the slab faces and the
// numbering (by first voxel, in scan order) are one sequential pass each. Results never depend
// on the thread count (union-find roots are the smallest index).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "voxelytics/core/affinity_view.hpp"
#include "voxelytics/core/box.hpp"
#include "voxelytics/core/detail/huge_page_allocator.hpp"
#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"
#include "voxelytics/graph/union_find.hpp"

namespace vx::segmentation {

namespace detail {

/// The face neighbours of a voxel in a box of shape `s`, in the order -x, +x, -y, +y, -z, +z;
/// f(direction, neighbour index) for those inside. (Always inlined: it runs per voxel, and a call
/// costs more than the six comparisons.)
template <class F>
[[gnu::always_inline]] inline void for_each_face_neighbour(const Vec3& s, std::int64_t i, const Vec3& p, F&& f) {
    const std::int64_t plane = s.x * s.y;
    if (p.x > 0) f(0, i - 1);
    if (p.x + 1 < s.x) f(1, i + 1);
    if (p.y > 0) f(2, i - s.x);
    if (p.y + 1 < s.y) f(3, i + s.x);
    if (p.z > 0) f(4, i - plane);
    if (p.z + 1 < s.z) f(5, i + plane);
}

inline Vec3 unravel(const Vec3& s, std::int64_t i) { return {i % s.x, (i / s.x) % s.y, i / (s.x * s.y)}; }

/// "<subject> NaN at voxel (x, y, z)" for voxel i of a box of shape s.
inline InvalidArgument nan_error(const std::string& subject, const Vec3& s, std::int64_t i) {
    const Vec3 p = unravel(s, i);
    std::ostringstream msg;
    msg << subject << " NaN at voxel (" << p.x << ", " << p.y << ", " << p.z << ")";
    return InvalidArgument(msg.str());
}

}  // namespace detail

struct HeightRule {
    View<const float> height;

    Vec3 shape() const { return height.shape(); }
    bool active(std::int64_t, const Vec3&) const { return true; }
    std::int64_t climb(std::int64_t i, const Vec3& p) const {
        std::int64_t best = -1;
        float best_height = height[i];
        detail::for_each_face_neighbour(height.shape(), i, p, [&](int, std::int64_t j) {
            if (height[j] > best_height) best_height = height[j], best = j;
        });
        return best;
    }
    bool level(std::int64_t i, int, std::int64_t j) const { return height[i] == height[j]; }
};

/// Affinities: channel c at voxel v links v and v - e_c (see AffinityView).
class AffinityRule {
public:
    AffinityRule(AffinityView<float> affinity, float low, float high, ThreadPool& pool)
        : affinity_(affinity), low_(low), high_(high), strongest_(static_cast<std::size_t>(affinity.size())) {
        const Vec3 s = shape();
        // Each value is read here anyway: the NaN check costs nothing extra (a NaN would
        // otherwise pass for a cut edge).
        std::vector<std::int64_t> nan_at(pool.size(), -1);
        parallel_for(
            pool, 0, std::int64_t(pool.size()),
            [&](std::int64_t t) {
                const std::int64_t z0 = s.z * t / std::int64_t(pool.size()),
                                   z1 = s.z * (t + 1) / std::int64_t(pool.size());
                for (std::int64_t z = z0, i = z0 * s.x * s.y; z < z1; ++z)
                    for (std::int64_t y = 0; y < s.y; ++y)
                        for (std::int64_t x = 0; x < s.x; ++x, ++i) {
                            float m = -1.0f;
                            detail::for_each_face_neighbour(
                                s, i, {x, y, z}, [&](int d, std::int64_t j) { m = std::max(m, weight(i, d, j)); });
                            strongest_[static_cast<std::size_t>(i)] = m;
                            if (std::isnan(affinity_(0, i) + affinity_(1, i) + affinity_(2, i)) &&
                                nan_at[std::size_t(t)] < 0)
                                nan_at[std::size_t(t)] = i;
                        }
            },
            std::int64_t(pool.size()));
        for (const std::int64_t i : nan_at)
            if (i >= 0) throw detail::nan_error("affinities hold", s, i);
    }

    Vec3 shape() const { return affinity_.shape; }
    bool active(std::int64_t i, const Vec3&) const { return strongest(i) >= 0; }
    std::int64_t climb(std::int64_t i, const Vec3& p) const {
        const float m = strongest(i);
        std::int64_t target = -1;
        detail::for_each_face_neighbour(shape(), i, p, [&](int d, std::int64_t j) {
            if (target < 0 && m >= 0 && strongest(j) > m && weight(i, d, j) == m) target = j;
        });
        return target;
    }
    bool level(std::int64_t i, int direction, std::int64_t j) const {
        const float m = strongest(i);
        return m >= 0 && strongest(j) == m && weight(i, direction, j) == m;
    }

private:
    /// The weight of the edge from i to its neighbour in `direction`, or -1 where it is cut.
    float weight(std::int64_t i, int direction, std::int64_t j) const {
        const float a = affinity_(direction / 2, (direction & 1) ? j : i);
        return a >= low_ ? std::min(a, high_) : -1.0f;
    }
    /// The weight of i's strongest edge (-1: none).
    float strongest(std::int64_t i) const { return strongest_[static_cast<std::size_t>(i)]; }

    AffinityView<float> affinity_;
    float low_, high_;
    std::vector<float> strongest_;
};

struct Basins {
    std::uint64_t count = 0;
    /// Per label 1..count, the core-relative linear index (x fastest) of its first voxel.
    std::vector<std::int64_t> first_voxel;
    /// Per axis c, the voxels of the core's upper c-face (the other two axes, x-fastest) that are
    /// linked to their +c neighbour outside the core (1) or not (0). Empty where the core's upper
    /// c-face is the region's.
    std::array<std::vector<std::uint8_t>, 3> upper_links;
};

/// Labels the voxels of `core` (a box in the rule's region) 1..count by basin, numbered by first
/// voxel in scan order, 0 for inactive voxels; `labels` has the core's shape. Links leaving the
/// core count only through `upper_links`, so the core must lie at least the rule's halo away
/// from every region face that is not a face of the whole volume.
template <class Rule>
Basins steepest_ascent_basins(const Rule& rule, const Box& core, View<std::uint64_t> labels, ThreadPool& pool) {
    const Vec3 s = rule.shape();
    if (!Box({0, 0, 0}, s).contains(core) || labels.shape() != core.size())
        throw InvalidArgument("steepest_ascent_basins: the core must lie inside the region and match labels' shape");
    const Vec3 cs = core.size();
    const std::int64_t n = cs.x * cs.y * cs.z;
    auto region_index = [&](const Vec3& p) { return (p.x + s.x * (p.y + s.y * p.z)); };

    vx::detail::ScratchVector<std::int64_t> parent(static_cast<std::size_t>(n));
    std::iota(parent.begin(), parent.end(), std::int64_t{0});
    // Per core voxel: where it climbs (region index), -1 for a peak, -2 if inactive.
    vx::detail::ScratchVector<std::int64_t> climbs(static_cast<std::size_t>(n));
    const Vec3 lo = core.topleft();
    auto climb = [&](std::int64_t i, const Vec3& p) { return rule.active(i, p) ? rule.climb(i, p) : -2; };
    parallel_for(pool, 0, cs.z, [&](std::int64_t z) {  // the links are independent; the joining is not
        std::int64_t k = z * cs.x * cs.y;
        for (std::int64_t y = 0; y < cs.y; ++y)
            for (std::int64_t x = 0; x < cs.x; ++x, ++k) {
                const Vec3 p = lo + Vec3{x, y, z};
                climbs[k] = climb(region_index(p), p);
            }
    });
    Basins basins;
    for (int axis = 0; axis < 3; ++axis)
        if (lo[axis] + cs[axis] < s[axis]) basins.upper_links[axis].assign(n / cs[axis], 0);
    const std::int64_t region_step[3] = {1, s.x, s.x * s.y}, core_step[3] = {1, cs.x, cs.x * cs.y};
    // Each thread joins the links inside its slab of z-planes (the union-find then touches only
    // that slab's indices); links from a slab's last plane to the next slab are joined afterwards.
    const std::int64_t slabs = std::max<std::int64_t>(1, std::min<std::int64_t>(cs.z, std::int64_t(pool.size())));
    std::vector<std::vector<std::int64_t>> crossing(static_cast<std::size_t>(slabs));
    parallel_for(
        pool, 0, slabs,
        [&](std::int64_t t) {
            const std::int64_t z0 = cs.z * t / slabs, z1 = cs.z * (t + 1) / slabs;
            for (std::int64_t z = z0, k = z0 * cs.x * cs.y; z < z1; ++z)
                for (std::int64_t y = 0; y < cs.y; ++y)
                    for (std::int64_t x = 0; x < cs.x; ++x, ++k) {
                        if (climbs[k] == -2) continue;
                        const Vec3 q{x, y, z};
                        const std::int64_t i = region_index(lo + q);
                        // Links to the +x/+y/+z neighbour j of i (the -x/-y/-z ones are that neighbour's +).
                        for (int axis = 0; axis < 3; ++axis) {
                            if (lo[axis] + q[axis] + 1 >= s[axis]) continue;  // j outside the region
                            const std::int64_t j = i + region_step[axis];
                            const bool inside = q[axis] + 1 < cs[axis];
                            Vec3 pj = lo + q;
                            pj[axis] += 1;
                            const std::int64_t jc = inside ? climbs[k + core_step[axis]] : climb(j, pj);
                            if (jc == -2) continue;
                            const bool linked = climbs[k] == j || jc == i ||
                                                (climbs[k] == -1 && jc == -1 && rule.level(i, 2 * axis + 1, j));
                            if (!linked) continue;
                            if (!inside) {
                                const std::int64_t face = axis == 0   ? y + cs.y * z
                                                          : axis == 1 ? x + cs.x * z
                                                                      : x + cs.x * y;
                                basins.upper_links[axis][face] = 1;
                            } else if (axis == 2 && z + 1 == z1) {
                                crossing[static_cast<std::size_t>(t)].push_back(k);
                            } else {
                                graph::merge_sets(parent, k, k + core_step[axis]);
                            }
                        }
                    }
        },
        slabs);
    for (const auto& links : crossing)
        for (const std::int64_t k : links) graph::merge_sets(parent, k, k + core_step[2]);
    for (std::int64_t k = 0; k < n; ++k) {
        if (climbs[k] == -2) {
            labels[k] = 0;
            continue;
        }
        // A parent always has a smaller index, so in index order parent[k]'s root is known.
        const std::int64_t root = parent[k] = parent[parent[k]];
        if (root == k) {
            labels[k] = ++basins.count;
            basins.first_voxel.push_back(k);
        } else {
            labels[k] = labels[root];
        }
    }
    return basins;
}

/// NaN check of a height map, naming the voxel.
template <class T>
void require_no_nan(View<const T> values, const char* what) {
    for (std::int64_t i = 0; i < values.size(); ++i)
        if (std::isnan(static_cast<double>(values[i])))
            throw detail::nan_error(std::string(what) + " is", values.shape(), i);
}

}  // namespace vx::segmentation
