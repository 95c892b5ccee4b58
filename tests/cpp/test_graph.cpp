#include <algorithm>
#include <map>
#include <numeric>
#include <vector>

#include "catch.hpp"
#include "voxelytics/graph/agglomeration.hpp"
#include "voxelytics/graph/region_graph.hpp"
#include "voxelytics/graph/seeded_cut.hpp"
#include "voxelytics/graph/union_find.hpp"

TEST_CASE("UnionFind roots are the smallest element whatever the merge order") {
    vx::graph::UnionFind<> a(6), b(6);
    a.merge(4, 5);
    a.merge(1, 4);
    a.merge(3, 2);
    b.merge(2, 3);
    b.merge(5, 1);
    b.merge(4, 1);
    for (std::uint64_t i = 0; i < 6; ++i) CHECK(a.find(i) == b.find(i));
    CHECK(a.find(5) == 1);
    CHECK(a.find(3) == 2);
    CHECK(a.find(0) == 0);
    CHECK(a.same(1, 5));
    CHECK_FALSE(a.same(0, 1));
    CHECK(a.add() == 6);
    CHECK(a.find(6) == 6);
}

TEST_CASE("parent-array functions: read-only find leaves the array as it is") {
    std::vector<std::uint32_t> parent{0, 0, 1, 2, 4};  // a chain 3 -> 2 -> 1 -> 0, and 4 alone
    CHECK(vx::graph::find_root_const(parent, std::uint32_t{3}) == 0);
    CHECK(parent == std::vector<std::uint32_t>{0, 0, 1, 2, 4});
    CHECK(vx::graph::find_root(parent, std::uint32_t{3}) == 0);
    CHECK(parent[3] == 1);  // path halving: 3 now skips 2
    CHECK(vx::graph::merge_sets(parent, std::uint32_t{4}, std::uint32_t{2}) == 0);
    CHECK(vx::graph::find_root_const(parent, std::uint32_t{4}) == 0);
}

TEST_CASE("region_graph: contacts, their statistics and fragment sizes, independent of threads") {
    // 4 x 2 x 2 volume: fragment 1 in x < 2, fragment 2 in x >= 2 except one voxel of 3; 0 at one corner.
    const vx::Vec3 s{4, 2, 2};
    std::vector<std::uint32_t> frag(16);
    std::vector<float> boundary(16);
    for (std::int64_t i = 0; i < 16; ++i) {
        const std::int64_t x = i % 4;
        frag[std::size_t(i)] = x < 2 ? 1 : 2;
        boundary[std::size_t(i)] = 0.1f * float(i % 7);
    }
    frag[15] = 3;  // (3, 1, 1)
    frag[0] = 0;   // (0, 0, 0)
    std::vector<vx::graph::RegionGraph> graphs;
    for (std::size_t threads : {1, 3}) {
        vx::ThreadPool pool(threads);
        graphs.push_back(vx::graph::region_graph<std::uint32_t, float>(
            vx::View<const std::uint32_t>(frag.data(), s), vx::View<const float>(boundary.data(), s), 10, pool));
    }
    const auto& g = graphs[0];
    using E = std::pair<std::uint64_t, std::uint64_t>;
    REQUIRE(g.edges == std::vector<E>{{1, 2}, {2, 3}});
    // 1-2: the x = 1 | x = 2 faces of the 4 rows; 2-3: (2,1,1)-(3,1,1), (3,0,1)-(3,1,1), (3,1,0)-(3,1,1).
    CHECK(g.count == std::vector<std::uint64_t>{4, 3});
    // Values: the larger of 0.1 * (i % 7) over the pairs i = (1, 2), (5, 6), (9, 10), (13, 14).
    CHECK(g.sum[0] == Approx(0.2 + 0.6 + 0.3 + 0.6));
    CHECK(g.max[0] == Approx(0.6f));
    CHECK(g.min[0] == Approx(0.2f));
    std::uint32_t total = 0;
    for (std::size_t b = 0; b < 10; ++b) total += g.histogram[b];
    CHECK(total == 4);
    CHECK(g.nodes == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(g.sizes == std::vector<std::uint64_t>{7, 7, 1});
    CHECK(graphs[1].edges == g.edges);
    CHECK(graphs[1].sum == g.sum);
    CHECK(graphs[1].histogram == g.histogram);
}

TEST_CASE("region_graph: slabs merged equal to a direct count, for any thread count") {
    // 9 x 7 x 30 (4 slabs of 8 planes) of random ids 0..5 in runs; every statistic from one pass over a map.
    const vx::Vec3 s{9, 7, 30};
    const std::int64_t n = s.prod();
    std::vector<std::uint64_t> frag(std::size_t(n), 0);
    std::vector<float> boundary(static_cast<std::size_t>(n));
    std::uint64_t state = 12345;
    auto next = [&] { return (state = state * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; };
    for (std::int64_t i = 0; i < n; ++i) {
        frag[std::size_t(i)] = next() % 3 == 0 ? next() % 6 : (i > 0 ? frag[std::size_t(i - 1)] : 1);
        boundary[std::size_t(i)] = float(next() % 1000) / 1000.0f;
    }
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::vector<double>> contacts;
    std::map<std::uint64_t, std::uint64_t> sizes;
    const std::int64_t step[3] = {1, s.x, s.x * s.y};
    for (std::int64_t i = 0; i < n; ++i) {
        const vx::Vec3 p{i % s.x, (i / s.x) % s.y, i / (s.x * s.y)};
        const std::uint64_t a = frag[std::size_t(i)];
        if (a != 0) ++sizes[a];
        for (std::size_t axis = 0; axis < 3; ++axis) {
            if (p[axis] + 1 >= s[axis]) continue;
            const std::uint64_t b = frag[std::size_t(i + step[axis])];
            if (a == 0 || b == 0 || a == b) continue;
            contacts[{std::min(a, b), std::max(a, b)}].push_back(
                std::max(double(boundary[std::size_t(i)]), double(boundary[std::size_t(i + step[axis])])));
        }
    }
    for (std::size_t threads : {1, 2, 5}) {
        vx::ThreadPool pool(threads);
        const auto g = vx::graph::region_graph<std::uint64_t, float>(
            vx::View<const std::uint64_t>(frag.data(), s), vx::View<const float>(boundary.data(), s), 4, pool);
        REQUIRE(g.edges.size() == contacts.size());
        std::size_t e = 0;
        for (const auto& [key, values] : contacts) {
            CHECK(g.edges[e] == key);
            CHECK(g.count[e] == values.size());
            CHECK(g.sum[e] == Approx(std::accumulate(values.begin(), values.end(), 0.0)));
            CHECK(g.min[e] == Approx(*std::min_element(values.begin(), values.end())));
            CHECK(g.max[e] == Approx(*std::max_element(values.begin(), values.end())));
            std::uint32_t histogram_total = 0;
            for (std::size_t b = 0; b < 4; ++b) histogram_total += g.histogram[e * 4 + b];
            CHECK(histogram_total == values.size());
            ++e;
        }
        REQUIRE(g.nodes.size() == sizes.size());
        std::size_t k = 0;
        for (const auto& [node, size] : sizes) CHECK((g.nodes[k] == node && g.sizes[k++] == size));
    }
}

namespace {

vx::graph::RegionGraph toy_graph(std::vector<std::pair<std::uint64_t, std::uint64_t>> edges,
                                 std::vector<std::uint64_t> count, std::vector<double> mean,
                                 std::vector<std::uint64_t> nodes) {
    vx::graph::RegionGraph g;
    g.bins = 4;
    g.edges = std::move(edges);
    g.count = count;
    for (std::size_t e = 0; e < g.edges.size(); ++e) {
        g.sum.push_back(mean[e] * double(count[e]));
        g.min.push_back(float(mean[e]));
        g.max.push_back(float(mean[e]));
        for (std::size_t b = 0; b < 4; ++b)
            g.histogram.push_back(b == std::min<std::size_t>(3, std::size_t(mean[e] * 4)) ? std::uint32_t(count[e])
                                                                                          : 0);
    }
    g.nodes = std::move(nodes);
    g.sizes.assign(g.nodes.size(), 1);
    return g;
}

}  // namespace

TEST_CASE("agglomerate merges lowest scores first, one mapping per threshold, combined edges rescored") {
    // Triangle: 1-2 weak boundary (0.1), 2-3 (0.3 over 3 faces), 1-3 strong (0.9 over 1 face).
    const auto g = toy_graph({{1, 2}, {1, 3}, {2, 3}}, {1, 1, 3}, {0.1, 0.9, 0.3}, {1, 2, 3});
    const auto a = vx::graph::agglomerate(g, vx::graph::Score::mean, 0, {0.2, 0.4, 0.5});
    REQUIRE(a.segments.size() == 3);
    CHECK(a.segments[0] == std::vector<std::uint64_t>{1, 1, 3});
    // After 1+2, the edges to 3 combine: (0.9 * 1 + 0.3 * 3) / 4 = 0.45: above 0.4, below 0.5.
    CHECK(a.segments[1] == std::vector<std::uint64_t>{1, 1, 3});
    CHECK(a.segments[2] == std::vector<std::uint64_t>{1, 1, 1});
    REQUIRE(a.history.size() == 2);
    CHECK(a.history[1].a == 1);
    CHECK(a.history[1].b == 3);
    CHECK(a.history[1].score == Approx(0.45));
    // Max scoring: the combined edge scores 0.9, so 3 stays apart at 0.5.
    const auto b = vx::graph::agglomerate(g, vx::graph::Score::max, 0, {0.5});
    CHECK(b.segments[0] == std::vector<std::uint64_t>{1, 1, 3});
}

TEST_CASE("agglomerate breaks score ties by the lowest edge id and checks its arguments") {
    // A chain 5-6-7 with equal scores: edge (5,6) has id 0 and goes first.
    const auto g = toy_graph({{5, 6}, {6, 7}}, {1, 1}, {0.2, 0.2}, {5, 6, 7});
    const auto a = vx::graph::agglomerate(g, vx::graph::Score::quantile, 0.5, {0.9});
    REQUIRE(a.history.size() == 2);
    CHECK(a.history[0].a == 5);
    CHECK(a.history[0].b == 6);
    CHECK(a.segments[0] == std::vector<std::uint64_t>{5, 5, 5});
    CHECK_THROWS_AS(vx::graph::agglomerate(g, vx::graph::Score::mean, 0, {0.5, 0.5}), vx::InvalidArgument);
    auto bad = g;
    bad.edges[1].second = 9;
    CHECK_THROWS_AS(vx::graph::agglomerate(bad, vx::graph::Score::mean, 0, {0.5}), vx::InvalidArgument);
}

TEST_CASE("merge_small joins fragments below the size threshold along their strongest edges") {
    // Chain 1 - 2 - 3 - 4 with sizes 10, 2, 3, 10; strengths (1 - min): 0.9, 0.6, 0.8.
    vx::graph::RegionGraph g;
    g.edges = {{1, 2}, {2, 3}, {3, 4}};
    g.min = {0.1f, 0.4f, 0.2f};
    g.nodes = {1, 2, 3, 4};
    g.sizes = {10, 2, 3, 10};
    // Strongest first: 1-2 (0.9: 2 is small) -> {1, 2} of 12; 3-4 (0.8: 3 is small) -> {3, 4} of 13;
    // 2-3 (0.6) joins two segments of >= 5 voxels: no.
    CHECK(vx::graph::merge_small(g, 5, 0.0) == std::vector<std::uint64_t>{1, 1, 3, 3});
    CHECK(vx::graph::merge_small(g, 5, 0.85) == std::vector<std::uint64_t>{1, 1, 3, 4});
    CHECK(vx::graph::merge_small(g, 13, 0.0) == std::vector<std::uint64_t>{1, 1, 1, 1});  // 12 < 13 at 2-3
    CHECK(vx::graph::merge_small(g, 0, 0.0) == std::vector<std::uint64_t>{1, 2, 3, 4});
    g.edges[1] = {2, 5};
    CHECK_THROWS_AS(vx::graph::merge_small(g, 5, 0.0), vx::InvalidArgument);
}

TEST_CASE("seeded_cut splits two seeds at the weakest edge of the strongest path between them") {
    // A chain 0-1-2-3-4 with somata (seeds 7 and 9) at its ends, plus a weak shortcut 0-4 and a
    // node 5 hanging off 2; node 6 is on no edge.
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> edges{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {0, 4}, {2, 5}};
    const std::vector<double> scores{0.1, 0.2, 0.6, 0.3, 0.9, 0.05};
    const std::vector<std::uint64_t> seeds{7, 0, 0, 0, 9, 0, 0};
    const auto piece = vx::graph::seeded_cut(edges, scores, seeds);
    CHECK(piece == std::vector<std::uint64_t>{0, 0, 0, 3, 3, 0, 6});  // cut at 2-3 (0.6), not at 0-4
    // without seeds: connected components
    CHECK(vx::graph::seeded_cut(edges, scores, std::vector<std::uint64_t>(7, 0)) ==
          std::vector<std::uint64_t>{0, 0, 0, 0, 0, 0, 6});
    // three seeds on a star: three pieces, each centre edge cut where it is weakest
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> star{{0, 1}, {0, 2}, {0, 3}};
    CHECK(vx::graph::seeded_cut(star, {0.5, 0.2, 0.8}, {0, 1, 2, 3}) == std::vector<std::uint64_t>{0, 1, 0, 3});
    CHECK_THROWS_AS(vx::graph::seeded_cut(edges, {0.1}, seeds), vx::InvalidArgument);
    CHECK_THROWS_AS(vx::graph::seeded_cut({{0, 9}}, {0.1}, seeds), vx::InvalidArgument);
}
