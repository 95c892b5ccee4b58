// Comparing a predicted connectome with the true one. Predicted neurons (segments) are first
// matched to true neurons (match_by_overlap: each segment to the true neuron it overlaps most);
// predicted edges are carried over to true neuron ids and summed where several map to one pair.
// Then, for edges of weight >= a threshold (synapse count, usually), precision and recall of the
// edge sets, and the Pearson correlation of the weights over all edges present in either.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vx::metrics {

struct WeightedEdge {
    std::uint64_t pre, post;
    double weight;
};

struct ConnectomeScores {
    std::size_t true_edges = 0, predicted_edges = 0, common_edges = 0;  // at or above the threshold
    double edge_precision = 1, edge_recall = 1, edge_f1 = 1;
    double weight_correlation = 0;  // NaN-free: 0 when a side has constant weights
};

/// `truth` edges between true neurons, `predicted` edges between predicted segments, and
/// `segment_to_neuron` (predicted segment -> true neuron, e.g. from match_by_overlap). Predicted
/// edges of segments without a match, or matched to neuron 0, are dropped.
inline ConnectomeScores connectome_scores(const std::vector<WeightedEdge>& truth,
                                          const std::vector<WeightedEdge>& predicted,
                                          const std::vector<std::pair<std::uint64_t, std::uint64_t>>& segment_to_neuron,
                                          double weight_threshold) {
    using Key = std::pair<std::uint64_t, std::uint64_t>;
    std::map<Key, std::pair<double, double>> weights;  // (pre, post) -> (true, predicted)
    for (const auto& e : truth) weights[{e.pre, e.post}].first += e.weight;
    const std::unordered_map<std::uint64_t, std::uint64_t> neuron(segment_to_neuron.begin(), segment_to_neuron.end());
    for (const auto& e : predicted) {
        const auto pre = neuron.find(e.pre), post = neuron.find(e.post);
        if (pre == neuron.end() || post == neuron.end() || pre->second == 0 || post->second == 0) continue;
        weights[{pre->second, post->second}].second += e.weight;
    }
    ConnectomeScores s;
    double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (const auto& [key, w] : weights) {
        const bool in_truth = w.first >= weight_threshold && w.first > 0,
                   in_prediction = w.second >= weight_threshold && w.second > 0;
        s.true_edges += in_truth;
        s.predicted_edges += in_prediction;
        s.common_edges += in_truth && in_prediction;
        n += 1;
        sx += w.first;
        sy += w.second;
        sxx += w.first * w.first;
        syy += w.second * w.second;
        sxy += w.first * w.second;
    }
    if (s.predicted_edges)
        s.edge_precision = static_cast<double>(s.common_edges) / static_cast<double>(s.predicted_edges);
    if (s.true_edges) s.edge_recall = static_cast<double>(s.common_edges) / static_cast<double>(s.true_edges);
    const double pr = s.edge_precision + s.edge_recall;
    s.edge_f1 = pr > 0 ? 2 * s.edge_precision * s.edge_recall / pr : 0.0;
    const double vx = n * sxx - sx * sx, vy = n * syy - sy * sy;
    if (vx > 0 && vy > 0) s.weight_correlation = (n * sxy - sx * sy) / std::sqrt(vx * vy);
    return s;
}

}  // namespace vx::metrics
