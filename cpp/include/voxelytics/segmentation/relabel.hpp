// relabel_sequential and remap: rewrite the ids of a label volume.
//
// relabel_sequential maps the distinct nonzero values, in increasing order, to 1..N (0 stays 0)
// and returns the old values so that old = values[new - 1]. remap applies an explicit mapping;
// background 0 maps to 0 unless the mapping says otherwise, and a value missing from the mapping
// is either kept or reported (KeyNotFound naming the value and a voxel that holds it).
// Both process rows in parallel and cache the last lookup, since neighbouring voxels mostly share
// an id; mappings of small ids are tables indexed by id rather than hash maps.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
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

/// A mapping of label values: a table indexed by value when the largest key is below
/// `dense_limit` (the usual ids 1..n: one load per lookup), else a hash map.
template <class Label>
class LabelMap {
public:
    LabelMap(const std::vector<Label>& keys, const std::vector<std::uint64_t>& values, std::uint64_t dense_limit) {
        const std::uint64_t top =
            keys.empty() ? 0 : static_cast<std::uint64_t>(*std::max_element(keys.begin(), keys.end()));
        dense_ = top < dense_limit;
        if (dense_)
            table_.assign(top + 1, 0), present_.assign(top + 1, 0);
        else
            hash_.reserve(keys.size());
        for (std::size_t i = 0; i < keys.size(); ++i)
            if (!insert(keys[i], values[i]))
                throw InvalidArgument("remap: key " + std::to_string(static_cast<std::uint64_t>(keys[i])) +
                                      " appears twice in the mapping");
    }
    const std::uint64_t* find(Label k) const {
        if (dense_) {
            const auto i = static_cast<std::uint64_t>(k);
            return i < table_.size() && present_[i] ? &table_[i] : nullptr;
        }
        const auto it = hash_.find(k);
        return it != hash_.end() ? &it->second : nullptr;
    }

private:
    bool insert(Label k, std::uint64_t v) {
        if (!dense_) return hash_.emplace(k, v).second;
        const auto i = static_cast<std::uint64_t>(k);
        if (present_[i]) return false;
        present_[i] = 1, table_[i] = v;
        return true;
    }
    bool dense_ = false;
    std::vector<std::uint64_t> table_;
    std::vector<std::uint8_t> present_;
    std::unordered_map<Label, std::uint64_t> hash_;
};

/// Tables up to one entry per voxel (at least 2^16, at most 2^26 entries) stay dense.
inline std::uint64_t dense_limit(std::int64_t voxels) {
    return std::clamp<std::uint64_t>(static_cast<std::uint64_t>(voxels), 1u << 16, 1u << 26);
}

// Applies `mapping` voxel by voxel; `on_missing(value, index)` decides for absent values.
template <class Label, class OnMissing>
void apply_mapping(View<const Label> labels, View<std::uint64_t> out, const LabelMap<Label>& mapping, ThreadPool& pool,
                   OnMissing on_missing) {
    const std::int64_t n = labels.size();
    const auto num_parts = static_cast<std::int64_t>(pool.size());
    parallel_for(pool, 0, num_parts, [&](std::int64_t k) {
        const std::int64_t lo = n * k / num_parts, hi = n * (k + 1) / num_parts;
        if (lo == hi) return;
        Label last = labels[lo];
        std::uint64_t last_mapped = 0;
        auto lookup = [&](Label v, std::int64_t i) {
            const std::uint64_t* mapped = mapping.find(v);
            return mapped ? *mapped : on_missing(v, i);
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
    std::vector<Label> keys{Label{0}};
    std::vector<std::uint64_t> ids{0};
    for (std::size_t i = 0; i < values.size(); ++i) keys.push_back(values[i]), ids.push_back(i + 1);
    const detail::LabelMap<Label> mapping(keys, ids, detail::dense_limit(labels.size()));
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
    std::vector<Label> held;  // keys that the label dtype cannot hold can never occur in the volume
    std::vector<std::uint64_t> mapped;
    bool has_zero = false;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        if (keys[i] > static_cast<std::uint64_t>(std::numeric_limits<Label>::max())) continue;
        held.push_back(static_cast<Label>(keys[i])), mapped.push_back(values[i]);
        has_zero |= keys[i] == 0;
    }
    if (!has_zero) held.push_back(Label{0}), mapped.push_back(0);  // 0 stays 0 unless mapped
    const detail::LabelMap<Label> mapping(held, mapped, detail::dense_limit(labels.size()));
    detail::apply_mapping(labels, out, mapping, pool, [&](Label v, std::int64_t i) -> std::uint64_t {
        if (missing == MissingLabels::keep) return static_cast<std::uint64_t>(v);
        std::ostringstream msg;
        msg << "remap: label " << static_cast<std::uint64_t>(v) << " (at voxel " << detail::position_of(labels, i)
            << ") is not in the mapping";
        throw KeyNotFound(msg.str());
    });
}

/// remap with MissingLabels::keep for several mappings of the same keys at once: outs[k] gets
/// values[k][i] for keys[i] (values missing from the mapping kept, 0 -> 0 unless mapped), in one
/// pass over `labels` whose blocks stay in cache while every output is written (e.g. the
/// segmentations of an agglomeration at each of its thresholds). Tables indexed by value when
/// all of them fit in about one entry per voxel, else one remap per output.
template <class Label>
void remap_each(View<const Label> labels, const std::vector<View<std::uint64_t>>& outs,
                const std::vector<std::uint64_t>& keys, const std::vector<std::vector<std::uint64_t>>& values,
                ThreadPool& pool) {
    if (outs.size() != values.size())
        throw InvalidArgument("remap_each: " + std::to_string(outs.size()) + " outputs for " +
                              std::to_string(values.size()) + " mappings");
    for (std::size_t k = 0; k < outs.size(); ++k) {
        require_same_shape(labels, View<const std::uint64_t>(outs[k]), "remap_each(labels, outs[k])");
        if (values[k].size() != keys.size())
            throw InvalidArgument("remap_each: mapping " + std::to_string(k) + " has " +
                                  std::to_string(values[k].size()) + " values for " + std::to_string(keys.size()) +
                                  " keys");
    }
    const std::uint64_t limit = static_cast<std::uint64_t>(std::numeric_limits<Label>::max());
    std::uint64_t top = 0;  // the largest key the labels can hold
    for (const std::uint64_t key : keys)
        if (key <= limit) top = std::max(top, key);
    if (outs.empty()) return;
    if ((top + 1) * outs.size() > detail::dense_limit(labels.size())) {
        for (std::size_t k = 0; k < outs.size(); ++k)
            remap(labels, outs[k], keys, values[k], MissingLabels::keep, pool);
        return;
    }
    // Complete tables over 0..top: unmapped values map to themselves.
    const std::size_t width = static_cast<std::size_t>(top + 1);
    std::vector<std::uint64_t> tables(width * outs.size());
    std::vector<std::uint8_t> seen(width, 0);
    for (std::size_t k = 0; k < outs.size(); ++k)
        std::iota(tables.begin() + std::ptrdiff_t(k * width), tables.begin() + std::ptrdiff_t((k + 1) * width),
                  std::uint64_t{0});
    for (std::size_t i = 0; i < keys.size(); ++i) {
        if (keys[i] > limit) continue;  // cannot occur in the volume
        if (seen[keys[i]]++)
            throw InvalidArgument("remap: key " + std::to_string(keys[i]) + " appears twice in the mapping");
        for (std::size_t k = 0; k < outs.size(); ++k) tables[k * width + keys[i]] = values[k][i];
    }
    constexpr std::int64_t block = 4096;
    const std::int64_t n = labels.size();
    parallel_for(pool, 0, (n + block - 1) / block, [&](std::int64_t b) {
        const std::int64_t lo = b * block, hi = std::min(n, lo + block);
        for (std::size_t k = 0; k < outs.size(); ++k) {
            const std::uint64_t* table = tables.data() + k * width;
            std::uint64_t* out = outs[k].data();
            for (std::int64_t i = lo; i < hi; ++i) {
                const auto v = static_cast<std::uint64_t>(labels[i]);
                out[i] = v <= top ? table[v] : v;
            }
        }
    });
}

}  // namespace vx::segmentation
