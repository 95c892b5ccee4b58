#include <vector>

#include "catch.hpp"
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
