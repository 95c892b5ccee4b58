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
// A rule gives active(i, p) (false: label 0), climb(i, p) (the direction, 0..5 in the order -x,
// +x, -y, +y, -z, +z, of the neighbour voxel i at p climbs to; -1 for a peak) and
// level(i, direction, j) (peaks i and j, face neighbours, lie on one plateau). Each rule sees
// the region it was given as the whole world:
//   HeightRule    climb to the highest neighbour if it is higher (first in -x,+x,-y,+y,-z,+z
//                 order on ties); plateau = equal height. Needs a halo of 2 voxels.
//   AffinityRule  Zlateski & Seung's watershed on affinities: an edge's weight is its affinity
//                 capped at `high`, edges below `low` are cut; a voxel climbs along its strongest
//                 edge to a neighbour whose own strongest edge is stronger; voxels with no edge
//                 left are in no fragment (label 0); plateau = strongest edges of equal weight
//                 (everything joined by affinities >= high is one plateau). Needs a halo of 3.
//                 Refuses NaN.
//
// Cost: links are found and joined within z-slabs, and the basins numbered (by first voxel, in
// scan order), in parallel; only the links between slabs are joined in one sequential pass.
// Results never depend on the thread count (union-find roots are the smallest index). Scratch
// memory: 1 byte (the climb direction) and 4 bytes (union-find parent; 8 beyond 2^31 voxels) per
// core voxel.
#pragma once

#include <algorithm>
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
    int climb(std::int64_t i, const Vec3& p) const {
        int best = -1;
        float best_height = height[i];
        // Selects, not branches: which neighbour is higher is a coin toss to the predictor.
        detail::for_each_face_neighbour(height.shape(), i, p, [&](int d, std::int64_t j) {
            const float h = height[j];
            const bool higher = h > best_height;
            best_height = higher ? h : best_height;
            best = higher ? d : best;
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
        // Locals, not members, in the loop: each store to strongest (a float) could otherwise
        // change low_ or high_ as far as the compiler knows, which it would then read again.
        const AffinityView<float> aff = affinity_;
        const float lo = low_, hi = high_;
        float* strongest = strongest_.data();
        // Each value is read here anyway: the NaN check costs nothing extra (a NaN would
        // otherwise pass for a cut edge).
        std::vector<std::int64_t> nan_at(pool.size(), -1);
        parallel_for(
            pool, 0, std::int64_t(pool.size()),
            [&](std::int64_t t) {
                const std::int64_t z0 = s.z * t / std::int64_t(pool.size()),
                                   z1 = s.z * (t + 1) / std::int64_t(pool.size());
                bool nan = false;
                for (std::int64_t z = z0, i = z0 * s.x * s.y; z < z1; ++z)
                    for (std::int64_t y = 0; y < s.y; ++y)
                        for (std::int64_t x = 0; x < s.x; ++x, ++i) {
                            float m = -1.0f;
                            detail::for_each_face_neighbour(s, i, {x, y, z}, [&](int d, std::int64_t j) {
                                m = std::max(m, capped(aff(d / 2, (d & 1) ? j : i), lo, hi));
                            });
                            strongest[i] = m;
                            nan |= std::isnan(aff(0, i) + aff(1, i) + aff(2, i));
                        }
                if (!nan) return;
                for (std::int64_t i = z0 * s.x * s.y; i < z1 * s.x * s.y; ++i)  // find the first
                    if (std::isnan(aff(0, i) + aff(1, i) + aff(2, i))) {
                        nan_at[std::size_t(t)] = i;
                        break;
                    }
            },
            std::int64_t(pool.size()));
        for (const std::int64_t i : nan_at)
            if (i >= 0) throw detail::nan_error("affinities hold", s, i);
    }

    Vec3 shape() const { return affinity_.shape; }
    bool active(std::int64_t i, const Vec3&) const { return strongest(i) >= 0; }
    int climb(std::int64_t i, const Vec3& p) const {
        const float m = strongest(i);
        int target = -1;
        detail::for_each_face_neighbour(shape(), i, p, [&](int d, std::int64_t j) {
            if (target < 0 && m >= 0 && strongest(j) > m && weight(i, d, j) == m) target = d;
        });
        return target;
    }
    bool level(std::int64_t i, int direction, std::int64_t j) const {
        const float m = strongest(i);
        return m >= 0 && strongest(j) == m && weight(i, direction, j) == m;
    }

private:
    /// An edge's weight: its affinity `a` capped at `high`, or -1 (cut) below `low`.
    static float capped(float a, float low, float high) { return a >= low ? std::min(a, high) : -1.0f; }
    /// The weight of the edge from i to its neighbour j in `direction`.
    float weight(std::int64_t i, int direction, std::int64_t j) const {
        return capped(affinity_(direction / 2, (direction & 1) ? j : i), low_, high_);
    }
    /// The weight of i's strongest edge (-1: none).
    float strongest(std::int64_t i) const { return strongest_[static_cast<std::size_t>(i)]; }

    AffinityView<float> affinity_;
    float low_, high_;
    vx::detail::ScratchVector<float> strongest_;  // filled in parallel: no serial zeroing first
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

namespace detail {

// A voxel's climb: a direction 0..5 (see for_each_face_neighbour), a peak, or inactive. (An enum,
// not a plain byte: stores through a byte type may alias anything, and the compiler would then
// read the rule's members again after each one.)
enum Climb : std::uint8_t { peak = 6, inactive = 7 };

/// The unit step of direction d (0..5: -x, +x, -y, +y, -z, +z).
inline Vec3 direction(int d) {
    Vec3 step;
    step[static_cast<std::size_t>(d / 2)] = (d & 1) ? 1 : -1;
    return step;
}

template <class Index, class Rule>
Basins steepest_ascent_basins(const Rule& rule, const Box& core, View<std::uint64_t> labels, ThreadPool& pool) {
    const Vec3 s = rule.shape(), cs = core.size(), lo = core.topleft();
    const std::int64_t n = cs.x * cs.y * cs.z;
    auto region_index = [&](const Vec3& p) { return (p.x + s.x * (p.y + s.y * p.z)); };
    auto climb = [&](std::int64_t i, const Vec3& p) -> Climb {
        if (!rule.active(i, p)) return inactive;
        const int d = rule.climb(i, p);
        return d < 0 ? peak : static_cast<Climb>(d);
    };
    vx::detail::ScratchVector<Climb> climbs(static_cast<std::size_t>(n));  // per core voxel
    vx::detail::ScratchVector<Index> parent(static_cast<std::size_t>(n));
    parallel_for(pool, 0, cs.z, [&](std::int64_t z) {  // the climbs are independent; the joining is not
        std::int64_t k = z * cs.x * cs.y;
        for (std::int64_t y = 0; y < cs.y; ++y)
            for (std::int64_t x = 0; x < cs.x; ++x, ++k) {
                const Vec3 p = lo + Vec3{x, y, z};
                climbs[k] = climb(region_index(p), p);
                parent[k] = static_cast<Index>(k);
            }
    });
    Basins basins;
    const std::int64_t core_step[3] = {1, cs.x, cs.x * cs.y}, region_step[3] = {1, s.x, s.x * s.y};
    const std::int64_t offset[6] = {-1, 1, -cs.x, cs.x, -core_step[2], core_step[2]};
    // Links within the core: each voxel's climb, and peaks level with their +x/+y/+z neighbour.
    // Each thread joins those inside its slab of z-planes (the union-find then touches only that
    // slab's indices); links between slabs are joined afterwards.
    const std::int64_t slabs = std::max<std::int64_t>(1, std::min<std::int64_t>(cs.z, std::int64_t(pool.size())));
    const auto first_plane = [&](std::int64_t t) { return cs.z * t / slabs; };  // of slab t
    std::vector<std::vector<std::pair<Index, Index>>> crossing(static_cast<std::size_t>(slabs));
    parallel_for(
        pool, 0, slabs,
        [&](std::int64_t t) {
            const std::int64_t z0 = first_plane(t), z1 = first_plane(t + 1);
            auto join = [&](std::int64_t k, std::int64_t j, std::int64_t zj) {
                if (zj < z0 || zj >= z1)
                    crossing[static_cast<std::size_t>(t)].emplace_back(static_cast<Index>(k), static_cast<Index>(j));
                else
                    graph::merge_sets(parent, static_cast<Index>(k), static_cast<Index>(j));
            };
            for (std::int64_t z = z0, k = z0 * cs.x * cs.y; z < z1; ++z)
                for (std::int64_t y = 0; y < cs.y; ++y)
                    for (std::int64_t x = 0; x < cs.x; ++x, ++k) {
                        const Climb c = climbs[k];
                        if (c < peak) {  // climbs outside the core: left to the upper faces below
                            const bool inside = c == 0   ? x > 0
                                                : c == 1 ? x + 1 < cs.x
                                                : c == 2 ? y > 0
                                                : c == 3 ? y + 1 < cs.y
                                                : c == 4 ? z > 0
                                                         : z + 1 < cs.z;
                            if (inside) join(k, k + offset[c], z + (c == 5) - (c == 4));
                        } else if (c == peak) {
                            const Vec3 q{x, y, z};
                            const std::int64_t i = region_index(lo + q);
                            for (int axis = 0; axis < 3; ++axis) {
                                const std::int64_t j = k + core_step[axis];
                                if (q[axis] + 1 < cs[axis] && climbs[j] == peak &&
                                    rule.level(i, 2 * axis + 1, i + region_step[axis]))
                                    join(k, j, z + (axis == 2));
                            }
                        }
                    }
        },
        slabs);
    for (const auto& links : crossing)
        for (const auto& [k, j] : links) graph::merge_sets(parent, k, j);
    // Links across the core's upper faces (where the region goes on): reported, not joined.
    for (int axis = 0; axis < 3; ++axis) {
        if (lo[axis] + cs[axis] >= s[axis]) continue;
        auto& links = basins.upper_links[axis];
        links.assign(static_cast<std::size_t>(n / cs[axis]), 0);
        const int a = (axis + 1) % 3, b = (axis + 2) % 3;  // the face's axes
        const int up = 2 * axis + 1, down = 2 * axis;
        parallel_for(pool, 0, cs[b], [&](std::int64_t v) {
            for (std::int64_t u = 0; u < cs[a]; ++u) {
                Vec3 q;
                q[axis] = cs[axis] - 1, q[a] = u, q[b] = v;
                const Climb ci = climbs[q.x + cs.x * (q.y + cs.y * q.z)];
                if (ci == inactive) continue;
                const Vec3 pi = lo + q, pj = pi + direction(up);
                const Climb cj = climb(region_index(pj), pj);
                if (cj == inactive) continue;
                if (ci == up || cj == down ||
                    (ci == peak && cj == peak && rule.level(region_index(pi), up, region_index(pj)))) {
                    const std::int64_t face = axis == 0   ? q.y + cs.y * q.z
                                              : axis == 1 ? q.x + cs.x * q.z
                                                          : q.x + cs.x * q.y;
                    links[static_cast<std::size_t>(face)] = 1;  // the face's voxels, x-fastest
                }
            }
        });
    }
    // Numbering: roots (parent[k] == k: the smallest index of a basin) get 1..count in index
    // order, per slab from the slab's offset; then every other voxel takes its root's label.
    std::vector<std::vector<std::int64_t>> roots(static_cast<std::size_t>(slabs));
    parallel_for(
        pool, 0, slabs,
        [&](std::int64_t t) {
            for (std::int64_t k = first_plane(t) * core_step[2]; k < first_plane(t + 1) * core_step[2]; ++k)
                if (climbs[k] != inactive && parent[k] == k) roots[static_cast<std::size_t>(t)].push_back(k);
        },
        slabs);
    for (const auto& r : roots) basins.first_voxel.insert(basins.first_voxel.end(), r.begin(), r.end());
    basins.count = basins.first_voxel.size();
    auto root_label = [&](std::int64_t root) {
        const auto& first = basins.first_voxel;
        return static_cast<std::uint64_t>(std::lower_bound(first.begin(), first.end(), root) - first.begin()) + 1;
    };
    parallel_for(
        pool, 0, slabs,
        [&](std::int64_t t) {
            std::uint64_t label = 0;
            for (std::int64_t u = 0; u < t; ++u) label += roots[static_cast<std::size_t>(u)].size();
            const std::int64_t begin = first_plane(t) * core_step[2], end = first_plane(t + 1) * core_step[2];
            for (std::int64_t k = begin; k < end; ++k) {
                const Index p = parent[k];
                if (climbs[k] == inactive)
                    labels[k] = 0;
                else if (p == k)
                    labels[k] = ++label;
                else if (p >= begin)  // p < k: labelled already
                    labels[k] = labels[p];
                else  // p is in an earlier slab, being labelled now: its root's label is its rank
                    labels[k] = root_label(graph::find_root_const(parent, p));
            }
        },
        slabs);
    return basins;
}

}  // namespace detail

/// Labels the voxels of `core` (a box in the rule's region) 1..count by basin, numbered by first
/// voxel in scan order, 0 for inactive voxels; `labels` has the core's shape. Links leaving the
/// core count only through `upper_links`, so the core must lie at least the rule's halo away
/// from every region face that is not a face of the whole volume.
template <class Rule>
Basins steepest_ascent_basins(const Rule& rule, const Box& core, View<std::uint64_t> labels, ThreadPool& pool) {
    if (!Box({0, 0, 0}, rule.shape()).contains(core) || labels.shape() != core.size())
        throw InvalidArgument("steepest_ascent_basins: the core must lie inside the region and match labels' shape");
    // 32-bit union-find indices where they suffice: half the memory traffic of the joining.
    if (core.size().prod() < (std::int64_t{1} << 31))
        return detail::steepest_ascent_basins<std::int32_t>(rule, core, labels, pool);
    return detail::steepest_ascent_basins<std::int64_t>(rule, core, labels, pool);
}

/// NaN check of a height map, naming the voxel.
template <class T>
void require_no_nan(View<const T> values, const char* what) {
    for (std::int64_t i = 0; i < values.size(); ++i)
        if (std::isnan(static_cast<double>(values[i])))
            throw detail::nan_error(std::string(what) + " is", values.shape(), i);
}

}  // namespace vx::segmentation
