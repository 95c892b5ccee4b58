#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "catch.hpp"
#include "voxelytics/metrics/connectome.hpp"
#include "voxelytics/metrics/contingency.hpp"
#include "voxelytics/metrics/detection.hpp"
#include "voxelytics/metrics/run_length.hpp"
#include "voxelytics/metrics/segmentation_scores.hpp"

using vx::metrics::Counted;

namespace {

vx::metrics::SegmentationScores scores(const std::vector<std::uint32_t>& truth, const std::vector<std::uint64_t>& test,
                                       const Counted& counted = {}, std::size_t threads = 2) {
    vx::ThreadPool pool(threads);
    return vx::metrics::segmentation_scores(vx::metrics::contingency_table(
        truth.data(), test.data(), static_cast<std::int64_t>(truth.size()), counted, pool));
}

}  // namespace

TEST_CASE("identical labelings score perfectly, whatever the label values") {
    const auto s = scores({1, 1, 2, 2, 3}, {7, 7, 9, 9, 1ull << 63});
    CHECK(s.voi_split == 0.0);
    CHECK(s.voi_merge == 0.0);
    CHECK(s.arand == 0.0);
    CHECK(s.rand_split == 1.0);
    CHECK(s.rand_merge == 1.0);
    CHECK(s.cremi_score == 0.0);
    CHECK(s.voxels == 5);
}

TEST_CASE("a pure split and a pure merge, worked out by hand") {
    // Truth: one segment of 4 voxels. Test: two of 2. VOI split = H(test|truth) = 1 bit.
    const auto split = scores({1, 1, 1, 1}, {1, 1, 2, 2});
    CHECK(split.voi_split == Approx(1.0).margin(1e-15));
    CHECK(split.voi_merge == 0.0);
    // Pairs of distinct voxels together: truth 12, test 4, both 4 -> P = 1, R = 1/3, ARAND = 1/2.
    CHECK(split.arand_precision == Approx(1.0));
    CHECK(split.arand_recall == Approx(1.0 / 3));
    CHECK(split.arand == Approx(0.5));
    CHECK(split.rand_split == Approx(8.0 / 16));  // sum n_ij^2 / sum a_i^2
    CHECK(split.cremi_score == Approx(std::sqrt(0.5 * 1.0)));
    // The mirror image: the same numbers with split and merge exchanged.
    const auto merge = scores({1, 1, 2, 2}, {5, 5, 5, 5});
    CHECK(merge.voi_merge == Approx(1.0).margin(1e-15));
    CHECK(merge.voi_split == 0.0);
    CHECK(merge.arand_precision == Approx(1.0 / 3));
    CHECK(merge.arand_recall == Approx(1.0));
    CHECK(merge.rand_merge == Approx(8.0 / 16));
}

TEST_CASE("ignored truth labels and masked voxels are not counted; empty inputs are perfect") {
    Counted counted;  // ignores truth label 0 by default
    const auto s = scores({0, 0, 1, 1}, {3, 4, 5, 5}, counted);
    CHECK(s.voxels == 2);
    CHECK(s.voi_split == 0.0);
    const std::vector<std::uint8_t> mask{1, 1, 1, 0};
    counted.ignore_truth = {};
    counted.mask = mask.data();
    CHECK(scores({0, 0, 1, 1}, {3, 4, 5, 6}, counted).voxels == 3);
    const auto empty = scores({}, {});
    CHECK(empty.voxels == 0);
    CHECK(empty.arand == 0.0);
    CHECK(empty.voi_split == 0.0);
    CHECK(scores({0, 0}, {1, 2}).voxels == 0);
}

TEST_CASE("the contingency table does not depend on the number of threads") {
    std::mt19937_64 rng(3);
    std::vector<std::uint32_t> truth(100000);
    std::vector<std::uint64_t> test(truth.size());
    for (std::size_t i = 0; i < truth.size(); ++i) {
        truth[i] = static_cast<std::uint32_t>((i / 37) % 50);  // runs, as along x in a volume
        test[i] = rng() % 4 == 0 ? rng() % 20 : truth[i];
    }
    vx::ThreadPool one(1), three(3);
    const auto a = vx::metrics::contingency_table(truth.data(), test.data(), 100000, {}, one);
    const auto b = vx::metrics::contingency_table(truth.data(), test.data(), 100000, {}, three);
    CHECK(a.truth == b.truth);
    CHECK(a.test == b.test);
    CHECK(a.count == b.count);
    const auto labelled = std::count_if(truth.begin(), truth.end(), [](std::uint32_t t) { return t != 0; });
    CHECK(a.total == static_cast<std::uint64_t>(labelled));  // label 0 ignored
}

TEST_CASE("tables of blocks join into the whole's; renamed test labels merge their counts") {
    std::mt19937_64 rng(5);
    std::vector<std::uint32_t> truth(30000);
    std::vector<std::uint64_t> test(truth.size());
    for (std::size_t i = 0; i < truth.size(); ++i) {
        truth[i] = static_cast<std::uint32_t>((i / 23) % 40);
        test[i] = rng() % 3 == 0 ? rng() % 30 : truth[i] + 100;
    }
    vx::ThreadPool pool(2);
    const auto whole = vx::metrics::contingency_table(truth.data(), test.data(), 30000, {}, pool);
    std::vector<vx::metrics::detail::PairCount> pairs;
    for (std::int64_t start : {0, 10007, 20011}) {  // three blocks of the voxels, joined
        const std::int64_t end = start == 20011 ? 30000 : (start == 0 ? 10007 : 20011);
        const auto t = vx::metrics::contingency_table(truth.data() + start, test.data() + start, end - start, {}, pool);
        for (std::size_t i = 0; i < t.size(); ++i) pairs.push_back({t.truth[i], t.test[i], t.count[i]});
    }
    REQUIRE(pairs.size() > whole.size());  // pairs that occur in more than one block
    const auto joined = vx::metrics::contingency_of_pairs(pairs);
    CHECK(joined.truth == whole.truth);
    CHECK(joined.test == whole.test);
    CHECK(joined.count == whole.count);
    CHECK(joined.total == whole.total);
    // Test labels renamed (every label to its value mod 7): the table of the renamed labelling.
    for (auto& p : pairs) p.b %= 7;
    std::vector<std::uint64_t> renamed(test);
    for (auto& v : renamed) v %= 7;
    const auto direct = vx::metrics::contingency_table(truth.data(), renamed.data(), 30000, {}, pool);
    const auto mapped = vx::metrics::contingency_of_pairs(pairs);
    CHECK(mapped.truth == direct.truth);
    CHECK(mapped.test == direct.test);
    CHECK(mapped.count == direct.count);
}

TEST_CASE("detections are matched one to one within the distance, as many as possible") {
    // True 0 is near predicted 0 and 1; true 1 only near predicted 0: the maximum matching pairs
    // true 1 with predicted 0 and true 0 with predicted 1, though predicted 0 is nearer true 0.
    const std::vector<vx::metrics::Point> truth{{0, 0, 0}, {-9, 0, 0}, {100, 100, 100}};
    const std::vector<vx::metrics::Point> predicted{{0, 0, 1}, {5, 0, 0}, {500, 0, 0}};
    const auto s = vx::metrics::detection_scores(truth, predicted, 10);
    CHECK(s.true_positives == 2);
    CHECK(s.false_positives == 1);
    CHECK(s.false_negatives == 1);
    CHECK(s.precision == Approx(2.0 / 3));
    CHECK(s.f1 == Approx(2.0 / 3));
    CHECK(s.matches == std::vector<std::pair<std::size_t, std::size_t>>{{0, 1}, {1, 0}});
    CHECK(vx::metrics::detection_scores({}, {}, 10).f1 == 1.0);
    CHECK(vx::metrics::detection_scores(truth, {}, 10).recall == 0.0);
    REQUIRE_THROWS_AS(vx::metrics::detection_scores(truth, predicted, -1), vx::InvalidArgument);
}

TEST_CASE("synaptic partners need both sites near and, when given, the same partner ids") {
    const std::vector<vx::metrics::Partners> truth{{{0, 0, 0}, {0, 0, 20}, 1, 2}, {{100, 0, 0}, {100, 0, 20}, 3, 4}};
    const std::vector<vx::metrics::Partners> predicted{
        {{1, 0, 0}, {1, 0, 21}, 1, 2},      // matches the first
        {{100, 0, 0}, {100, 0, 90}, 3, 4},  // post site too far
        {{0, 1, 0}, {0, 1, 20}, 1, 7},      // near the first, but another post partner
    };
    const auto s = vx::metrics::partner_scores(truth, predicted, 10);
    CHECK(s.true_positives == 1);
    CHECK(s.matches == std::vector<std::pair<std::size_t, std::size_t>>{{0, 0}});
}

TEST_CASE("connectomes compare after predicted segments are carried to true neurons") {
    // Predicted segments 10 and 11 are both parts of neuron 1; 12 is neuron 2; 13 matches nothing.
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> match{{10, 1}, {11, 1}, {12, 2}, {13, 0}};
    const std::vector<vx::metrics::WeightedEdge> truth{{1, 2, 3}, {2, 3, 1}};
    const std::vector<vx::metrics::WeightedEdge> predicted{{10, 12, 1}, {11, 12, 2}, {12, 13, 5}, {12, 10, 1}};
    const auto s = vx::metrics::connectome_scores(truth, predicted, match, 1);
    CHECK(s.true_edges == 2);       // 1->2 (3), 2->3 (1)
    CHECK(s.predicted_edges == 2);  // 1->2 (1 + 2), 2->1 (1); 12->13 dropped
    CHECK(s.common_edges == 1);
    CHECK(s.edge_precision == Approx(0.5));
    CHECK(s.edge_recall == Approx(0.5));
    // Weights over (1,2), (2,1), (2,3): truth (3, 0, 1), prediction (3, 1, 0); means 4/3,
    // covariance 33/9, variances 42/9.
    CHECK(s.weight_correlation == Approx(33.0 / 42));
    CHECK(vx::metrics::connectome_scores(truth, predicted, match, 3).common_edges == 1);
}

TEST_CASE("expected run length, by hand") {
    // Skeleton 7: a chain of 4 nodes, edges of length 1, 2, 3; skeleton 8: one edge of length 4.
    const std::vector<std::uint64_t> skeleton{7, 7, 7, 7, 8, 8};
    const std::vector<std::pair<std::size_t, std::size_t>> edges{{0, 1}, {1, 2}, {2, 3}, {4, 5}};
    const std::vector<double> lengths{1, 2, 3, 4};
    // Perfect: ERL = (6^2 + 4^2) / 10.
    auto r = vx::metrics::expected_run_length(skeleton, {1, 1, 1, 1, 2, 2}, edges, lengths);
    CHECK(r.erl == Approx(5.2));
    CHECK(r.max_erl == Approx(5.2));
    // Split between nodes 1 and 2: runs of 1 and 3 on skeleton 7 -> (1 + 9 + 16) / 10.
    r = vx::metrics::expected_run_length(skeleton, {1, 1, 3, 3, 2, 2}, edges, lengths);
    CHECK(r.erl == Approx(2.6));
    CHECK(r.split_edges == 1);
    // Segment 1 also under a node of skeleton 8: both skeletons merged, nothing counts.
    r = vx::metrics::expected_run_length(skeleton, {1, 1, 1, 1, 1, 2}, edges, lengths);
    CHECK(r.erl == 0.0);
    CHECK(r.merging_segments == 1);
    CHECK(r.merged_skeletons == 2);
    // Background (0) under nodes of both skeletons is an omission, not a merge.
    r = vx::metrics::expected_run_length(skeleton, {1, 1, 1, 0, 0, 2}, edges, lengths);
    CHECK(r.erl == Approx(9.0 / 10));
    CHECK(r.omitted_edges == 2);
    REQUIRE_THROWS_AS(vx::metrics::expected_run_length(skeleton, {1, 1, 1, 1, 2, 2}, {{0, 4}}, {1}),
                      vx::InvalidArgument);
}
