#include <cstdint>
#include <string>
#include <vector>

#include "catch.hpp"
#include "voxelytics/synthetic/render.hpp"

namespace syn = vx::synthetic;

namespace {

// Two cells: a thick dendrite along x through the middle and a thin axon crossing it along y
// (isotropic 10 nm voxels), a mitochondrion in the dendrite, glia everywhere else.
syn::Scene two_cells() {
    syn::Scene s;
    s.imaging.voxel_size = {10, 10, 10};
    s.segments.push_back({{-100, 320, 320}, {740, 320, 320}, 150, 150, 1, syn::Compartment::dendrite});
    s.segments.push_back({{320, -100, 520}, {320, 740, 520}, 40, 40, 2, syn::Compartment::axon});
    s.glia.push_back({{0, 0, 0}, 3});
    s.mitochondria.push_back({{200, 320, 320}, {400, 320, 320}, 60, 1, 7});
    s.defects.assign(64, syn::SectionDefect::none);
    s.shifts.assign(64, {0, 0});
    s.defects[10] = syn::SectionDefect::shifted;
    s.shifts[10] = {3, -2};
    s.defects[20] = syn::SectionDefect::missing;
    return s;
}

struct Rendered {
    vx::Volume<std::uint64_t> cells, mito;
    vx::Volume<std::uint8_t> comp, image;
};

Rendered render(const syn::Scene& s, const vx::Box& box, std::size_t threads) {
    const auto sh = box.size();
    const std::array<std::size_t, 3> shape{std::size_t(sh.x), std::size_t(sh.y), std::size_t(sh.z)};
    Rendered r{vx::Volume<std::uint64_t>(shape), vx::Volume<std::uint64_t>(shape), vx::Volume<std::uint8_t>(shape),
               vx::Volume<std::uint8_t>(shape)};
    vx::ThreadPool pool(threads);
    syn::render(s, box,
                {vx::View<std::uint64_t>(r.cells), vx::View<std::uint8_t>(r.comp), vx::View<std::uint64_t>(r.mito),
                 vx::View<std::uint8_t>(r.image)},
                pool);
    return r;
}

}  // namespace

TEST_CASE("cells are deepest-surface regions and every voxel is labelled") {
    const auto r = render(two_cells(), vx::Box({0, 0, 0}, {64, 64, 64}), 2);
    // Axes and the deep inside of each cell.
    CHECK(r.cells(10, 31, 31) == 1);
    CHECK(r.comp(10, 31, 31) == std::uint8_t(syn::Compartment::dendrite));
    CHECK(r.cells(31, 5, 51) == 2);
    CHECK(r.comp(31, 5, 51) == std::uint8_t(syn::Compartment::axon));
    // Where the axon passes 200 nm above the dendrite axis, beyond the dendrite's 150 nm, it is the axon's.
    CHECK(r.cells(31, 31, 51) == 2);
    // Far from both (over 1.5 fill lengths = 150 nm from any surface): glia.
    CHECK(r.cells(5, 5, 5) == 3);
    CHECK(r.comp(5, 5, 5) == std::uint8_t(syn::Compartment::glia));
    // Just outside the dendrite's surface (50 nm), the gap is filled by the dendrite.
    CHECK(r.cells(10, 31, 51 - 4) == 1);
    for (std::size_t i = 0; i < r.cells.size(); ++i) REQUIRE(r.cells.data()[i] != 0);
    // The mitochondrion: inside the dendrite only, between x = 200 and 400 nm.
    CHECK(r.mito(30, 31, 31) == 7);
    CHECK(r.mito(10, 31, 31) == 0);
    // A missing section is flat; membranes are darker than cytoplasm.
    for (int x = 0; x < 64; ++x) CHECK(r.image(x, 7, 20) == 0);
}

TEST_CASE("labels_at applies the renderer's rule at voxel centres") {
    const auto s = two_cells();
    const auto r = render(s, vx::Box({0, 0, 0}, {64, 64, 64}), 1);
    std::vector<syn::Point> points;
    for (int z = 0; z < 64; z += 3)
        for (int y = 0; y < 64; y += 5)
            for (int x = 0; x < 64; x += 7) points.push_back({x * 10 + 5.0, y * 10 + 5.0, z * 10 + 5.0});
    const auto labels = syn::labels_at(s, points);
    std::size_t k = 0;
    for (int z = 0; z < 64; z += 3)
        for (int y = 0; y < 64; y += 5)
            for (int x = 0; x < 64; x += 7, ++k) {
                REQUIRE(labels[k].cell == r.cells(x, y, z));
                REQUIRE(std::uint8_t(labels[k].compartment) == r.comp(x, y, z));
            }
}

TEST_CASE("a block renders the same on its own, and on any number of threads") {
    const auto s = two_cells();
    const auto whole = render(s, vx::Box({0, 0, 0}, {64, 64, 64}), 1);
    const auto whole2 = render(s, vx::Box({0, 0, 0}, {64, 64, 64}), 3);
    CHECK(whole.image == whole2.image);
    CHECK(whole.cells == whole2.cells);
    const vx::Box part({13, 7, 5}, {30, 41, 20});  // holds the shifted section 10
    const auto block = render(s, part, 2);
    for (std::int64_t z = 0; z < 20; ++z)
        for (std::int64_t y = 0; y < 41; ++y)
            for (std::int64_t x = 0; x < 30; ++x) {
                REQUIRE(block.image(x, y, z) == whole.image(x + 13, y + 7, z + 5));
                REQUIRE(block.cells(x, y, z) == whole.cells(x + 13, y + 7, z + 5));
                REQUIRE(block.mito(x, y, z) == whole.mito(x + 13, y + 7, z + 5));
            }
}

TEST_CASE("invalid scenes are rejected with the reason") {
    auto error_of = [](const syn::Scene& s) {
        try {
            syn::labels_at(s, {});
        } catch (const vx::InvalidArgument& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    auto s = two_cells();
    s.glia.clear();
    CHECK(error_of(s).find("glia") != std::string::npos);
    s = two_cells();
    s.segments[1].ra = 0;
    CHECK(error_of(s).find("segment 1") != std::string::npos);
}
