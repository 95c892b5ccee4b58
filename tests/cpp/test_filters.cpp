#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "catch.hpp"
#include "voxelytics/filters/gaussian.hpp"

namespace {

/// The separable Gaussian as a direct sum over the whole 3D kernel, in double, with scipy's
/// "reflect" mode written out independently of the kernel's own helper.
std::vector<double> direct_gaussian(const std::vector<float>& in, vx::Vec3 s, std::array<double, 3> sigma) {
    auto mirror = [](std::int64_t i, std::int64_t n) {
        while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
        return i;
    };
    std::array<std::vector<double>, 3> w;
    for (std::size_t a = 0; a < 3; ++a) {
        const auto r = std::int64_t(4.0 * sigma[a] + 0.5);
        double sum = 0;
        for (std::int64_t k = -r; k <= r; ++k) {
            w[a].push_back(sigma[a] > 0 ? std::exp(-0.5 * double(k * k) / (sigma[a] * sigma[a])) : 1.0);
            sum += w[a].back();
        }
        for (double& v : w[a]) v /= sum;
    }
    std::vector<double> out(in.size());
    const auto rx = std::int64_t(w[0].size() / 2), ry = std::int64_t(w[1].size() / 2),
               rz = std::int64_t(w[2].size() / 2);
    for (std::int64_t z = 0; z < s.z; ++z)
        for (std::int64_t y = 0; y < s.y; ++y)
            for (std::int64_t x = 0; x < s.x; ++x) {
                double acc = 0;
                for (std::int64_t k = -rz; k <= rz; ++k)
                    for (std::int64_t j = -ry; j <= ry; ++j)
                        for (std::int64_t i = -rx; i <= rx; ++i)
                            acc += w[0][std::size_t(i + rx)] * w[1][std::size_t(j + ry)] * w[2][std::size_t(k + rz)] *
                                   in[std::size_t(mirror(x + i, s.x) +
                                                  s.x * (mirror(y + j, s.y) + s.y * mirror(z + k, s.z)))];
                out[std::size_t(x + s.x * (y + s.y * z))] = acc;
            }
    return out;
}

}  // namespace

TEST_CASE("gaussian_filter equals the direct 3D sum, with reflection at the faces, in and out of place") {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> value(0.0f, 1.0f);
    const std::array<std::array<double, 3>, 4> sigmas{
        {{1.0, 1.0, 1.0}, {0.7, 2.0, 0.0}, {0.0, 0.0, 1.3}, {3.0, 0.5, 2.5}}};
    for (const auto& sigma : sigmas) {
        // Rows longer and shorter than the kernel (radius 12 > 7 voxels reflects more than once).
        const vx::Vec3 s{std::int64_t(9 + rng() % 12), std::int64_t(3 + rng() % 6), std::int64_t(4 + rng() % 5)};
        std::vector<float> in(std::size_t(s.prod()));
        for (float& v : in) v = value(rng);
        const auto expected = direct_gaussian(in, s, sigma);
        for (const std::size_t threads : {1, 3}) {
            vx::ThreadPool pool(threads);
            std::vector<float> out(in.size()), scratch, same = in;
            vx::filters::gaussian_filter(vx::View<const float>(in.data(), s), vx::View<float>(out.data(), s), sigma,
                                         4.0, pool, scratch);
            vx::filters::gaussian_filter(vx::View<const float>(same.data(), s), vx::View<float>(same.data(), s), sigma,
                                         4.0, pool, scratch);
            for (std::size_t i = 0; i < in.size(); ++i) {
                REQUIRE(out[i] == Approx(expected[i]).epsilon(1e-5));
                REQUIRE(same[i] == out[i]);
            }
        }
    }
}

TEST_CASE("gaussian_filter: the kernel is scipy's, bad sigma fails") {
    const auto w = vx::filters::gaussian_half_kernel(2.0, 4.0);
    REQUIRE(w.size() == 9);  // radius int(4 * 2 + 0.5) = 8
    double sum = w[0];
    for (std::size_t k = 1; k < w.size(); ++k) sum += 2 * w[k];
    CHECK(sum == Approx(1.0).epsilon(1e-6));
    CHECK(w[1] / w[0] == Approx(std::exp(-0.125)).epsilon(1e-6));
    std::vector<float> v(8, 1.0f), scratch;
    vx::ThreadPool pool(1);
    const vx::View<float> view(v.data(), {2, 2, 2});
    CHECK_THROWS_AS(vx::filters::gaussian_filter(view, view, {1.0, -1.0, 1.0}, 4.0, pool, scratch),
                    vx::InvalidArgument);
    CHECK_THROWS_AS(vx::filters::gaussian_filter(view, view, {1.0, 1.0, 1.0}, 0.0, pool, scratch), vx::InvalidArgument);
    vx::filters::gaussian_filter(view, view, {1.0, 1.0, 1.0}, 4.0, pool, scratch);
    for (float x : v) CHECK(x == Approx(1.0f));  // a constant stays constant
}
