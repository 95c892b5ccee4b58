#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <queue>
#include <random>
#include <set>
#include <tuple>

#include "catch.hpp"
#include "voxelytics/segmentation/connected_components.hpp"
#include "voxelytics/segmentation/distance_height.hpp"
#include "voxelytics/segmentation/distance_transform.hpp"
#include "voxelytics/segmentation/label_statistics.hpp"
#include "voxelytics/segmentation/relabel.hpp"
#include "voxelytics/segmentation/steepest_ascent.hpp"
#include "voxelytics/segmentation/watershed.hpp"

using vx::Vec3;
using vx::segmentation::Connectivity;
using vx::segmentation::Foreground;
template <class T>
using Volume = vx::Volume<T>;

namespace {

template <class T>
Volume<T> zeros(Vec3 s) {
    Volume<T> v = Volume<T>::from_shape(
        {static_cast<std::size_t>(s.x), static_cast<std::size_t>(s.y), static_cast<std::size_t>(s.z)});
    v.fill(T{0});
    return v;
}

template <class T>
std::pair<Volume<std::uint64_t>, std::uint64_t> cc(Volume<T>& in, int conn, std::size_t threads = 1,
                                                   Foreground fg = Foreground::per_label) {
    Volume<std::uint64_t> out =
        zeros<std::uint64_t>({static_cast<std::int64_t>(in.shape()[0]), static_cast<std::int64_t>(in.shape()[1]),
                              static_cast<std::int64_t>(in.shape()[2])});
    vx::ThreadPool pool(threads);
    const auto n =
        vx::segmentation::connected_components<T>(vx::View<const T>(vx::View<T>(in)), vx::View<std::uint64_t>(out),
                                                  vx::segmentation::connectivity_from_int(conn), pool, fg);
    return {std::move(out), n};
}

// Reference: breadth-first flood fill, numbering components in scan order.
template <class T>
Volume<std::uint64_t> flood_fill(const Volume<T>& in, int conn) {
    const auto sx = static_cast<std::int64_t>(in.shape()[0]), sy = static_cast<std::int64_t>(in.shape()[1]),
               sz = static_cast<std::int64_t>(in.shape()[2]);
    Volume<std::uint64_t> out = zeros<std::uint64_t>({sx, sy, sz});
    std::uint64_t next = 0;
    for (std::int64_t z = 0; z < sz; ++z)
        for (std::int64_t y = 0; y < sy; ++y)
            for (std::int64_t x = 0; x < sx; ++x) {
                if (in(x, y, z) == 0 || out(x, y, z) != 0) continue;
                const std::uint64_t id = ++next;
                std::queue<Vec3> todo;
                todo.push({x, y, z});
                out(x, y, z) = id;
                while (!todo.empty()) {
                    const Vec3 p = todo.front();
                    todo.pop();
                    for (int dz = -1; dz <= 1; ++dz)
                        for (int dy = -1; dy <= 1; ++dy)
                            for (int dx = -1; dx <= 1; ++dx) {
                                const int order = std::abs(dx) + std::abs(dy) + std::abs(dz);
                                if (order == 0 || (conn == 6 && order > 1) || (conn == 18 && order > 2)) continue;
                                const Vec3 q{p.x + dx, p.y + dy, p.z + dz};
                                if (q.x < 0 || q.y < 0 || q.z < 0 || q.x >= sx || q.y >= sy || q.z >= sz) continue;
                                if (in(q.x, q.y, q.z) != in(p.x, p.y, p.z) || out(q.x, q.y, q.z) != 0) continue;
                                out(q.x, q.y, q.z) = id;
                                todo.push(q);
                            }
                }
            }
    return out;
}

}  // namespace

TEST_CASE("connected components of empty and all-zero volumes") {
    auto empty = zeros<std::uint8_t>({0, 4, 4});
    CHECK(cc(empty, 26).second == 0);
    auto blank = zeros<std::uint32_t>({5, 4, 3});
    const auto [out, n] = cc(blank, 6, 2);
    CHECK(n == 0);
    CHECK(std::all_of(out.begin(), out.end(), [](std::uint64_t v) { return v == 0; }));
}

TEST_CASE("a single voxel is one component, wherever it is") {
    for (const Vec3 p : {Vec3{0, 0, 0}, Vec3{6, 4, 2}, Vec3{3, 2, 1}}) {
        auto vol = zeros<std::uint16_t>({7, 5, 3});
        vol(p.x, p.y, p.z) = 9;
        const auto [out, n] = cc(vol, 26);
        CHECK(n == 1);
        CHECK(out(p.x, p.y, p.z) == 1);
        CHECK(std::accumulate(out.begin(), out.end(), std::uint64_t{0}) == 1);
    }
}

TEST_CASE("diagonal neighbours connect exactly under their connectivity") {
    struct Case {
        Vec3 offset;
        std::uint64_t n6, n18, n26;
    };
    // Two voxels at (1,1,1) and (1,1,1)+offset: a face, an edge or a corner apart.
    for (const Case c : {Case{{1, 0, 0}, 1, 1, 1}, Case{{0, 0, 1}, 1, 1, 1}, Case{{1, 1, 0}, 2, 1, 1},
                         Case{{0, 1, 1}, 2, 1, 1}, Case{{-1, 0, 1}, 2, 1, 1}, Case{{1, -1, 1}, 2, 2, 1},
                         Case{{-1, -1, 1}, 2, 2, 1}, Case{{1, 1, 1}, 2, 2, 1}, Case{{2, 0, 0}, 2, 2, 2}}) {
        auto vol = zeros<std::uint8_t>({4, 4, 4});
        vol(1, 1, 1) = 1;
        vol(1 + c.offset.x, 1 + c.offset.y, 1 + c.offset.z) = 1;
        INFO("offset " << c.offset);
        CHECK(cc(vol, 6).second == c.n6);
        CHECK(cc(vol, 18).second == c.n18);
        CHECK(cc(vol, 26).second == c.n26);
    }
}

TEST_CASE("different labels never merge, binary mode merges all foreground") {
    auto vol = zeros<std::uint32_t>({4, 1, 1});
    vol(0, 0, 0) = 1;
    vol(1, 0, 0) = 2;
    vol(2, 0, 0) = 2;
    vol(3, 0, 0) = 1;
    const auto [out, n] = cc(vol, 26);
    CHECK(n == 3);
    CHECK(out(0, 0, 0) == 1);
    CHECK(out(1, 0, 0) == 2);
    CHECK(out(2, 0, 0) == 2);
    CHECK(out(3, 0, 0) == 3);
    CHECK(cc(vol, 26, 1, Foreground::binary).second == 1);
}

TEST_CASE("rows and planes do not wrap around at the volume border") {
    // The last voxel of a row is followed in memory by the first voxel of the next row.
    auto vol = zeros<std::uint8_t>({3, 3, 2});
    vol(2, 0, 0) = 1;
    vol(0, 1, 0) = 1;  // memory-adjacent to (2,0,0), not a neighbour under 6 or 18 connectivity
    vol(0, 2, 0) = 5;
    vol(2, 0, 1) = 5;  // neighbour of neither
    CHECK(cc(vol, 6).second == 4);
    CHECK(cc(vol, 26).second == 4);
}

TEST_CASE("extreme label values are ordinary labels") {
    auto vol = zeros<std::uint64_t>({3, 2, 2});
    const std::uint64_t top = std::numeric_limits<std::uint64_t>::max();
    vol(0, 0, 0) = top;
    vol(1, 0, 0) = top;
    vol(2, 1, 1) = top;
    vol(2, 0, 0) = top - 1;
    const auto [out, n] = cc(vol, 6);
    CHECK(n == 3);
    CHECK(out(1, 0, 0) == 1);
    CHECK(out(2, 0, 0) == 2);
    CHECK(out(2, 1, 1) == 3);

    auto bytes = zeros<std::uint8_t>({2, 1, 1});
    bytes(0, 0, 0) = 255;
    bytes(1, 0, 0) = 255;
    CHECK(cc(bytes, 6).second == 1);
}

TEST_CASE("connected components match a flood fill for every connectivity and thread count") {
    std::mt19937 rng(42);
    for (const Vec3 shape : {Vec3{17, 13, 11}, Vec3{40, 3, 2}, Vec3{1, 30, 30}, Vec3{5, 1, 1}}) {
        auto vol = zeros<std::uint16_t>(shape);
        std::uniform_int_distribution<int> value(0, 3);
        for (auto& v : vol) v = static_cast<std::uint16_t>(value(rng));
        for (int conn : {6, 18, 26}) {
            const Volume<std::uint64_t> expected = flood_fill(vol, conn);
            for (std::size_t threads : {1, 2, 3, 7}) {
                INFO("shape " << shape << " connectivity " << conn << " threads " << threads);
                const auto [out, n] = cc(vol, conn, threads);
                CHECK(n == *std::max_element(expected.begin(), expected.end()));
                CHECK(out == expected);
            }
        }
    }
}

TEST_CASE("connected components of blocky labels (runs covered by their neighbours) match a flood fill") {
    // Boxes of a few voxels with random values and some zero walls: most runs are covered by a
    // run of their value in the previous row or plane, the case where 26-connectivity skips rows.
    std::mt19937 rng(5);
    const Vec3 shape{37, 19, 15};
    auto vol = zeros<std::uint32_t>(shape);
    std::uniform_int_distribution<int> value(0, 4), wall(0, 9);
    std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t>, std::uint32_t> box_value;
    for (std::int64_t z = 0; z < shape.z; ++z)
        for (std::int64_t y = 0; y < shape.y; ++y)
            for (std::int64_t x = 0; x < shape.x; ++x) {
                const auto key = std::make_tuple((x + y / 3) / 6, (y + z / 4) / 3, z / 4);
                if (!box_value.count(key)) box_value[key] = static_cast<std::uint32_t>(value(rng));
                vol(x, y, z) = wall(rng) == 0 ? 0 : box_value[key];
            }
    for (int conn : {6, 18, 26}) {
        const Volume<std::uint64_t> expected = flood_fill(vol, conn);
        for (std::size_t threads : {1, 2, 5}) {
            INFO("connectivity " << conn << " threads " << threads);
            const auto [out, n] = cc(vol, conn, threads);
            CHECK(n == *std::max_element(expected.begin(), expected.end()));
            CHECK(out == expected);
        }
    }
}

TEST_CASE("copy_row copies every length at every alignment, with and without streaming stores") {
    std::vector<std::uint64_t> from(80), to(90);
    std::iota(from.begin(), from.end(), std::uint64_t{1});
    for (const bool stream : {false, true})
        for (std::size_t offset = 0; offset < 4; ++offset)
            for (std::int64_t n = 0; n < 70; ++n) {
                std::fill(to.begin(), to.end(), 0);
                vx::segmentation::detail::copy_row(from.data(), to.data() + offset, n, stream);
                vx::segmentation::detail::end_streaming(stream);
                INFO("stream " << stream << " offset " << offset << " n " << n);
                CHECK(std::equal(from.begin(), from.begin() + n, to.begin() + static_cast<std::ptrdiff_t>(offset)));
                CHECK(std::count(to.begin(), to.end(), 0) == static_cast<std::ptrdiff_t>(to.size()) - n);
            }
    std::vector<std::uint16_t> small_from(50, 7), small_to(60, 0);  // 2-byte ids: offsets of 2 bytes
    vx::segmentation::detail::copy_row(small_from.data(), small_to.data() + 1, 41, true);
    vx::segmentation::detail::end_streaming(true);
    CHECK(std::count(small_to.begin(), small_to.end(), 7) == 41);
    CHECK(small_to[0] == 0);
    CHECK(small_to[42] == 0);
}

TEST_CASE("Components counts first and writes ids of the type asked for, refusing ones too small") {
    // 75,000 isolated voxels (every other voxel of every other row and plane): more than uint16 holds.
    auto vol = zeros<std::uint8_t>({200, 100, 30});
    for (std::int64_t z = 0; z < 30; z += 2)
        for (std::int64_t y = 0; y < 100; y += 2)
            for (std::int64_t x = 0; x < 200; x += 2) vol(x, y, z) = 1;
    auto small = zeros<std::uint8_t>({17, 13, 11});
    std::mt19937 rng(7);
    for (auto& v : small) v = static_cast<std::uint8_t>(rng() % 3);
    vx::ThreadPool pool(3);
    const vx::segmentation::Components<std::uint8_t> few(vx::View<const std::uint8_t>(vx::View<std::uint8_t>(small)),
                                                         Connectivity::vertices, pool);
    auto ids16 = zeros<std::uint16_t>({17, 13, 11});
    few.write(vx::View<std::uint16_t>(ids16), pool);
    const Volume<std::uint64_t> expected = flood_fill(small, 26);
    CHECK(few.count() == *std::max_element(expected.begin(), expected.end()));
    CHECK(std::equal(ids16.begin(), ids16.end(), expected.begin()));

    const vx::segmentation::Components<std::uint8_t> many(vx::View<const std::uint8_t>(vx::View<std::uint8_t>(vol)),
                                                          Connectivity::faces, pool);
    CHECK(many.count() == 100 * 50 * 15);
    auto too_small = zeros<std::uint16_t>({200, 100, 30});
    REQUIRE_THROWS_AS(many.write(vx::View<std::uint16_t>(too_small), pool), vx::InvalidArgument);
    auto ids32 = zeros<std::uint32_t>({200, 100, 30});
    many.write(vx::View<std::uint32_t>(ids32), pool);
    CHECK(ids32(0, 0, 0) == 1);
    CHECK(ids32(198, 98, 28) == 100 * 50 * 15);
}

TEST_CASE("relabel_sequential numbers values in increasing order") {
    auto vol = zeros<std::uint32_t>({4, 2, 1});
    const std::uint32_t values[] = {0, 70, 70, 5, 1000, 0, 5, 4000000000u};
    std::copy(std::begin(values), std::end(values), vol.begin());
    auto out = zeros<std::uint64_t>({4, 2, 1});
    vx::ThreadPool pool(2);
    const auto old = vx::segmentation::relabel_sequential<std::uint32_t>(vx::View<std::uint32_t>(vol),
                                                                         vx::View<std::uint64_t>(out), pool);
    CHECK(old == std::vector<std::uint32_t>{5, 70, 1000, 4000000000u});
    const std::uint64_t expected[] = {0, 2, 2, 1, 3, 0, 1, 4};
    CHECK(std::equal(out.begin(), out.end(), std::begin(expected)));
}

TEST_CASE("remap applies a mapping and reports or keeps missing labels") {
    auto vol = zeros<std::uint8_t>({3, 1, 1});
    vol(0, 0, 0) = 3;
    vol(2, 0, 0) = 7;
    auto out = zeros<std::uint64_t>({3, 1, 1});
    vx::ThreadPool pool(1);
    using vx::segmentation::MissingLabels;
    vx::segmentation::remap<std::uint8_t>(vx::View<std::uint8_t>(vol), vx::View<std::uint64_t>(out), {3, 7, 300},
                                          {10, 20, 30}, MissingLabels::raise, pool);
    CHECK(out(0, 0, 0) == 10);
    CHECK(out(1, 0, 0) == 0);
    CHECK(out(2, 0, 0) == 20);

    try {
        vx::segmentation::remap<std::uint8_t>(vx::View<std::uint8_t>(vol), vx::View<std::uint64_t>(out), {3}, {10},
                                              MissingLabels::raise, pool);
        FAIL("expected KeyNotFound");
    } catch (const vx::KeyNotFound& e) {
        CHECK(std::string(e.what()) == "remap: label 7 (at voxel (2, 0, 0)) is not in the mapping");
    }
    vx::segmentation::remap<std::uint8_t>(vx::View<std::uint8_t>(vol), vx::View<std::uint64_t>(out), {3}, {10},
                                          MissingLabels::keep, pool);
    CHECK(out(2, 0, 0) == 7);
    REQUIRE_THROWS_AS(vx::segmentation::remap<std::uint8_t>(vx::View<std::uint8_t>(vol), vx::View<std::uint64_t>(out),
                                                            {3, 3}, {1, 2}, MissingLabels::keep, pool),
                      vx::InvalidArgument);
}

TEST_CASE("connectivity other than 6, 18, 26 is refused") {
    REQUIRE_THROWS_AS(vx::segmentation::connectivity_from_int(8), vx::InvalidArgument);
}

namespace {

// Brute force: the squared distance from each voxel to the nearest voxel of another value (and,
// with a background border, to the nearest centre outside the volume).
std::vector<double> brute_force_edt(const std::vector<std::uint16_t>& labels, vx::Vec3 s, std::array<double, 3> a,
                                    bool background_border) {
    std::vector<double> out(labels.size());
    auto at = [&](std::int64_t x, std::int64_t y, std::int64_t z) { return x + s.x * (y + s.y * z); };
    for (std::int64_t z = 0; z < s.z; ++z)
        for (std::int64_t y = 0; y < s.y; ++y)
            for (std::int64_t x = 0; x < s.x; ++x) {
                const auto value = labels[std::size_t(at(x, y, z))];
                double best = std::numeric_limits<double>::infinity();
                if (value == 0) best = 0;
                for (std::int64_t k = 0; value != 0 && k < s.z; ++k)
                    for (std::int64_t j = 0; j < s.y; ++j)
                        for (std::int64_t i = 0; i < s.x; ++i)
                            if (labels[std::size_t(at(i, j, k))] != value) {
                                const double dx = (i - x) * a[0], dy = (j - y) * a[1], dz = (k - z) * a[2];
                                best = std::min(best, dx * dx + dy * dy + dz * dz);
                            }
                if (value != 0 && background_border) {
                    const vx::Vec3 p{x, y, z};
                    for (std::size_t d = 0; d < 3; ++d) {
                        const double face = double(std::min(p[d] + 1, s[d] - p[d])) * a[d];
                        best = std::min(best, face * face);
                    }
                }
                out[std::size_t(at(x, y, z))] = best;
            }
    return out;
}

}  // namespace

TEST_CASE("distance_transform equals brute force for many labels, anisotropic voxels and both borders") {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 6; ++trial) {
        const vx::Vec3 s{std::int64_t(5 + rng() % 14), std::int64_t(4 + rng() % 11), std::int64_t(3 + rng() % 9)};
        // Blocky labels (runs of equal values along every axis) with some background.
        std::vector<std::uint16_t> labels(std::size_t(s.prod()));
        for (std::int64_t z = 0; z < s.z; ++z)
            for (std::int64_t y = 0; y < s.y; ++y)
                for (std::int64_t x = 0; x < s.x; ++x)
                    labels[std::size_t(x + s.x * (y + s.y * z))] =
                        std::uint16_t(((x / 3) * 7 + (y / 2) * 3 + (z / 2) * 5 + trial) % 4);
        for (int k = 0; k < 10; ++k) labels[rng() % labels.size()] = std::uint16_t(rng() % 4);
        const std::array<double, 3> a{1.0 + trial % 2, 1.5, 3.0 - trial % 3};
        for (const bool background : {false, true}) {
            const auto expected = brute_force_edt(labels, s, a, background);
            std::vector<float> out(labels.size());
            vx::ThreadPool pool(1 + trial % 3);
            vx::segmentation::distance_transform<std::uint16_t>(
                vx::View<const std::uint16_t>(labels.data(), s), vx::View<float>(out.data(), s), a, true,
                background ? vx::segmentation::Border::background : vx::segmentation::Border::same_label, pool);
            for (std::size_t i = 0; i < out.size(); ++i) {
                if (std::isinf(expected[i])) {
                    REQUIRE(std::isinf(out[i]));
                } else {
                    REQUIRE(out[i] == Approx(expected[i]).epsilon(1e-5));
                }
            }
            // Capped (the windowed passes): min(exact, cap) everywhere, for caps that cut
            // through the distances, a cap of 0, and one beyond them all.
            for (const double cap : {0.0, 2.0, 3.7, 100.0}) {
                vx::segmentation::distance_transform<std::uint16_t>(
                    vx::View<const std::uint16_t>(labels.data(), s), vx::View<float>(out.data(), s), a, true,
                    background ? vx::segmentation::Border::background : vx::segmentation::Border::same_label, pool,
                    cap);
                for (std::size_t i = 0; i < out.size(); ++i)
                    REQUIRE(out[i] == Approx(std::min(expected[i], cap * cap)).epsilon(1e-5).margin(1e-6));
            }
        }
    }
}

TEST_CASE("distance_transform: a label alone in the volume is infinitely far from a boundary, bad sizes fail") {
    std::vector<std::uint8_t> labels(4 * 3 * 2, 5);
    std::vector<float> out(labels.size());
    vx::ThreadPool pool(2);
    const vx::View<const std::uint8_t> in(labels.data(), {4, 3, 2});
    vx::segmentation::distance_transform<std::uint8_t>(in, vx::View<float>(out.data(), {4, 3, 2}), {1, 1, 1}, false,
                                                       vx::segmentation::Border::same_label, pool);
    for (float v : out) CHECK(std::isinf(v));
    vx::segmentation::distance_transform<std::uint8_t>(in, vx::View<float>(out.data(), {4, 3, 2}), {1, 1, 1}, false,
                                                       vx::segmentation::Border::background, pool);
    CHECK(out[0] == 1.0f);
    CHECK(out[1 + 4 * 1] == 1.0f);  // (1, 1, 0): one step to the z face
    CHECK_THROWS_AS(
        vx::segmentation::distance_transform<std::uint8_t>(in, vx::View<float>(out.data(), {4, 3, 2}), {1, 0, 1}, false,
                                                           vx::segmentation::Border::same_label, pool),
        vx::InvalidArgument);
    // Capped, the lone label is as far as the cap; a negative cap is refused.
    vx::segmentation::distance_transform<std::uint8_t>(in, vx::View<float>(out.data(), {4, 3, 2}), {1, 1, 1}, false,
                                                       vx::segmentation::Border::same_label, pool, 2.5);
    for (float v : out) CHECK(v == 2.5f);
    CHECK_THROWS_AS(
        vx::segmentation::distance_transform<std::uint8_t>(in, vx::View<float>(out.data(), {4, 3, 2}), {1, 1, 1}, false,
                                                           vx::segmentation::Border::same_label, pool, -1.0),
        vx::InvalidArgument);
}

TEST_CASE("distance_height: smoothed capped distance inside cells, negated distance plus boundary outside") {
    // A membrane plane at x = 6 (boundary 0.9) in a 15 x 4 x 3 volume; inside voxels elsewhere.
    const vx::Vec3 s{15, 4, 3};
    std::vector<float> boundary(std::size_t(s.prod()), 0.1f), out(boundary.size());
    for (std::int64_t z = 0; z < s.z; ++z)
        for (std::int64_t y = 0; y < s.y; ++y) boundary[std::size_t(6 + s.x * (y + s.y * z))] = 0.9f;
    vx::ThreadPool pool(2);
    const vx::View<const float> b(boundary.data(), s);
    // No smoothing: inside = min(|x - 6|, cap); the membrane: -(1 + 0.5 * 0.9).
    vx::segmentation::distance_height(b, vx::View<float>(out.data(), s), 0.5f, {1, 1, 1}, 4.0, {0, 0, 0}, 0.5f, pool);
    for (std::int64_t x = 0; x < s.x; ++x) {
        const float expected = x == 6 ? -(1.0f + 0.45f) : float(std::min<std::int64_t>(std::abs(x - 6), 4));
        CHECK(out[std::size_t(x + s.x * 2)] == Approx(expected));
    }
    // Smoothing along x only: inside values are the Gaussian of the inside distances (0 on the
    // membrane), reflected at the faces; the membrane keeps its unsmoothed value.
    vx::segmentation::distance_height(b, vx::View<float>(out.data(), s), 0.5f, {1, 1, 1}, 4.0, {1, 0, 0}, 0.5f, pool);
    const std::vector<float> w = vx::filters::gaussian_half_kernel(1.0, 4.0);
    for (std::int64_t x = 0; x < s.x; ++x) {
        double expected = -(1.0 + 0.45);
        if (x != 6) {
            expected = 0;
            for (std::int64_t k = -4; k <= 4; ++k) {
                const std::int64_t at = vx::detail::reflect(x + k, s.x);
                expected +=
                    w[std::size_t(std::abs(k))] * (at == 6 ? 0.0 : double(std::min<std::int64_t>(std::abs(at - 6), 4)));
            }
        }
        CHECK(out[std::size_t(x + s.x * 2)] == Approx(expected).epsilon(1e-5));
    }
}

namespace {

/// Basins of the whole volume under `rule`, as a labels vector.
template <class Rule>
std::vector<std::uint64_t> whole_basins(const Rule& rule) {
    const vx::Vec3 s = rule.shape();
    std::vector<std::uint64_t> labels(static_cast<std::size_t>(s.prod()));
    vx::ThreadPool pool(2);
    vx::segmentation::steepest_ascent_basins(rule, vx::Box({0, 0, 0}, s), vx::View<std::uint64_t>(labels.data(), s),
                                             pool);
    return labels;
}

}  // namespace

TEST_CASE("steepest_ascent_basins: every voxel joins the basin its ascent ends in, plateaus are one") {
    // Heights along x: 1 3 2 5 4 | 7 7: two peaks (3 and 5) and a plateau of two 7s.
    std::vector<float> height = {1, 3, 2, 5, 4, 0, 7, 7};
    const vx::Vec3 s{8, 1, 1};
    const auto labels = whole_basins(vx::segmentation::HeightRule{vx::View<const float>(height.data(), s)});
    CHECK(labels == std::vector<std::uint64_t>{1, 1, 2, 2, 2, 3, 3, 3});
    // The core (2..5) of the same region: links across its upper x-face are reported, not followed.
    vx::ThreadPool pool(1);
    std::vector<std::uint64_t> core_labels(3);
    const auto basins = vx::segmentation::steepest_ascent_basins(
        vx::segmentation::HeightRule{vx::View<const float>(height.data(), s)}, vx::Box({2, 0, 0}, {3, 1, 1}),
        vx::View<std::uint64_t>(core_labels.data(), {3, 1, 1}), pool);
    CHECK(core_labels == std::vector<std::uint64_t>{1, 1, 1});
    CHECK(basins.first_voxel == std::vector<std::int64_t>{0});
    REQUIRE(basins.upper_links[0].size() == 1);
    CHECK(basins.upper_links[0][0] == 0);  // 4 (x = 4) climbs to 5, not to 0 (x = 5)
    CHECK(basins.upper_links[1].empty());
}

TEST_CASE("steepest_ascent_basins with Zlateski & Seung's affinity rule") {
    const vx::Vec3 s{4, 1, 1};
    std::vector<float> ay(4, 0), az(4, 0);
    vx::ThreadPool pool(2);
    auto run = [&](std::vector<float> ax, float low, float high) {
        std::vector<float> interleaved;  // c fastest
        for (std::size_t i = 0; i < ax.size(); ++i) interleaved.insert(interleaved.end(), {ax[i], ay[i], az[i]});
        return whole_basins(
            vx::segmentation::AffinityRule(vx::AffinityView<float>{interleaved.data(), s}, low, high, pool));
    };
    // ax[v] links v - 1 and v. Strong pairs (0, 1) and (2, 3) split by a weak edge.
    CHECK(run({0, 0.9f, 0.2f, 0.95f}, 0.1f, 1.0f) == std::vector<std::uint64_t>{1, 1, 2, 2});
    // Rising edges: 0 climbs to 1, 1 to 2; one basin.
    CHECK(run({0, 0.5f, 0.8f, 0.9f}, 0.1f, 1.0f) == std::vector<std::uint64_t>{1, 1, 1, 1});
    // Capped at high = 0.5, every edge >= 0.5 is one plateau: 0.9 and 0.95 no longer differ.
    CHECK(run({0, 0.6f, 0.7f, 0.9f}, 0.1f, 0.5f) == std::vector<std::uint64_t>{1, 1, 1, 1});
    // Below low an edge is cut; a voxel left with none is in no fragment.
    CHECK(run({0, 0.05f, 0.8f, 0.9f}, 0.1f, 1.0f) == std::vector<std::uint64_t>{0, 1, 1, 1});
    // A NaN is refused, not taken for a cut edge.
    CHECK_THROWS_AS(run({0, 0.5f, std::numeric_limits<float>::quiet_NaN(), 0.9f}, 0.1f, 1.0f), vx::InvalidArgument);
}

TEST_CASE("steepest_ascent_basins: blocks joined by their upper links give the whole volume's partition") {
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> level(0, 3);  // few levels: many ties and plateaus
    const vx::Vec3 s{9, 7, 6};
    std::vector<float> height(static_cast<std::size_t>(s.prod()));
    for (auto& h : height) h = float(level(rng));
    const vx::segmentation::HeightRule rule{vx::View<const float>(height.data(), s)};
    const auto whole = whole_basins(rule);
    {  // The whole volume against a direct construction: follow each climb to its peak, join level peaks.
        auto index = [&](const vx::Vec3& p) { return p.x + s.x * (p.y + s.y * p.z); };
        auto unravel = [&](std::int64_t i) { return vx::Vec3{i % s.x, (i / s.x) % s.y, i / (s.x * s.y)}; };
        const std::int64_t step[6] = {-1, 1, -s.x, s.x, -s.x * s.y, s.x * s.y};
        vx::graph::UnionFind<std::uint64_t> peaks(static_cast<std::size_t>(s.prod()));
        std::vector<std::int64_t> peak_of(static_cast<std::size_t>(s.prod()));
        for (std::int64_t i = 0; i < s.prod(); ++i) {
            std::int64_t at = i;
            for (int d; (d = rule.climb(at, unravel(at))) >= 0;) at += step[d];
            peak_of[std::size_t(i)] = at;
            for (std::size_t axis = 0; axis < 3; ++axis) {
                vx::Vec3 q = unravel(i);
                if (++q[axis] >= s[axis]) continue;
                const std::int64_t j = index(q);
                if (rule.climb(i, unravel(i)) < 0 && rule.climb(j, q) < 0 && rule.level(i, int(2 * axis + 1), j))
                    peaks.merge(std::uint64_t(i), std::uint64_t(j));
            }
        }
        std::map<std::uint64_t, std::uint64_t> label_of_peak;
        for (std::int64_t i = 0; i < s.prod(); ++i) {
            const auto [it, added] =
                label_of_peak.try_emplace(peaks.find(std::uint64_t(peak_of[std::size_t(i)])), whole[std::size_t(i)]);
            CHECK(it->second == whole[std::size_t(i)]);
        }
        CHECK(label_of_peak.size() == std::set<std::uint64_t>(whole.begin(), whole.end()).size());
        // Numbered 1, 2, ... by first voxel in scan order, the same labels for any thread count.
        std::uint64_t seen = 0;
        for (const std::uint64_t label : whole) {
            CHECK(label <= seen + 1);
            seen = std::max(seen, label);
        }
        for (std::size_t threads : {1, 4, 6}) {
            std::vector<std::uint64_t> labels(whole.size());
            vx::ThreadPool pool(threads);
            vx::segmentation::steepest_ascent_basins(rule, vx::Box({0, 0, 0}, s),
                                                     vx::View<std::uint64_t>(labels.data(), s), pool);
            CHECK(labels == whole);
        }
    }
    // Blocks of 4 x 3 x 6 on the whole array as region (the rule's halo is always there).
    vx::ThreadPool pool(3);
    vx::graph::UnionFind<std::uint64_t> sets(static_cast<std::size_t>(s.prod()));
    std::vector<std::int64_t> first_of_voxel(static_cast<std::size_t>(s.prod()), -1);
    auto index = [&](const vx::Vec3& p) { return p.x + s.x * (p.y + s.y * p.z); };
    for (std::int64_t bz = 0; bz < s.z; bz += 6)
        for (std::int64_t by = 0; by < s.y; by += 3)
            for (std::int64_t bx = 0; bx < s.x; bx += 4) {
                const vx::Box core = vx::Box({bx, by, bz}, {4, 3, 6}).intersection(vx::Box({0, 0, 0}, s));
                const vx::Vec3 cs = core.size();
                std::vector<std::uint64_t> labels(static_cast<std::size_t>(cs.prod()));
                const auto b = vx::segmentation::steepest_ascent_basins(
                    rule, core, vx::View<std::uint64_t>(labels.data(), cs), pool);
                for (std::int64_t k = 0; k < cs.prod(); ++k) {  // join each voxel with its label's first voxel
                    const vx::Vec3 q{k % cs.x, (k / cs.x) % cs.y, k / (cs.x * cs.y)};
                    const std::int64_t f = b.first_voxel[labels[std::size_t(k)] - 1];
                    const vx::Vec3 fq{f % cs.x, (f / cs.x) % cs.y, f / (cs.x * cs.y)};
                    sets.merge(std::uint64_t(index(core.topleft() + q)), std::uint64_t(index(core.topleft() + fq)));
                }
                for (int axis = 0; axis < 3; ++axis)
                    for (std::size_t f = 0; f < b.upper_links[std::size_t(axis)].size(); ++f) {
                        if (!b.upper_links[std::size_t(axis)][f]) continue;
                        const std::int64_t other = axis == 0 ? cs.y : cs.x;
                        vx::Vec3 q{0, 0, 0};
                        q[std::size_t(axis)] = cs[std::size_t(axis)] - 1;
                        q[axis == 0 ? 1 : 0] = std::int64_t(f) % other;
                        q[axis == 2 ? 1 : 2] = std::int64_t(f) / other;
                        vx::Vec3 next = core.topleft() + q;
                        next[std::size_t(axis)] += 1;
                        sets.merge(std::uint64_t(index(core.topleft() + q)), std::uint64_t(index(next)));
                    }
            }
    // Same partition: voxels share a whole-volume label exactly when they share a set.
    std::map<std::uint64_t, std::uint64_t> label_of_set;
    for (std::int64_t i = 0; i < s.prod(); ++i) {
        const auto [it, added] = label_of_set.try_emplace(sets.find(std::uint64_t(i)), whole[std::size_t(i)]);
        CHECK(it->second == whole[std::size_t(i)]);
    }
    std::set<std::uint64_t> distinct(whole.begin(), whole.end());
    CHECK(label_of_set.size() == distinct.size());
}

TEST_CASE("seeded_watershed floods by increasing boundary value, ties first in first out, inside the mask") {
    const std::vector<float> boundary{0, 1, 2, 3, 9, 3, 2, 1, 0, 5, 0};
    std::vector<std::uint64_t> labels(11, 0);
    labels[0] = 1, labels[8] = 2, labels[10] = 3;
    const vx::Vec3 s{11, 1, 1};
    vx::segmentation::seeded_watershed<float>(vx::View<const float>(boundary.data(), s),
                                              vx::View<std::uint64_t>(labels.data(), s));
    // Voxel 4 (the ridge) is reached first from the left (its left neighbour 3 < right one);
    // voxel 9 ties between seeds 2 and 3: seed 2 entered the queue first.
    CHECK(labels == std::vector<std::uint64_t>{1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3});

    std::vector<std::uint8_t> mask(11, 1);
    mask[6] = 0;
    std::fill(labels.begin(), labels.end(), 0);
    labels[0] = 1, labels[8] = 2, labels[6] = 4;  // a seed outside the mask is dropped
    vx::segmentation::seeded_watershed<float>(vx::View<const float>(boundary.data(), s),
                                              vx::View<std::uint64_t>(labels.data(), s), mask.data());
    CHECK(labels == std::vector<std::uint64_t>{1, 1, 1, 1, 1, 1, 0, 2, 2, 2, 2});

    std::vector<float> bad = boundary;
    bad[5] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(vx::segmentation::seeded_watershed<float>(vx::View<const float>(bad.data(), s),
                                                              vx::View<std::uint64_t>(labels.data(), s)),
                    vx::InvalidArgument);
}

namespace {

// The flood in its plainest form: one binary heap on (value, age, voxel), as seeded_watershed
// is specified. Its radix heap and side heap must pop in exactly this order.
template <class T>
std::vector<std::uint64_t> reference_watershed(const std::vector<T>& boundary, std::vector<std::uint64_t> labels,
                                               const std::vector<std::uint8_t>& mask, Vec3 s) {
    using Entry = std::tuple<float, std::uint64_t, std::int64_t>;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
    std::uint64_t age = 0;
    for (std::int64_t i = 0; i < s.prod(); ++i) {
        if (!mask[std::size_t(i)]) labels[std::size_t(i)] = 0;
        if (labels[std::size_t(i)]) queue.emplace(float(boundary[std::size_t(i)]), age++, i);
    }
    while (!queue.empty()) {
        const std::int64_t i = std::get<2>(queue.top());
        queue.pop();
        const std::int64_t x = i % s.x, y = i / s.x % s.y, z = i / (s.x * s.y);
        const std::array<std::pair<bool, std::int64_t>, 6> neighbours{{{x > 0, i - 1},
                                                                       {x + 1 < s.x, i + 1},
                                                                       {y > 0, i - s.x},
                                                                       {y + 1 < s.y, i + s.x},
                                                                       {z > 0, i - s.x * s.y},
                                                                       {z + 1 < s.z, i + s.x * s.y}}};
        for (const auto& [inside, j] : neighbours) {
            if (!inside || labels[std::size_t(j)] || !mask[std::size_t(j)]) continue;
            labels[std::size_t(j)] = labels[std::size_t(i)];
            queue.emplace(float(boundary[std::size_t(j)]), age++, j);
        }
    }
    return labels;
}

template <class T>
void check_watershed_against_reference(std::mt19937& rng, Vec3 s, int levels) {
    const auto n = std::size_t(s.prod());
    // Few levels: mostly ties, the FIFO order decides; levels == 0: continuous values. Both
    // signs, so that the float-to-key mapping is exercised (no -0: the reference's float
    // comparison ties it with +0, the key orders it first).
    std::vector<T> boundary(n);
    std::uniform_real_distribution<T> uniform(T(-2), T(2));
    for (T& v : boundary) v = levels ? T(int(rng() % unsigned(levels)) - levels / 2) * T(0.75) : uniform(rng);
    std::vector<std::uint64_t> seeds(n, 0);
    for (auto& l : seeds) l = rng() % 40 == 0 ? 1 + rng() % 5 : 0;
    std::vector<std::uint8_t> mask(n, 1);
    const bool masked = rng() % 2;
    if (masked)
        for (auto& m : mask) m = rng() % 8 != 0;
    const auto expected = reference_watershed(boundary, seeds, mask, s);
    vx::segmentation::seeded_watershed<T>(vx::View<const T>(boundary.data(), s),
                                          vx::View<std::uint64_t>(seeds.data(), s), masked ? mask.data() : nullptr);
    INFO("shape " << s << ", levels " << levels << ", masked " << masked);
    REQUIRE(seeds == expected);
}

}  // namespace

TEST_CASE("seeded_watershed labels exactly as a plain binary-heap flood, on ties, thin shapes and masks") {
    std::mt19937 rng(11);
    const std::vector<Vec3> shapes{{1, 1, 1},  {23, 1, 1},  {1, 19, 1}, {1, 1, 17},  {13, 11, 1},
                                   {1, 9, 14}, {12, 1, 10}, {7, 6, 5},  {24, 17, 9}, {40, 33, 21}};
    for (const Vec3& s : shapes)
        for (const int levels : {1, 2, 3, 7, 0}) {
            check_watershed_against_reference<float>(rng, s, levels);
            check_watershed_against_reference<double>(rng, s, levels);
        }
}

TEST_CASE("label_statistics: counts, exact moments, value sums and maxima, any thread count, blocks add up") {
    const vx::Vec3 shape{9, 7, 11};
    std::mt19937 rng(5);
    std::vector<std::uint32_t> labels(static_cast<std::size_t>(shape.prod()));
    std::vector<float> values(labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) {
        labels[i] = static_cast<std::uint32_t>(rng() % 4);  // 0 = background
        values[i] = static_cast<float>(rng() % 1000) / 8.0f;
    }
    const std::array<double, 3> vs{2, 3, 5};
    const vx::Vec3 offset{-3, 10, 4};  // negative positions too
    // Brute force: each voxel on its own.
    std::map<std::uint64_t, std::array<double, 12>> expected;  // count, 9 moments, sum, max
    for (std::int64_t z = 0; z < shape.z; ++z)
        for (std::int64_t y = 0; y < shape.y; ++y)
            for (std::int64_t x = 0; x < shape.x; ++x) {
                const std::size_t i = static_cast<std::size_t>(x + shape.x * (y + shape.y * z));
                if (!labels[i]) continue;
                const double px = double(x + offset.x) * vs[0], py = double(y + offset.y) * vs[1],
                             pz = double(z + offset.z) * vs[2];
                auto& e =
                    expected.try_emplace(labels[i], std::array<double, 12>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1e300})
                        .first->second;
                const std::array<double, 9> m{px, py, pz, px * px, py * py, pz * pz, px * py, px * pz, py * pz};
                e[0] += 1;
                for (std::size_t j = 0; j < 9; ++j) e[1 + j] += m[j];
                e[10] += values[i];
                e[11] = std::max(e[11], double(values[i]));
            }
    const vx::View<const std::uint32_t> lv(labels.data(), shape);
    const std::vector<vx::View<const float>> vv{vx::View<const float>(values.data(), shape)};
    vx::ThreadPool one(1), three(3);
    const auto a = vx::segmentation::label_statistics(lv, vv, vs, offset, one);
    const auto b = vx::segmentation::label_statistics(lv, vv, vs, offset, three);
    REQUIRE(a.labels == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(a.labels == b.labels);
    CHECK(a.counts == b.counts);
    CHECK(a.moments == b.moments);  // bit for bit
    CHECK(a.sums == b.sums);
    CHECK(a.maxima == b.maxima);
    for (std::size_t k = 0; k < a.labels.size(); ++k) {
        const auto& e = expected.at(a.labels[k]);
        CHECK(double(a.counts[k]) == e[0]);
        for (std::size_t j = 0; j < 9; ++j) CHECK(a.moments[k * 9 + j] == Approx(e[1 + j]).epsilon(1e-12));
        CHECK(a.sums[k] == Approx(e[10]).epsilon(1e-9));
        CHECK(a.maxima[k] == e[11]);
    }
    // Two blocks along z, each with its offset, add up to the whole.
    const vx::Vec3 lower{shape.x, shape.y, 5}, upper{shape.x, shape.y, shape.z - 5};
    const std::size_t split = static_cast<std::size_t>(lower.prod());
    const auto lo = vx::segmentation::label_statistics(vx::View<const std::uint32_t>(labels.data(), lower),
                                                       {vx::View<const float>(values.data(), lower)}, vs, offset, one);
    const auto hi = vx::segmentation::label_statistics(vx::View<const std::uint32_t>(labels.data() + split, upper),
                                                       {vx::View<const float>(values.data() + split, upper)}, vs,
                                                       {offset.x, offset.y, offset.z + 5}, one);
    REQUIRE(lo.labels == a.labels);
    REQUIRE(hi.labels == a.labels);
    for (std::size_t k = 0; k < a.labels.size(); ++k) {
        CHECK(lo.counts[k] + hi.counts[k] == a.counts[k]);
        for (std::size_t j = 0; j < 9; ++j)
            CHECK(lo.moments[k * 9 + j] + hi.moments[k * 9 + j] == Approx(a.moments[k * 9 + j]).epsilon(1e-12));
        CHECK(std::max(lo.maxima[k], hi.maxima[k]) == a.maxima[k]);
    }
    std::vector<float> wrong(10);
    REQUIRE_THROWS_AS(
        vx::segmentation::label_statistics(lv, {vx::View<const float>(wrong.data(), {10, 1, 1})}, vs, offset, one),
        vx::InvalidArgument);
}
