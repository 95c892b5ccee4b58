// Expected run length (ERL): how far, on average, one can walk along a ground-truth skeleton
// from a random point before the segmentation makes a mistake, weighting skeletons by length.
// Definition as in funlib.evaluate: an edge between two nodes in the same segment is correct;
// in different segments, a split; a node in segment 0, omitted. A segment holding nodes of two
// or more skeletons is a merge, and every edge of those skeletons counts as wrong. For a
// skeleton of length L whose correct edges total c_k in segment k,
//   ERL = sum over skeletons of (L / L_total) * sum_k c_k^2 / L = sum_k c_k^2 / L_total.
// Unlike funlib, segment 0 is never a merge (background under nodes of two skeletons).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "voxelytics/core/errors.hpp"

namespace vx::metrics {

struct RunLength {
    double erl = 0;      // expected run length (the unit of the edge lengths)
    double max_erl = 0;  // the ERL of a perfect segmentation: sum L^2 / L_total
    double total_length = 0;
    std::size_t merging_segments = 0, merged_skeletons = 0, split_edges = 0, omitted_edges = 0;
};

/// Skeleton nodes carry `skeleton[n]` (their skeleton id) and `segment[n]` (the segment at their
/// position); `edges` join nodes of one skeleton, `lengths` are the edge lengths.
inline RunLength expected_run_length(const std::vector<std::uint64_t>& skeleton,
                                     const std::vector<std::uint64_t>& segment,
                                     const std::vector<std::pair<std::size_t, std::size_t>>& edges,
                                     const std::vector<double>& lengths) {
    if (skeleton.size() != segment.size())
        throw InvalidArgument("skeleton ids and segment ids must have one entry per node");
    if (edges.size() != lengths.size()) throw InvalidArgument("edges and lengths must have the same number of entries");
    std::map<std::uint64_t, std::set<std::uint64_t>> skeletons_of_segment;
    for (std::size_t n = 0; n < skeleton.size(); ++n)
        if (segment[n] != 0) skeletons_of_segment[segment[n]].insert(skeleton[n]);
    RunLength r;
    std::set<std::uint64_t> merged;
    for (const auto& [seg, skels] : skeletons_of_segment)
        if (skels.size() > 1) {
            ++r.merging_segments;
            merged.insert(skels.begin(), skels.end());
        }
    r.merged_skeletons = merged.size();

    std::map<std::uint64_t, double> skeleton_length;
    std::map<std::pair<std::uint64_t, std::uint64_t>, double> correct;  // (skeleton, segment) -> length
    for (std::size_t e = 0; e < edges.size(); ++e) {
        const auto [u, v] = edges[e];
        if (u >= skeleton.size() || v >= skeleton.size())
            throw InvalidArgument("edge " + std::to_string(e) + " names a node that does not exist");
        if (skeleton[u] != skeleton[v])
            throw InvalidArgument("edge " + std::to_string(e) + " joins nodes of different skeletons");
        if (!(lengths[e] >= 0)) throw InvalidArgument("edge " + std::to_string(e) + " has a negative or NaN length");
        const std::uint64_t s = skeleton[u];
        skeleton_length[s] += lengths[e];
        if (merged.count(s)) continue;
        if (segment[u] == 0 || segment[v] == 0) {
            ++r.omitted_edges;
        } else if (segment[u] != segment[v]) {
            ++r.split_edges;
        } else {
            correct[{s, segment[u]}] += lengths[e];
        }
    }
    for (const auto& [s, length] : skeleton_length) r.total_length += length;
    if (r.total_length <= 0) return r;
    for (const auto& [key, c] : correct) r.erl += c * c / r.total_length;
    for (const auto& [s, length] : skeleton_length) r.max_erl += length * length / r.total_length;
    return r;
}

}  // namespace vx::metrics
