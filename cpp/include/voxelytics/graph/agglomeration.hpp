// agglomerate: hierarchical region merging on a RegionGraph. The edge with the lowest score (a
// statistic of the boundary values on the contact: low = likely the same neuron) is merged
// first; the merged fragments' edges to a common neighbour combine (areas, sums, min/max and
// histograms add up) and are scored again. One pass serves a list of increasing thresholds: the
// segmentation for threshold t is the state when the lowest remaining score first reaches t
// (as in waterz). Ties in score go to the lowest edge id (an edge's position in the graph's
// sorted edge list; a combined edge keeps the lower id). Segment ids are the smallest fragment
// id in each segment.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/graph/region_graph.hpp"
#include "voxelytics/graph/union_find.hpp"

namespace vx::graph {

enum class Score {
    mean,      // mean boundary value over the contact
    max,       // highest boundary value on the contact
    min,       // lowest (one weak spot suffices)
    quantile,  // the q-quantile, from the contact histogram
};

struct Merge {
    std::uint64_t a, b;  // the segments merged (their ids before the merge)
    double score;
};

struct Agglomeration {
    std::vector<std::vector<std::uint64_t>> segments;  // per threshold: segment id of each graph node
    std::vector<Merge> history;                        // every merge, in order
};

namespace detail {

struct EdgeState {
    std::uint64_t count = 0;
    double sum = 0;
    float min = 0, max = 0;
    std::size_t id = 0;  // the lowest original edge id merged into it
    std::int64_t u = 0, v = 0;
    std::uint32_t version = 0;
    bool alive = true;
};

}  // namespace detail

/// Agglomerates `g` under `score` (`q` for Score::quantile) for each of `thresholds` (strictly
/// increasing); see the file comment.
inline Agglomeration agglomerate(const RegionGraph& g, Score score, double q, const std::vector<double>& thresholds) {
    for (std::size_t k = 1; k < thresholds.size(); ++k)
        if (!(thresholds[k] > thresholds[k - 1])) {
            std::ostringstream msg;
            msg << "agglomerate: thresholds must be strictly increasing, got " << thresholds[k - 1] << " then "
                << thresholds[k];
            throw InvalidArgument(msg.str());
        }
    if (score == Score::quantile && !(q >= 0 && q <= 1))
        throw InvalidArgument("agglomerate: quantile must be in [0, 1]");
    if (score == Score::quantile && g.bins == 0)
        throw InvalidArgument("agglomerate: quantile scoring needs contact histograms (a graph with bins > 0)");
    const std::size_t n = g.nodes.size(), m = g.edges.size(), bins = g.bins;
    std::unordered_map<std::uint64_t, std::int64_t> node_of;
    for (std::size_t i = 0; i < n; ++i) node_of[g.nodes[i]] = static_cast<std::int64_t>(i);
    std::vector<detail::EdgeState> edges(m);
    std::vector<std::uint32_t> hist(score == Score::quantile ? g.histogram : std::vector<std::uint32_t>{});
    std::vector<std::unordered_map<std::int64_t, std::size_t>> adjacency(n);
    for (std::size_t e = 0; e < m; ++e) {
        auto find_node = [&](std::uint64_t id) {
            const auto it = node_of.find(id);
            if (it == node_of.end()) {
                std::ostringstream msg;
                msg << "agglomerate: edge " << e << " names fragment " << id << ", which is not a node of the graph";
                throw InvalidArgument(msg.str());
            }
            return it->second;
        };
        auto& s = edges[e];
        s.count = g.count[e], s.sum = g.sum[e], s.min = g.min[e], s.max = g.max[e], s.id = e;
        s.u = find_node(g.edges[e].first), s.v = find_node(g.edges[e].second);
        adjacency[std::size_t(s.u)][s.v] = e;
        adjacency[std::size_t(s.v)][s.u] = e;
    }
    auto score_of = [&](std::size_t e) -> double {
        const auto& s = edges[e];
        switch (score) {
            case Score::mean: return s.sum / double(std::max<std::uint64_t>(s.count, 1));
            case Score::max: return s.max;
            case Score::min: return s.min;
            case Score::quantile: {
                // Upper edge of the first bin reaching q of the area, clipped to [min, max]
                // (the rule of voxelytics.graph.RegionGraph.quantile).
                const double target = std::max(1.0, std::ceil(q * double(s.count)));
                double cumulative = 0;
                std::size_t b = 0;
                for (; b < bins; ++b)
                    if ((cumulative += hist[e * bins + b]) >= target) break;
                return std::clamp(double(std::min(b, bins - 1) + 1) / double(bins), double(s.min), double(s.max));
            }
        }
        return 0;
    };
    struct Entry {
        double score;
        std::size_t id, edge;
        std::uint32_t version;
        bool operator>(const Entry& o) const { return score != o.score ? score > o.score : id > o.id; }
    };
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
    for (std::size_t e = 0; e < m; ++e) queue.push({score_of(e), e, e, 0});

    UnionFind<std::int64_t> sets(n);  // roots: smallest node index = smallest id
    Agglomeration out;
    auto snapshot = [&] {
        std::vector<std::uint64_t> seg(n);
        for (std::size_t i = 0; i < n; ++i) seg[i] = g.nodes[std::size_t(sets.find(std::int64_t(i)))];
        out.segments.push_back(std::move(seg));
    };
    std::size_t next = 0;  // the next threshold to record
    while (!queue.empty() && next < thresholds.size()) {
        const Entry top = queue.top();
        queue.pop();
        auto& s = edges[top.edge];
        if (!s.alive || s.version != top.version) continue;  // stale: merged away or rescored
        while (next < thresholds.size() && top.score >= thresholds[next]) snapshot(), ++next;
        if (next == thresholds.size()) break;
        // Merge the smaller adjacency into the larger. Edge ends name adjacency slots: a merged
        // segment keeps the slot of the larger side, so the larger side is never rewritten
        // (renaming it after the union-find root made hubs quadratic); its id is the root.
        std::int64_t keep = s.u, gone = s.v;
        if (adjacency[std::size_t(keep)].size() < adjacency[std::size_t(gone)].size()) std::swap(keep, gone);
        const std::int64_t id_a = sets.find(keep), id_b = sets.find(gone);
        out.history.push_back(
            {g.nodes[std::size_t(std::min(id_a, id_b))], g.nodes[std::size_t(std::max(id_a, id_b))], top.score});
        s.alive = false;
        auto& kept = adjacency[std::size_t(keep)];
        kept.erase(gone);
        for (const auto& [nbr, e2] : adjacency[std::size_t(gone)]) {
            if (nbr == keep) continue;
            auto& nbr_adj = adjacency[std::size_t(nbr)];
            nbr_adj.erase(gone);
            const auto it = kept.find(nbr);
            if (it == kept.end()) {  // a new neighbour: the edge moves over
                kept[nbr] = e2;
                nbr_adj[keep] = e2;
                auto& t = edges[e2];
                (t.u == gone ? t.u : t.v) = keep;
                continue;
            }
            // A common neighbour: combine e2 into the kept edge and score it again.
            const std::size_t e1 = it->second;
            auto& a = edges[e1];
            auto& b = edges[e2];
            a.count += b.count, a.sum += b.sum, a.min = std::min(a.min, b.min), a.max = std::max(a.max, b.max);
            a.id = std::min(a.id, b.id);
            if (score == Score::quantile)
                for (std::size_t k = 0; k < bins; ++k) hist[e1 * bins + k] += hist[e2 * bins + k];
            b.alive = false;
            ++a.version;
            queue.push({score_of(e1), a.id, e1, a.version});
        }
        adjacency[std::size_t(gone)].clear();
        sets.merge(keep, gone);  // (any members will do)
    }
    while (next < thresholds.size()) snapshot(), ++next;
    return out;
}

}  // namespace vx::graph

namespace vx::graph {

/// Size-threshold merging (Zlateski & Seung): edges in order of decreasing strength (1 - the
/// contact's min value, i.e. its highest affinity; ties: lower edge id first) join their two
/// segments while one of them has fewer than `size_threshold` voxels and the strength is at least
/// `min_strength`. Returns each node's segment id (the smallest fragment id in it).
inline std::vector<std::uint64_t> merge_small(const RegionGraph& g, std::uint64_t size_threshold, double min_strength) {
    const std::size_t n = g.nodes.size();
    if (g.sizes.size() != n || g.min.size() != g.edges.size())
        throw InvalidArgument("merge_small: the graph's fields differ in length");
    const bool dense = n > 0 && g.nodes.front() == 1 && g.nodes.back() == n;  // ids 1..n: no search
    auto node = [&](std::uint64_t id) {
        if (dense && id >= 1 && id <= n) return static_cast<std::int64_t>(id - 1);
        const auto it = std::lower_bound(g.nodes.begin(), g.nodes.end(), id);
        if (it == g.nodes.end() || *it != id)
            throw InvalidArgument("merge_small: edge end " + std::to_string(id) + " is not a node");
        return static_cast<std::int64_t>(it - g.nodes.begin());
    };
    std::vector<std::uint64_t> size = g.sizes;
    std::vector<std::pair<float, std::size_t>> order;  // (min, edge): strongest first, then lower id
    for (std::size_t e = 0; e < g.edges.size(); ++e) {
        const bool small = size[std::size_t(node(g.edges[e].first))] < size_threshold ||
                           size[std::size_t(node(g.edges[e].second))] < size_threshold;
        if (small && 1.0 - double(g.min[e]) >= min_strength) order.emplace_back(g.min[e], e);  // sizes only grow
    }
    std::sort(order.begin(), order.end());
    UnionFind<std::int64_t> sets(n);  // roots: smallest node index = smallest id
    for (const auto& candidate : order) {
        const std::size_t e = candidate.second;
        const std::int64_t a = sets.find(node(g.edges[e].first)), b = sets.find(node(g.edges[e].second));
        if (a == b || (size[std::size_t(a)] >= size_threshold && size[std::size_t(b)] >= size_threshold)) continue;
        const std::int64_t root = sets.merge(a, b);
        size[std::size_t(root)] = size[std::size_t(a)] + size[std::size_t(b)];
    }
    std::vector<std::uint64_t> segment(n);
    for (std::size_t i = 0; i < n; ++i) segment[i] = g.nodes[std::size_t(sets.find(std::int64_t(i)))];
    return segment;
}

}  // namespace vx::graph
