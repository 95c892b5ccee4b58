// Scores of a segmentation against ground truth, all from one contingency table (n_ij voxels
// with truth label i and test label j, a_i = sum_j n_ij, b_j = sum_i n_ij, N = sum n_ij):
//
//   VOI split  = H(test | truth) = -sum_ij n_ij/N log2(n_ij / a_i)   (false splits)
//   VOI merge  = H(truth | test) = -sum_ij n_ij/N log2(n_ij / b_j)   (false merges)
//   Rand split = sum n_ij^2 / sum a_i^2,  Rand merge = sum n_ij^2 / sum b_j^2   (funlib.evaluate)
//   adapted Rand error (SNEMI3D, as skimage.metrics.adapted_rand_error counts pairs of distinct
//   voxels): P = sum n_ij(n_ij-1) / sum b_j(b_j-1), R = sum n_ij(n_ij-1) / sum a_i(a_i-1),
//   ARAND = 1 - 2PR/(P+R)
//   CREMI score = sqrt(ARAND * (VOI split + VOI merge))
//
// With no voxel (or no pair of voxels) to judge, nothing is wrong: VOI 0, ARAND 0, P = R = 1.
#pragma once

#include <cmath>
#include <cstdint>
#include <unordered_map>

#include "voxelytics/metrics/contingency.hpp"

namespace vx::metrics {

struct SegmentationScores {
    double voi_split = 0, voi_merge = 0;
    double rand_split = 1, rand_merge = 1;
    double arand = 0, arand_precision = 1, arand_recall = 1;
    double cremi_score = 0;
    std::uint64_t voxels = 0;
};

inline SegmentationScores segmentation_scores(const ContingencyTable& t) {
    SegmentationScores s;
    s.voxels = t.total;
    if (t.total == 0) return s;
    std::unordered_map<std::uint64_t, std::uint64_t> truth_size, test_size;
    for (std::size_t k = 0; k < t.size(); ++k) {
        truth_size[t.truth[k]] += t.count[k];
        test_size[t.test[k]] += t.count[k];
    }
    // Exact integer sums of squares (up to N^2, beyond 64 bits for large volumes).
    using u128 = unsigned __int128;
    u128 pairs = 0, truth_pairs = 0, test_pairs = 0;
    const double total = static_cast<double>(t.total);
    for (std::size_t k = 0; k < t.size(); ++k) {
        const std::uint64_t n = t.count[k];
        pairs += static_cast<u128>(n) * n;
        const double p = static_cast<double>(n) / total;
        s.voi_split -= p * std::log2(static_cast<double>(n) / static_cast<double>(truth_size[t.truth[k]]));
        s.voi_merge -= p * std::log2(static_cast<double>(n) / static_cast<double>(test_size[t.test[k]]));
    }
    for (const auto& [label, a] : truth_size) truth_pairs += static_cast<u128>(a) * a;
    for (const auto& [label, b] : test_size) test_pairs += static_cast<u128>(b) * b;
    s.voi_split = s.voi_split > 0 ? s.voi_split : 0.0;  // not -0.0 when nothing is split
    s.voi_merge = s.voi_merge > 0 ? s.voi_merge : 0.0;
    s.rand_split = static_cast<double>(pairs) / static_cast<double>(truth_pairs);
    s.rand_merge = static_cast<double>(pairs) / static_cast<double>(test_pairs);

    const u128 n = t.total;  // pairs of distinct voxels: subtract the N self-pairs
    const double same = static_cast<double>(pairs - n), same_truth = static_cast<double>(truth_pairs - n),
                 same_test = static_cast<double>(test_pairs - n);
    s.arand_precision = same_test > 0 ? same / same_test : 1.0;
    s.arand_recall = same_truth > 0 ? same / same_truth : 1.0;
    const double denominator = 0.5 * (same_truth + same_test);
    s.arand = denominator > 0 ? 1.0 - same / denominator : 0.0;
    s.cremi_score = std::sqrt(s.arand * (s.voi_split + s.voi_merge));
    return s;
}

}  // namespace vx::metrics
