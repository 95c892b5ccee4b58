// Seeded graph watershed: the cut that soma exclusion makes between somata (and between the axon
// and the dendrite of a merged segment). Edges are taken in increasing score (low = likely one
// neuron, as in agglomeration) and join their ends' pieces unless the two pieces hold different
// seeds. This is Kruskal's maximum-strength spanning forest with the seeds kept apart: two seeds
// end up split at the weakest edge (the highest score) of the strongest path between them, which
// is what a seeded min-max cut (FlyEM's cleave, a watershed on the graph) computes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/graph/union_find.hpp"

namespace vx::graph {

/// `edges`: pairs of node indices in [0, n); `scores`: one per edge; `seeds`: one per node, 0 for
/// none. Returns per node the smallest node index of its piece. Nodes that no edge reaches stay
/// alone; a piece without seeds is a connected component of the edges. Ties in score go to the
/// lower edge index, so the result depends only on the inputs, not on any thread count.
inline std::vector<std::uint64_t> seeded_cut(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& edges,
                                             const std::vector<double>& scores,
                                             const std::vector<std::uint64_t>& seeds) {
    const std::size_t n = seeds.size();
    if (scores.size() != edges.size())
        throw InvalidArgument("seeded_cut: " + std::to_string(edges.size()) + " edges but " +
                              std::to_string(scores.size()) + " scores");
    if (edges.size() >= (std::uint64_t{1} << 32)) throw InvalidArgument("seeded_cut: more than 2^32 - 1 edges");
    for (std::size_t e = 0; e < edges.size(); ++e) {
        if (edges[e].first >= n || edges[e].second >= n)
            throw InvalidArgument("seeded_cut: edge " + std::to_string(e) + " names a node beyond the " +
                                  std::to_string(n) + " nodes");
        if (std::isnan(scores[e]))
            throw InvalidArgument("seeded_cut: the score of edge " + std::to_string(e) + " is NaN");
    }
    // (score, edge) pairs sorted together: one pass over contiguous keys, ties by edge index
    std::vector<std::pair<double, std::uint32_t>> order(edges.size());
    for (std::size_t e = 0; e < edges.size(); ++e) order[e] = {scores[e], static_cast<std::uint32_t>(e)};
    std::sort(order.begin(), order.end());

    std::vector<std::uint64_t> parent(n);
    std::iota(parent.begin(), parent.end(), std::uint64_t{0});
    std::vector<std::uint64_t> seed = seeds;  // valid at roots: the piece's seed, 0 for none
    for (const auto& [score, e] : order) {
        (void)score;
        const std::uint64_t a = find_root(parent, edges[e].first), b = find_root(parent, edges[e].second);
        if (a == b || (seed[a] != 0 && seed[b] != 0 && seed[a] != seed[b])) continue;
        const std::uint64_t s = seed[a] != 0 ? seed[a] : seed[b];
        seed[merge_sets(parent, a, b)] = s;
    }
    for (std::size_t i = 0; i < n; ++i) parent[i] = find_root(parent, static_cast<std::uint64_t>(i));
    return parent;
}

}  // namespace vx::graph
