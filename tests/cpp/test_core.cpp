#include <atomic>
#include <set>
#include <stdexcept>

#include "catch.hpp"
#include "voxelytics/core/blocking.hpp"
#include "voxelytics/core/box.hpp"
#include "voxelytics/core/dtype.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"

using vx::Box;
using vx::Vec3;

TEST_CASE("floor and ceil division round toward -inf and +inf") {
    CHECK(vx::floor_div(7, 2) == 3);
    CHECK(vx::floor_div(-7, 2) == -4);
    CHECK(vx::floor_div(-8, 2) == -4);
    CHECK(vx::ceil_div(7, 2) == 4);
    CHECK(vx::ceil_div(-7, 2) == -3);
    CHECK(vx::ceil_div(8, 2) == 4);
}

TEST_CASE("Box intersection and union") {
    const Box a({0, 0, 0}, {10, 10, 10});
    const Box b({5, -5, 8}, {10, 10, 10});
    CHECK(a.intersection(b) == Box({5, 0, 8}, {5, 5, 2}));
    CHECK(a.union_with(b) == Box::from_corners({0, -5, 0}, {15, 10, 18}));
    CHECK(a.intersection(Box({10, 0, 0}, {1, 1, 1})).empty());  // touching is not overlapping
    CHECK(a.union_with(Box{}) == a);
    CHECK(a.contains(Vec3{9, 9, 9}));
    CHECK_FALSE(a.contains(Vec3{10, 0, 0}));
    CHECK(a.contains(Box({1, 1, 1}, {9, 9, 9})));
    CHECK_FALSE(a.contains(Box({1, 1, 1}, {10, 9, 9})));
    CHECK(a.volume() == 1000);
    REQUIRE_THROWS_AS(Box({0, 0, 0}, {1, -1, 1}), vx::InvalidArgument);
}

TEST_CASE("Box alignment to a grid") {
    const Box b({-3, 5, 32}, {10, 27, 1});
    CHECK(b.aligned_outward({8, 8, 32}) == Box::from_corners({-8, 0, 32}, {8, 32, 64}));
    CHECK(b.aligned_inward({8, 8, 1}) == Box::from_corners({0, 8, 32}, {0, 32, 33}));  // empty in x
    CHECK(b.aligned_inward({8, 8, 1}).empty());
    CHECK(Box({32, 0, 64}, {32, 32, 32}).is_aligned({32, 32, 32}));
    CHECK_FALSE(b.is_aligned({8, 8, 8}));
    REQUIRE_THROWS_AS(b.aligned_outward({0, 1, 1}), vx::InvalidArgument);
}

TEST_CASE("BlockGrid blocks sit on the absolute grid and tile the volume once") {
    const Box volume({5, 0, 0}, {30, 17, 9});
    const vx::BlockGrid grid(volume, {16, 16, 8}, {2, 2, 2});
    CHECK(grid.shape() == Vec3{3, 2, 2});  // x: [5,16) [16,32) [32,35)
    REQUIRE(grid.size() == 12);

    const vx::Block first = grid[0];
    CHECK(first.core == Box::from_corners({5, 0, 0}, {16, 16, 8}));
    CHECK(first.outer == Box::from_corners({5, 0, 0}, {18, 17, 9}));  // halo clipped at the border
    const vx::Block last = grid[grid.size() - 1];
    CHECK(last.grid_position == Vec3{2, 1, 1});
    CHECK(last.core == Box::from_corners({32, 16, 8}, {35, 17, 9}));
    CHECK(last.outer == Box::from_corners({30, 14, 6}, {35, 17, 9}));
    CHECK(grid[1].grid_position == Vec3{1, 0, 0});  // x fastest

    std::int64_t covered = 0;
    for (std::int64_t i = 0; i < grid.size(); ++i) {
        const Box core = grid[i].core;
        covered += core.volume();
        CHECK(volume.contains(core));
        for (std::int64_t j = i + 1; j < grid.size(); ++j) CHECK(core.intersection(grid[j].core).empty());
    }
    CHECK(covered == volume.volume());

    const auto hits = grid.blocks_overlapping(Box({15, 15, 0}, {2, 2, 1}));
    REQUIRE(hits.size() == 4);
    CHECK(hits[0].index == 0);
    CHECK(hits[3].index == 4);
    REQUIRE_THROWS_AS(grid[12], vx::InvalidArgument);
    REQUIRE_THROWS_AS(vx::BlockGrid(volume, {0, 1, 1}), vx::InvalidArgument);
    CHECK(vx::BlockGrid(Box{}, {8, 8, 8}).size() == 0);
}

TEST_CASE("parallel_for visits every index once and rethrows task errors") {
    for (std::size_t threads : {1, 2, 4}) {
        vx::ThreadPool pool(threads);
        CHECK(pool.size() == threads);
        std::vector<std::atomic<int>> hits(1000);
        vx::parallel_for(pool, 0, 1000, [&](std::int64_t i) { hits[static_cast<std::size_t>(i)]++; });
        for (auto& h : hits) CHECK(h.load() == 1);

        REQUIRE_THROWS_AS(vx::parallel_for(pool, 0, 100,
                                           [](std::int64_t i) {
                                               if (i == 57) throw vx::InvalidArgument("bad index 57");
                                           }),
                          vx::InvalidArgument);
        // The pool stays usable after an error.
        std::atomic<std::int64_t> sum{0};
        vx::parallel_for(pool, 0, 10, [&](std::int64_t i) { sum += i; }, 10);
        CHECK(sum.load() == 45);
    }
}

TEST_CASE("dispatch maps runtime dtypes to types and names the supported ones") {
    CHECK(vx::dispatch<vx::UnsignedTypes>(vx::DType::uint16, "labels",
                                          [](auto tag) { return sizeof(typename decltype(tag)::type); }) == 2);
    try {
        vx::dispatch<vx::UnsignedTypes>(vx::DType::float32, "labels", [](auto) {});
        FAIL("expected UnsupportedType");
    } catch (const vx::UnsupportedType& e) {
        CHECK(std::string(e.what()) ==
              "labels has unsupported dtype float32; supported: uint8, uint16, uint32, uint64");
    }
}

TEST_CASE("View indexes x fastest and adapts to xtensor without copying") {
    vx::Volume<int> vol = vx::Volume<int>::from_shape({4, 3, 2});
    for (std::size_t i = 0; i < vol.size(); ++i) vol.data()[i] = static_cast<int>(i);
    const vx::View<int> v(vol);
    CHECK(v.shape() == Vec3{4, 3, 2});
    CHECK(v(1, 0, 0) == 1);
    CHECK(v(0, 1, 0) == 4);
    CHECK(v(0, 0, 1) == 12);
    auto x = vx::as_xtensor(v);
    CHECK(x(3, 2, 1) == 23);
    x(0, 0, 0) = 99;
    CHECK(vol(0, 0, 0) == 99);
    int dummy = 0;
    REQUIRE_THROWS_AS(vx::View<int>(&dummy, {1, -1, 1}), vx::InvalidArgument);
}
