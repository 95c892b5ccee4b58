// relabel_sequential and remap: rewrite the ids of a label volume.
//
// relabel_sequential maps the distinct nonzero values, in increasing order, to 1..N (0 stays 0)
// and returns the old values so that old = values[new - 1]. remap applies an explicit mapping;
// background 0 maps to 0 unless the mapping says otherwise, and a value missing from the mapping
// is either kept or reported (KeyNotFound naming the value and a voxel that holds it).
// Both process rows in parallel and cache the last lookup, since neighbouring voxels mostly share
// an id.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"

namespace vx::segmentation {

/// The distinct values of `labels`, sorted (0 included if present).
template <class Label>
std::vector<Label> unique_values(View<const Label> labels, ThreadPool& pool) {
    const std::int64_t n = labels.size();
    const auto num_parts = static_cast<std::int64_t>(pool.size());
    std::vector<std::unordered_set<Label>> parts(static_cast<std::size_t>(num_parts));
    parallel_for(pool, 0, num_parts, [&](std::int64_t k) {
        auto& seen = parts[static_cast<std::size_t>(k)];
        const std::int64_t lo = n * k / num_parts, hi = n * (k + 1) / num_parts;
        if (lo == hi) return;
        Label last = labels[lo];
        seen.insert(last);
        for (std::int64_t i = lo + 1; i < hi; ++i) {
            const Label v = labels[i];
            if (v != last) {
                seen.insert(v);
                last = v;
            }
        }
    });
    std::unordered_set<Label> all;
    for (auto& p : parts) all.insert(p.begin(), p.end());
    std::vector<Label> values(all.begin(), all.end());
    std::sort(values.begin(), values.end());
    return values;
}

enum class MissingLabels { raise, keep };

namespace detail {

// Applies `mapping` voxel by voxel; `on_missing(value, index)` decides for absent values.
template <class Label, class OnMissing>
void apply_mapping(View<const Label> labels, View<std::uint64_t> out,
                   const std::unordered_map<Label, std::uint64_t>& mapping, ThreadPool& pool, OnMissing on_missing) {
    const std::int64_t n = labels.size();
    const auto num_parts = static_cast<std::int64_t>(pool.size());
    parallel_for(pool, 0, num_parts, [&](std::int64_t k) {
        const std::int64_t lo = n * k / num_parts, hi = n * (k + 1) / num_parts;
        if (lo == hi) return;
        Label last = labels[lo];
        std::uint64_t last_mapped = 0;
        auto lookup = [&](Label v, std::int64_t i) {
            const auto it = mapping.find(v);
            return it != mapping.end() ? it->second : on_missing(v, i);
        };
        last_mapped = lookup(last, lo);
        out[lo] = last_mapped;
        for (std::int64_t i = lo + 1; i < hi; ++i) {
            const Label v = labels[i];
            if (v != last) {
                last = v;
                last_mapped = lookup(v, i);
            }
            out[i] = last_mapped;
        }
    });
}

template <class Label>
Vec3 position_of(View<const Label> labels, std::int64_t i) {
    const Vec3 s = labels.shape();
    return {i % s.x, (i / s.x) % s.y, i / (s.x * s.y)};
}

}  // namespace detail

/// Writes 1..N for the distinct nonzero values of `labels` in increasing order into `out`;
/// returns those values (index new-1 holds the old value).
template <class Label>
std::vector<Label> relabel_sequential(View<const Label> labels, View<std::uint64_t> out, ThreadPool& pool) {
    require_same_shape(labels, View<const std::uint64_t>(out), "relabel_sequential(labels, out)");
    std::vector<Label> values = unique_values(labels, pool);
    if (!values.empty() && values.front() == 0) values.erase(values.begin());
    std::unordered_map<Label, std::uint64_t> mapping{{Label{0}, 0}};
    mapping.reserve(values.size() + 1);
    for (std::size_t i = 0; i < values.size(); ++i) mapping[values[i]] = i + 1;
    detail::apply_mapping(labels, out, mapping, pool, [](Label, std::int64_t) -> std::uint64_t { return 0; });
    return values;
}

/// Writes mapping[v] for every voxel value v of `labels` into `out`. `keys` and `values` must
/// have equal length and `keys` no duplicates. 0 maps to 0 unless `keys` contains 0.
template <class Label>
void remap(View<const Label> labels, View<std::uint64_t> out, const std::vector<std::uint64_t>& keys,
           const std::vector<std::uint64_t>& values, MissingLabels missing, ThreadPool& pool) {
    require_same_shape(labels, View<const std::uint64_t>(out), "remap(labels, out)");
    if (keys.size() != values.size())
        throw InvalidArgument("remap: mapping has " + std::to_string(keys.size()) + " keys but " +
                              std::to_string(values.size()) + " values");
    std::unordered_map<Label, std::uint64_t> mapping;
    mapping.reserve(keys.size() + 1);
    for (std::size_t i = 0; i < keys.size(); ++i) {
        // Keys that the label dtype cannot hold can never occur in the volume.
        if (keys[i] > static_cast<std::uint64_t>(std::numeric_limits<Label>::max())) continue;
        if (!mapping.emplace(static_cast<Label>(keys[i]), values[i]).second)
            throw InvalidArgument("remap: key " + std::to_string(keys[i]) + " appears twice in the mapping");
    }
    mapping.emplace(Label{0}, 0);  // no-op if the caller mapped 0
    detail::apply_mapping(labels, out, mapping, pool, [&](Label v, std::int64_t i) -> std::uint64_t {
        if (missing == MissingLabels::keep) return static_cast<std::uint64_t>(v);
        std::ostringstream msg;
        msg << "remap: label " << static_cast<std::uint64_t>(v) << " (at voxel " << detail::position_of(labels, i)
            << ") is not in the mapping";
        throw KeyNotFound(msg.str());
    });
}

}  // namespace vx::segmentation
