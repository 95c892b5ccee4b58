// gaussian: separable Gaussian smoothing of a float volume, one axis after the other (x, y, z),
// with scipy.ndimage.gaussian_filter's conventions so that results agree with it to float
// rounding: kernel radius int(truncate * sigma + 0.5), weights exp(-x^2 / (2 sigma^2)) normalised
// to sum 1, mode "reflect" at the faces (d c b a | a b c d | d c b a). An axis with sigma 0 is
// left as it is.
//
// Every pass works on whole x rows, eight voxels at a time in registers (vector extensions):
// along x a row is padded by reflection first; along y and z an output row is the weighted sum of
// input rows (a plane's rows stay in cache while its outputs are made). Sums are in float.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <vector>

#include "voxelytics/core/detail/reflect.hpp"
#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"

namespace vx::filters {

/// The normalised half kernel of a 1D Gaussian: w[0] at the centre, w[k] at offsets +-k.
inline std::vector<float> gaussian_half_kernel(double sigma, double truncate) {
    const auto radius = static_cast<std::int64_t>(truncate * sigma + 0.5);
    std::vector<double> w(static_cast<std::size_t>(radius + 1));
    double sum = 0;
    for (std::int64_t k = 0; k <= radius; ++k) {
        w[static_cast<std::size_t>(k)] = std::exp(-0.5 * double(k * k) / (sigma * sigma));
        sum += (k == 0 ? 1 : 2) * w[static_cast<std::size_t>(k)];
    }
    std::vector<float> half(w.size());
    for (std::size_t k = 0; k < w.size(); ++k) half[k] = static_cast<float>(w[k] / sum);
    return half;
}

namespace detail {

/// o[x] = w[0] * c[x] + sum_k w[k] * (lo[k][x] + hi[k][x]) for x < len, eight voxels at a time
/// in registers (GCC/Clang vector extensions: SSE2, NEON), each sum in the order of k.
inline void weighted_sum(const float* c, const float* const* lo, const float* const* hi, float* o, std::int64_t len,
                         const std::vector<float>& w) {
    using f32x4 = float __attribute__((vector_size(16)));
    auto load = [](const float* p) {
        f32x4 v;
        std::memcpy(&v, p, sizeof v);
        return v;
    };
    const auto radius = static_cast<std::int64_t>(w.size()) - 1;
    std::int64_t x = 0;
    for (; x + 8 <= len; x += 8) {
        f32x4 a = w[0] * load(c + x), b = w[0] * load(c + x + 4);
        for (std::int64_t k = 1; k <= radius; ++k) {
            const float wk = w[static_cast<std::size_t>(k)];
            a += wk * (load(lo[k] + x) + load(hi[k] + x));
            b += wk * (load(lo[k] + x + 4) + load(hi[k] + x + 4));
        }
        std::memcpy(o + x, &a, sizeof a);
        std::memcpy(o + x + 4, &b, sizeof b);
    }
    for (; x < len; ++x) {
        float a = w[0] * c[x];
        for (std::int64_t k = 1; k <= radius; ++k) a += w[static_cast<std::size_t>(k)] * (lo[k][x] + hi[k][x]);
        o[x] = a;
    }
}

/// Rows of `len` floats that lie `stride` apart along the filtered axis (n of them), each
/// replaced by the weighted sum of its neighbours along that axis, reflected at both ends.
inline void filter_rows(const float* in, float* out, std::int64_t n, std::int64_t stride, std::int64_t len,
                        const std::vector<float>& w, std::vector<const float*>& rows) {
    const auto radius = static_cast<std::int64_t>(w.size()) - 1;
    rows.resize(static_cast<std::size_t>(2 * (radius + 1)));
    const float** lo = rows.data();
    const float** hi = rows.data() + radius + 1;
    for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t k = 1; k <= radius; ++k) {
            lo[k] = in + vx::detail::reflect(i - k, n) * stride;
            hi[k] = in + vx::detail::reflect(i + k, n) * stride;
        }
        weighted_sum(in + i * stride, lo, hi, out + i * stride, len, w);
    }
}

/// The same along x, within one row: padded by reflection, then summed as above.
inline void filter_row_x(const float* in, float* out, std::int64_t n, const std::vector<float>& w,
                         std::vector<float>& padded, std::vector<const float*>& shifted) {
    const auto radius = static_cast<std::int64_t>(w.size()) - 1;
    padded.resize(static_cast<std::size_t>(n + 2 * radius));
    std::copy(in, in + n, padded.begin() + radius);
    for (std::int64_t i = 1; i <= radius; ++i) {
        padded[static_cast<std::size_t>(radius - i)] = in[vx::detail::reflect(-i, n)];
        padded[static_cast<std::size_t>(radius + n - 1 + i)] = in[vx::detail::reflect(n - 1 + i, n)];
    }
    const float* p = padded.data() + radius;
    shifted.resize(static_cast<std::size_t>(2 * (radius + 1)));
    const float** lo = shifted.data();
    const float** hi = shifted.data() + radius + 1;
    for (std::int64_t k = 1; k <= radius; ++k) lo[k] = p - k, hi[k] = p + k;
    weighted_sum(p, lo, hi, out, n, w);
}

}  // namespace detail

/// Gaussian smoothing of `in` into `out` (same shape; may be the same memory), sigma per axis
/// (x, y, z) in voxels, each >= 0 and finite. `scratch` is resized to the volume (one more
/// volume of floats, reused by callers that filter repeatedly). Thread-count independent.
inline void gaussian_filter(View<const float> in, View<float> out, std::array<double, 3> sigma, double truncate,
                            ThreadPool& pool, std::vector<float>& scratch) {
    require_same_shape(in, View<const float>(out), "gaussian_filter: in and out");
    for (std::size_t a = 0; a < 3; ++a)
        if (!(sigma[a] >= 0) || !std::isfinite(sigma[a]) || !(truncate > 0) || !std::isfinite(truncate)) {
            std::ostringstream msg;
            msg << "gaussian_filter: sigma must be three finite numbers >= 0 and truncate > 0, got (" << sigma[0]
                << ", " << sigma[1] << ", " << sigma[2] << ") and " << truncate;
            throw InvalidArgument(msg.str());
        }
    const Vec3 s = in.shape();
    if (in.size() == 0) return;
    std::vector<int> axes;
    for (int a = 0; a < 3; ++a)
        if (sigma[static_cast<std::size_t>(a)] > 0) axes.push_back(a);
    if (axes.empty()) {
        if (in.data() != out.data()) std::copy(in.data(), in.data() + in.size(), out.data());
        return;
    }
    scratch.resize(static_cast<std::size_t>(in.size()));
    // Passes alternate between `out` and `scratch`, the first chosen so that the last lands in
    // `out` (when `in` is `out` itself, an odd number of passes ends with a copy).
    const float* src = in.data();
    float* dst = axes.size() % 2 == 1 && in.data() != out.data() ? out.data() : scratch.data();
    for (const int a : axes) {
        const auto w = gaussian_half_kernel(sigma[static_cast<std::size_t>(a)], truncate);
        if (a == 0) {
            parallel_for(pool, 0, s.y * s.z, [&](std::int64_t row) {
                thread_local std::vector<float> padded;
                thread_local std::vector<const float*> shifted;
                detail::filter_row_x(src + row * s.x, dst + row * s.x, s.x, w, padded, shifted);
            });
        } else if (a == 1) {  // one z plane per task: its rows along y
            parallel_for(pool, 0, s.z, [&](std::int64_t z) {
                thread_local std::vector<const float*> rows;
                detail::filter_rows(src + z * s.x * s.y, dst + z * s.x * s.y, s.y, s.x, s.x, w, rows);
            });
        } else {  // one y per task: the rows along z at that y
            parallel_for(pool, 0, s.y, [&](std::int64_t y) {
                thread_local std::vector<const float*> rows;
                detail::filter_rows(src + y * s.x, dst + y * s.x, s.z, s.x * s.y, s.x, w, rows);
            });
        }
        src = dst;
        dst = dst == out.data() ? scratch.data() : out.data();
    }
    if (src != out.data()) std::copy(src, src + in.size(), out.data());
}

}  // namespace vx::filters
