// Scores of point detections (synapses) against ground truth: one-to-one matching of predicted
// to true points within a distance, then precision, recall and F1.
//
// The matching is a maximum matching of the bipartite graph whose edges join a true and a
// predicted point closer than the distance (so no other one-to-one matching has more true
// positives); candidates are found through a grid of cells of that size and tried nearest
// first, so the matched pairs are also close ones. Synaptic partners (CREMI-style) are the same
// problem with an edge only where the presynaptic sites and the postsynaptic sites are both
// within the distance and, when segment ids are given, the partners' ids agree.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "voxelytics/core/errors.hpp"

namespace vx::metrics {

using Point = std::array<double, 3>;  // x, y, z in nm

struct DetectionScores {
    std::size_t true_positives = 0, false_positives = 0, false_negatives = 0;
    double precision = 1, recall = 1, f1 = 1;                  // 1 when there is nothing to find and nothing found
    std::vector<std::pair<std::size_t, std::size_t>> matches;  // (true index, predicted index)
};

namespace detail {

inline double distance(const Point& a, const Point& b) {
    return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

// For every true point, the predicted points within `max_distance` of it, nearest first.
inline std::vector<std::vector<std::size_t>> candidates(const std::vector<Point>& truth,
                                                        const std::vector<Point>& predicted, double max_distance) {
    if (!(max_distance >= 0) || !std::isfinite(max_distance))
        throw InvalidArgument("the matching distance must be a finite number >= 0");
    const double cell = max_distance > 0 ? max_distance : 1.0;
    auto key = [&](const Point& p, int dx, int dy, int dz) {
        const auto c = [&](int d, int off) { return static_cast<std::int64_t>(std::floor(p[d] / cell)) + off; };
        return (static_cast<std::uint64_t>(c(0, dx)) * 73856093u) ^ (static_cast<std::uint64_t>(c(1, dy)) * 19349663u) ^
               (static_cast<std::uint64_t>(c(2, dz)) * 83492791u);
    };
    std::unordered_map<std::uint64_t, std::vector<std::size_t>> grid;
    for (std::size_t j = 0; j < predicted.size(); ++j) {
        for (double v : predicted[j])
            if (!std::isfinite(v)) throw InvalidArgument("predicted point " + std::to_string(j) + " is not finite");
        grid[key(predicted[j], 0, 0, 0)].push_back(j);
    }
    std::vector<std::vector<std::size_t>> out(truth.size());
    for (std::size_t i = 0; i < truth.size(); ++i) {
        for (double v : truth[i])
            if (!std::isfinite(v)) throw InvalidArgument("true point " + std::to_string(i) + " is not finite");
        std::vector<std::size_t> near;
        for (int dx = -1; dx <= 1; ++dx)
            for (int dy = -1; dy <= 1; ++dy)
                for (int dz = -1; dz <= 1; ++dz) {
                    const auto it = grid.find(key(truth[i], dx, dy, dz));
                    if (it == grid.end()) continue;
                    for (std::size_t j : it->second)
                        if (distance(truth[i], predicted[j]) <= max_distance) near.push_back(j);
                }
        std::sort(near.begin(), near.end());  // hash collisions of cells can list a point twice
        near.erase(std::unique(near.begin(), near.end()), near.end());
        std::stable_sort(near.begin(), near.end(), [&](std::size_t a, std::size_t b) {
            return distance(truth[i], predicted[a]) < distance(truth[i], predicted[b]);
        });
        out[i] = std::move(near);
    }
    return out;
}

// Maximum bipartite matching by augmenting paths (Kuhn), trying candidates in the given order.
// The depth-first search keeps its path on an explicit stack: paths can be as long as a cluster
// of points is large, too deep for recursion.
inline DetectionScores match(const std::vector<std::vector<std::size_t>>& candidates, std::size_t n_predicted) {
    const std::size_t n_truth = candidates.size();
    std::vector<std::size_t> owner(n_predicted, SIZE_MAX);  // predicted -> true point
    std::vector<std::size_t> visited(n_predicted, SIZE_MAX);
    struct Step {
        std::size_t truth, next;  // a true point on the path, and its next candidate to try
    };
    std::vector<Step> path;
    auto augment = [&](std::size_t start) {
        path.assign(1, {start, 0});
        while (!path.empty()) {
            Step& top = path.back();
            if (top.next == candidates[top.truth].size()) {
                path.pop_back();
                continue;
            }
            const std::size_t j = candidates[top.truth][top.next++];
            if (visited[j] == start) continue;
            visited[j] = start;
            if (owner[j] != SIZE_MAX) {
                path.push_back({owner[j], 0});  // try to move j's owner elsewhere
                continue;
            }
            // A free predicted point: shift every point on the path to the candidate it took.
            owner[j] = path.back().truth;
            for (std::size_t l = path.size() - 1; l > 0; --l) {
                const Step& parent = path[l - 1];
                owner[candidates[parent.truth][parent.next - 1]] = parent.truth;
            }
            return;
        }
    };
    DetectionScores s;
    // Nearest free candidate first: most points match here, so few (and short) searches remain.
    std::vector<bool> matched(n_truth, false);
    for (std::size_t i = 0; i < n_truth; ++i)
        for (std::size_t j : candidates[i])
            if (owner[j] == SIZE_MAX) {
                owner[j] = i;
                matched[i] = true;
                break;
            }
    for (std::size_t i = 0; i < n_truth; ++i)
        if (!matched[i] && !candidates[i].empty()) augment(i);
    for (std::size_t j = 0; j < n_predicted; ++j)
        if (owner[j] != SIZE_MAX) s.matches.emplace_back(owner[j], j);
    std::sort(s.matches.begin(), s.matches.end());
    s.true_positives = s.matches.size();
    s.false_positives = n_predicted - s.true_positives;
    s.false_negatives = n_truth - s.true_positives;
    if (n_predicted) s.precision = static_cast<double>(s.true_positives) / static_cast<double>(n_predicted);
    if (n_truth) s.recall = static_cast<double>(s.true_positives) / static_cast<double>(n_truth);
    s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
    return s;
}

}  // namespace detail

/// Detections: true and predicted points matched one to one within `max_distance` (nm).
inline DetectionScores detection_scores(const std::vector<Point>& truth, const std::vector<Point>& predicted,
                                        double max_distance) {
    return detail::match(detail::candidates(truth, predicted, max_distance), predicted.size());
}

/// A synaptic connection: presynaptic and postsynaptic site (nm), and optionally the segment
/// ids of the two partners (0: not given).
struct Partners {
    Point pre, post;
    std::uint64_t pre_id = 0, post_id = 0;
};

/// Synaptic partners: a prediction matches a true connection if both its sites lie within
/// `max_distance` of the true ones and (where both give ids) its partner ids are the true ones.
inline DetectionScores partner_scores(const std::vector<Partners>& truth, const std::vector<Partners>& predicted,
                                      double max_distance) {
    std::vector<Point> true_pre, pred_pre;
    for (const auto& p : truth) true_pre.push_back(p.pre);
    for (const auto& p : predicted) pred_pre.push_back(p.pre);
    auto candidates = detail::candidates(true_pre, pred_pre, max_distance);
    for (std::size_t i = 0; i < truth.size(); ++i) {
        auto& c = candidates[i];
        c.erase(std::remove_if(c.begin(), c.end(),
                               [&](std::size_t j) {
                                   const Partners &t = truth[i], &p = predicted[j];
                                   const bool ids_differ = (t.pre_id && p.pre_id && t.pre_id != p.pre_id) ||
                                                           (t.post_id && p.post_id && t.post_id != p.post_id);
                                   return ids_differ || detail::distance(t.post, p.post) > max_distance;
                               }),
                c.end());
    }
    return detail::match(candidates, predicted.size());
}

}  // namespace vx::metrics
