#include <cstdint>
#include <random>
#include <vector>

#include "catch.hpp"
#include "voxelytics/synapses/detection.hpp"

namespace syn = vx::synapses;
using vx::Vec3;
using vx::View;

namespace {

// Runs the detection block by block over `score` (float) and `fragments`, one feature (the
// score itself), and returns the result.
syn::Detection detect(const vx::Volume<float>& score, const vx::Volume<std::uint32_t>& fragments, Vec3 block,
                      std::size_t threads, vx::synapses::Connectivity connectivity = syn::Connectivity::vertices,
                      std::uint64_t min_size = 1) {
    const Vec3 shape{static_cast<std::int64_t>(score.shape()[0]), static_cast<std::int64_t>(score.shape()[1]),
                     static_cast<std::int64_t>(score.shape()[2])};
    vx::ThreadPool pool(threads);
    syn::Detector detector(shape, 1, connectivity);
    for (std::int64_t z = 0; z < shape.z; z += block.z)
        for (std::int64_t y = 0; y < shape.y; y += block.y)
            for (std::int64_t x = 0; x < shape.x; x += block.x) {
                const Vec3 lo{x, y, z}, size = min(lo + block, shape) - lo;
                vx::Volume<float> s =
                    vx::Volume<float>::from_shape({std::size_t(size.x), std::size_t(size.y), std::size_t(size.z)});
                vx::Volume<std::uint32_t> f = vx::Volume<std::uint32_t>::from_shape(s.shape());
                for (std::int64_t k = 0; k < size.z; ++k)
                    for (std::int64_t j = 0; j < size.y; ++j)
                        for (std::int64_t i = 0; i < size.x; ++i) {
                            s(i, j, k) = score(x + i, y + j, z + k);
                            f(i, j, k) = fragments(x + i, y + j, z + k);
                        }
                const View<const float> sv = View<float>(s);
                const View<const std::uint32_t> fv = View<std::uint32_t>(f);
                detector.add(syn::block_pieces(sv, 0.5f, 1.0, fv, {sv}, lo, shape, connectivity, pool));
            }
    return detector.finish(min_size, UINT64_MAX);
}

}  // namespace

TEST_CASE("a synapse between two fragments: size, score, box, contacts") {
    vx::Volume<float> score = vx::Volume<float>::from_shape({10, 8, 6});
    score.fill(0.f);
    vx::Volume<std::uint32_t> fragments = vx::Volume<std::uint32_t>::from_shape({10, 8, 6});
    for (std::size_t x = 0; x < 10; ++x)
        for (std::size_t y = 0; y < 8; ++y)
            for (std::size_t z = 0; z < 6; ++z) fragments(x, y, z) = x < 5 ? 7 : 9;
    for (std::size_t x = 3; x < 7; ++x)
        for (std::size_t y = 2; y < 5; ++y)
            for (std::size_t z = 1; z < 3; ++z) score(x, y, z) = x < 5 ? 0.75f : 1.0f;
    const syn::Detection d = detect(score, fragments, {10, 8, 6}, 1);
    REQUIRE(d.synapses.size() == 1);
    const syn::Synapse& s = d.synapses[0];
    CHECK(s.moments.voxels == 24);
    CHECK(syn::from_fixed(s.score_sum) / 24 == Approx(0.875));
    CHECK(syn::from_fixed(s.score_max) == 1.0);
    CHECK(s.lo == Vec3{3, 2, 1});
    CHECK(s.hi == Vec3{6, 4, 2});
    CHECK(s.first == 3 + 10 * (2 + 8 * 1));
    REQUIRE(d.contacts.size() == 2);
    CHECK(d.contacts[0].fragment == 7);
    CHECK(d.contacts[0].moments.voxels == 12);
    CHECK(d.contacts[0].moments.sum[0] == 6 * (3 + 4));
    CHECK(d.contacts[1].fragment == 9);
    CHECK(syn::from_fixed(d.contact_features[1]) / 12 == Approx(1.0));
}

TEST_CASE("synapses cut by block borders are joined: the same table for every block shape and thread count") {
    const Vec3 shape{37, 29, 23};
    vx::Volume<float> score = vx::Volume<float>::from_shape({37, 29, 23});
    vx::Volume<std::uint32_t> fragments = vx::Volume<std::uint32_t>::from_shape({37, 29, 23});
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    // Blobs of random values (many touching diagonally), fragments in slabs.
    for (std::int64_t z = 0; z < shape.z; ++z)
        for (std::int64_t y = 0; y < shape.y; ++y)
            for (std::int64_t x = 0; x < shape.x; ++x) {
                score(x, y, z) = u(rng) < 0.08f ? 0.5f + 0.5f * u(rng) : 0.f;
                fragments(x, y, z) = static_cast<std::uint32_t>(1 + x / 6 + 10 * (y / 9));
            }
    for (auto connectivity : {syn::Connectivity::faces, syn::Connectivity::edges, syn::Connectivity::vertices}) {
        const syn::Detection whole = detect(score, fragments, shape, 1, connectivity, 2);
        REQUIRE(whole.synapses.size() > 20);
        for (const Vec3 block : {Vec3{8, 8, 8}, Vec3{5, 29, 3}, Vec3{37, 1, 23}, Vec3{16, 7, 11}}) {
            for (std::size_t threads : {1u, 3u}) {
                const syn::Detection d = detect(score, fragments, block, threads, connectivity, 2);
                REQUIRE(d.synapses.size() == whole.synapses.size());
                CHECK(d.too_small == whole.too_small);
                for (std::size_t i = 0; i < d.synapses.size(); ++i) {
                    CHECK(d.synapses[i].first == whole.synapses[i].first);
                    CHECK(d.synapses[i].moments.voxels == whole.synapses[i].moments.voxels);
                    CHECK(d.synapses[i].moments.sum2 == whole.synapses[i].moments.sum2);
                    CHECK(d.synapses[i].score_sum == whole.synapses[i].score_sum);
                    CHECK(d.synapses[i].lo == whole.synapses[i].lo);
                    CHECK(d.synapses[i].hi == whole.synapses[i].hi);
                }
                CHECK(d.features == whole.features);
                REQUIRE(d.contacts.size() == whole.contacts.size());
                for (std::size_t i = 0; i < d.contacts.size(); ++i) {
                    CHECK(d.contacts[i].synapse == whole.contacts[i].synapse);
                    CHECK(d.contacts[i].fragment == whole.contacts[i].fragment);
                    CHECK(d.contacts[i].moments.sum == whole.contacts[i].moments.sum);
                }
                CHECK(d.contact_features == whole.contact_features);
            }
        }
    }
}

TEST_CASE("connectivity decides whether diagonal neighbours are one synapse; min_size drops small ones") {
    vx::Volume<float> score = vx::Volume<float>::from_shape({6, 6, 2});
    score.fill(0.f);
    score(1, 1, 0) = score(2, 2, 0) = 1.f;  // diagonal in-plane: one synapse under 18/26 only
    score(4, 4, 0) = score(4, 4, 1) = 1.f;
    vx::Volume<std::uint32_t> fragments = vx::Volume<std::uint32_t>::from_shape({6, 6, 2});
    fragments.fill(0);
    CHECK(detect(score, fragments, {6, 6, 2}, 1, syn::Connectivity::faces).synapses.size() == 3);
    CHECK(detect(score, fragments, {2, 2, 1}, 1, syn::Connectivity::faces).synapses.size() == 3);
    CHECK(detect(score, fragments, {2, 2, 1}, 1, syn::Connectivity::edges).synapses.size() == 2);
    const syn::Detection big = detect(score, fragments, {2, 2, 1}, 1, syn::Connectivity::faces, 2);
    CHECK(big.synapses.size() == 1);
    CHECK(big.too_small == 2);
    CHECK(big.contacts.empty());
}
