// region_graph: the region adjacency graph of a fragment volume with statistics of a boundary
// map (or affinities) on each contact. Two fragments are adjacent where two face-neighbouring
// voxels hold them (label 0 is no fragment); each such voxel pair is one unit of contact area,
// and its value is the larger of the two voxels' boundary values (the membrane between them), or
// 1 - the affinity of the edge between them. Per edge: count,
// sum (for the mean), min, max and a fixed histogram of `bins` equal bins over [0, 1] (values
// outside are clamped into the end bins) from which quantiles are read. Per fragment: its size.
//
// Threads scan disjoint z-slabs of 8 planes into their own hash maps; each slab's edges are sorted
// by (u, v) and the slabs merged, equal edges in slab order, so edge ids and every statistic (sums
// included) are independent of the thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "voxelytics/core/affinity_view.hpp"
#include "voxelytics/core/box.hpp"
#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"

namespace vx::graph {

struct RegionGraph {
    std::size_t bins = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> edges;  // u < v, sorted
    std::vector<std::uint64_t> count;
    std::vector<double> sum;
    std::vector<float> min, max;
    std::vector<std::uint32_t> histogram;  // edges.size() x bins, row per edge
    std::vector<std::uint64_t> nodes;      // fragment ids, sorted
    std::vector<std::uint64_t> sizes;      // voxels per fragment
};

namespace detail {

using EdgeKey = std::pair<std::uint64_t, std::uint64_t>;

inline std::uint64_t mix(std::uint64_t h) {
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}
inline std::uint64_t hash_of(std::uint64_t k) { return mix(k * 0x9e3779b97f4a7c15ULL); }
inline std::uint64_t hash_of(const EdgeKey& k) {
    return mix(k.first * 0x9e3779b97f4a7c15ULL ^ (k.second + 0x632be59bd9b4e019ULL));
}

/// Keys in insertion order with an open-addressing (linear probing) table from key to position:
/// one probe into a flat array per lookup, where a node-based hash map chases pointers.
template <class Key>
class FlatIndex {
public:
    /// The position of `key`, and whether it was new (then it is the last position).
    std::pair<std::size_t, bool> insert(const Key& key) {
        if ((keys_.size() + 1) * 2 > slots_.size()) grow();
        for (std::size_t s = hash_of(key) & (slots_.size() - 1);; s = (s + 1) & (slots_.size() - 1)) {
            const std::size_t p = slots_[s];
            if (p == empty) {
                slots_[s] = keys_.size();
                keys_.push_back(key);
                return {keys_.size() - 1, true};
            }
            if (keys_[p] == key) return {p, false};
        }
    }
    const std::vector<Key>& keys() const { return keys_; }

private:
    static constexpr std::size_t empty = std::numeric_limits<std::size_t>::max();
    void grow() {
        slots_.assign(std::max<std::size_t>(64, slots_.size() * 2), empty);
        for (std::size_t p = 0; p < keys_.size(); ++p) {
            std::size_t s = hash_of(keys_[p]) & (slots_.size() - 1);
            while (slots_[s] != empty) s = (s + 1) & (slots_.size() - 1);
            slots_[s] = p;
        }
    }
    std::vector<std::size_t> slots_;
    std::vector<Key> keys_;
};

/// The running statistics of one edge (together: one cache line to touch per contact).
struct ContactStats {
    std::uint64_t count = 0;
    double sum = 0;
    float min = std::numeric_limits<float>::infinity(), max = -std::numeric_limits<float>::infinity();

    void add(double v) {
        ++count, sum += v;
        min = std::min(min, static_cast<float>(v)), max = std::max(max, static_cast<float>(v));
    }
    void add(const ContactStats& o) {
        count += o.count, sum += o.sum, min = std::min(min, o.min), max = std::max(max, o.max);
    }
};

struct PartialGraph {
    FlatIndex<EdgeKey> index;
    std::vector<ContactStats> stats;
    std::vector<std::uint32_t> histogram;
    FlatIndex<std::uint64_t> nodes;
    std::vector<std::uint64_t> sizes;  // per position in `nodes`

    void add_size(std::uint64_t node, std::uint64_t voxels) {
        const auto [p, added] = nodes.insert(node);
        if (added) sizes.push_back(0);
        sizes[p] += voxels;
    }

    /// The position of edge `key`, created empty if new.
    std::size_t edge(const EdgeKey& key, std::size_t bins) {
        const auto [e, added] = index.insert(key);
        if (added) stats.emplace_back(), histogram.resize(histogram.size() + bins, 0);
        return e;
    }
};

/// The first x in 0..n-1 whose value(x) is NaN, or -1 (a branch-free scan first: rows rarely hold any).
template <class Value>
std::int64_t first_nan(std::int64_t n, Value value) {
    bool any = false;
    for (std::int64_t x = 0; x < n; ++x) any |= std::isnan(value(x));
    if (!any) return -1;
    for (std::int64_t x = 0;; ++x)
        if (std::isnan(value(x))) return x;
}

/// Where a key sits among the parts' keys: part `part`, position `at`.
template <class Key>
struct Entry {
    Key key;
    std::size_t part, at;
};

/// Every part's keys (`keys_of(p)`, unique within a part) as entries sorted by (key, part): the
/// parts are sorted in parallel, then adjacent runs merged pairwise (std::merge puts the left
/// run first on ties, so equal keys stay in part order).
template <class KeysOf>
auto sorted_entries(std::size_t parts, KeysOf keys_of, ThreadPool& pool) {
    using Key = std::decay_t<decltype(keys_of(0)[0])>;
    std::vector<std::vector<Entry<Key>>> runs(parts);
    const auto by_key = [](const Entry<Key>& a, const Entry<Key>& b) { return a.key < b.key; };
    parallel_for(pool, 0, std::int64_t(parts), [&](std::int64_t p) {
        const auto& keys = keys_of(std::size_t(p));
        auto& run = runs[std::size_t(p)];
        run.reserve(keys.size());
        for (std::size_t at = 0; at < keys.size(); ++at) run.push_back({keys[at], std::size_t(p), at});
        std::sort(run.begin(), run.end(), by_key);
    });
    while (runs.size() > 1) {
        std::vector<std::vector<Entry<Key>>> merged((runs.size() + 1) / 2);
        parallel_for(pool, 0, std::int64_t(merged.size()), [&](std::int64_t m) {
            const std::size_t a = 2 * std::size_t(m), b = a + 1;
            if (b == runs.size()) {
                merged[std::size_t(m)] = std::move(runs[a]);
                return;
            }
            auto& out = merged[std::size_t(m)];
            out.resize(runs[a].size() + runs[b].size());
            std::merge(runs[a].begin(), runs[a].end(), runs[b].begin(), runs[b].end(), out.begin(), by_key);
            runs[a] = {}, runs[b] = {};
        });
        runs = std::move(merged);
    }
    return runs.empty() ? std::vector<Entry<Key>>{} : std::move(runs[0]);
}

}  // namespace detail

/// A contact's value from a boundary map: the larger boundary value of its two voxels.
/// (Contacts also find NaN in a row's values, voxels i..i+n-1: every voxel of the core is checked.)
template <class Value>
struct BoundaryContacts {
    View<const Value> boundary;
    Vec3 shape() const { return boundary.shape(); }
    std::int64_t first_nan(std::int64_t i, std::int64_t n) const {
        return detail::first_nan(n, [&](std::int64_t x) { return static_cast<double>(boundary[i + x]); });
    }
    double operator()(std::int64_t i, int, std::int64_t j) const {
        return std::max(static_cast<double>(boundary[i]), static_cast<double>(boundary[j]));
    }
};

/// A contact's value from affinities (see AffinityView): 1 - the affinity of the edge, so that
/// low means "likely one neuron" as for boundary maps.
template <class Value>
struct AffinityContacts {
    AffinityView<Value> affinity;
    Vec3 shape() const { return affinity.shape; }
    std::int64_t first_nan(std::int64_t i, std::int64_t n) const {
        return detail::first_nan(n, [&](std::int64_t x) {
            return static_cast<double>(affinity(0, i + x)) + static_cast<double>(affinity(1, i + x)) +
                   static_cast<double>(affinity(2, i + x));
        });
    }
    double operator()(std::int64_t i, int axis, std::int64_t) const {  // j = i - e_axis: i's own channel
        return 1.0 - static_cast<double>(affinity(axis, i));
    }
};

/// The region graph of `fragments` with statistics of the contact values `contacts(i, axis, j)`
/// for face neighbours i and j = i - e_axis, counting the sizes of and the -x, -y, -z contacts
/// from the voxels in `core` only (array coordinates). For blocks: give each block's array one
/// more voxel on its lower faces than its core (where the volume goes on); the block graphs then
/// merge (voxelytics.graph.merge) into the graph of the whole volume, each contact counted once.
/// (Looking back rather than ahead: a voxel's own affinities are those of its -x/-y/-z
/// contacts, so the values are read in scan order instead of scattered over the next plane.)
template <class Label, class Contacts>
RegionGraph region_graph(View<const Label> fragments, const Contacts& contacts, std::size_t bins, ThreadPool& pool,
                         const Box& core) {
    if (contacts.shape() != fragments.shape())
        throw InvalidArgument("region_graph: fragments and the boundary/affinity values differ in shape");
    if (bins > 65536) throw InvalidArgument("region_graph: bins must be in 0..65536 (0: no histograms)");
    if (!fragments.box().contains(core)) throw InvalidArgument("region_graph: the core box lies outside the array");
    const Vec3 s = fragments.shape();
    const Vec3 lo = core.topleft(), hi = core.bottomright();
    // Slabs of a fixed depth (not one per thread), so the order of the sums never depends on threads.
    constexpr std::int64_t slab_depth = 8;
    const std::int64_t slabs = std::max<std::int64_t>(1, (core.size().z + slab_depth - 1) / slab_depth);
    std::vector<detail::PartialGraph> parts(static_cast<std::size_t>(slabs));
    parallel_for(
        pool, 0, slabs,
        [&](std::int64_t k) {
            auto& g = parts[static_cast<std::size_t>(k)];
            // Neighbouring contacts are mostly of the same pair: remember the last one per axis
            // instead of hashing again.
            detail::EdgeKey last_key[3] = {};
            std::size_t last_edge[3] = {};
            auto contact = [&](int axis, Label a, Label b, double v) {
                const auto u = static_cast<std::uint64_t>(a), v64 = static_cast<std::uint64_t>(b);
                const detail::EdgeKey key{std::min(u, v64), std::max(u, v64)};
                if (key != last_key[axis]) last_key[axis] = key, last_edge[axis] = g.edge(key, bins);
                const std::size_t e = last_edge[axis];
                g.stats[e].add(v);
                if (bins == 0) return;
                const auto bin = static_cast<std::size_t>(std::clamp(v, 0.0, 1.0) * double(bins));
                ++g.histogram[e * bins + std::min(bin, bins - 1)];
            };
            const std::int64_t z0 = lo.z + k * slab_depth, z1 = std::min(hi.z, z0 + slab_depth);
            Label last = 0;
            std::uint64_t run = 0;
            const std::int64_t plane = s.x * s.y;
            for (std::int64_t z = z0; z < z1; ++z)
                for (std::int64_t y = lo.y; y < hi.y; ++y) {
                    const std::int64_t row = fragments.offset(lo.x, y, z), width = hi.x - lo.x;
                    if (const std::int64_t x = contacts.first_nan(row, width); x >= 0) {
                        std::ostringstream msg;
                        msg << "region_graph: NaN in the boundary/affinity values at voxel " << Vec3{lo.x + x, y, z};
                        throw InvalidArgument(msg.str());
                    }
                    // Per row: which neighbours exist (-x: all but maybe the first voxel).
                    const std::int64_t with_x = lo.x > 0 ? 0 : 1;
                    const bool with_y = y > 0, with_z = z > 0;
                    const Label* labels = fragments.data() + row;
                    for (std::int64_t x = 0; x < width; ++x) {
                        const Label a = labels[x];
                        if (a == last) {
                            ++run;
                        } else {
                            if (last != 0) g.add_size(last, run);
                            last = a, run = 1;
                        }
                        if (a == 0) continue;
                        const std::int64_t i = row + x;
                        auto neighbour = [&](int axis, std::int64_t j) {
                            const Label b = fragments[j];
                            if (b != 0 && b != a) contact(axis, a, b, contacts(i, axis, j));
                        };
                        if (x >= with_x) neighbour(0, i - 1);
                        if (with_y) neighbour(1, i - s.x);
                        if (with_z) neighbour(2, i - plane);
                    }
                }
            if (last != 0) g.add_size(last, run);
        },
        slabs);

    // Each slab's keys sorted (in parallel), then merged: equal keys meet in slab order, so sums
    // add up in the same order for every thread count.
    RegionGraph out;
    out.bins = bins;
    const auto edges =
        detail::sorted_entries(parts.size(), [&](std::size_t p) -> const auto& { return parts[p].index.keys(); }, pool);
    for (std::size_t k = 0; k < edges.size();) {
        const auto& first = edges[k];
        const auto& g0 = parts[first.part];
        out.edges.push_back(first.key);
        detail::ContactStats stats = g0.stats[first.at];
        const std::size_t row = out.histogram.size();
        out.histogram.insert(out.histogram.end(), g0.histogram.begin() + std::ptrdiff_t(first.at * bins),
                             g0.histogram.begin() + std::ptrdiff_t((first.at + 1) * bins));
        for (++k; k < edges.size() && edges[k].key == first.key; ++k) {
            const auto& g = parts[edges[k].part];
            const std::size_t e = edges[k].at;
            stats.add(g.stats[e]);
            for (std::size_t b = 0; b < bins; ++b) out.histogram[row + b] += g.histogram[e * bins + b];
        }
        out.count.push_back(stats.count), out.sum.push_back(stats.sum);
        out.min.push_back(stats.min), out.max.push_back(stats.max);
    }
    const auto nodes =
        detail::sorted_entries(parts.size(), [&](std::size_t p) -> const auto& { return parts[p].nodes.keys(); }, pool);
    for (const auto& node : nodes) {
        const std::uint64_t voxels = parts[node.part].sizes[node.at];
        if (!out.nodes.empty() && out.nodes.back() == node.key)
            out.sizes.back() += voxels;
        else
            out.nodes.push_back(node.key), out.sizes.push_back(voxels);
    }
    return out;
}

/// With a boundary map, the whole array as the core.
template <class Label, class Value>
RegionGraph region_graph(View<const Label> fragments, View<const Value> boundary, std::size_t bins, ThreadPool& pool) {
    return region_graph(fragments, BoundaryContacts<Value>{boundary}, bins, pool, fragments.box());
}

}  // namespace vx::graph
