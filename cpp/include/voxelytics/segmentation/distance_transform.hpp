// distance_transform: the exact Euclidean distance transform of a label volume, with anisotropic
// voxels, for every label at once: each voxel of a nonzero label gets its distance (in the units
// of voxel_size) to the nearest voxel centre that holds another value (0 included); voxels of
// label 0 get 0. With a binary mask this is the classic foreground EDT.
//
// Method: Felzenszwalb & Huttenlocher's lower envelope of parabolas, one axis after the other
// (x, then y, then z). Along a line, only the run of equal labels around a voxel matters: beyond
// the first voxel of another value the distance can only grow, so each run is transformed on its
// own with the voxels just outside it (when inside the volume) as zero-distance sources.
// Outside the volume counts as more of the same label (no source) unless `border` says it is
// background; a label that fills a whole line with no source anywhere gets +infinity.
// Lines along y and z are processed 16 at a time so each gathered cache line is used fully.
//
// With a `max_distance` (distances beyond it reported as max_distance) that spans at most 16
// voxels along y and z, those passes take a shorter road: a voxel's result is the minimum over
// the voxels within max_distance along the line (a source further away is further than the
// cap), found for whole x rows at once, so the loops run over contiguous memory and vectorise.
// Below the cap the values are those above.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"

namespace vx::segmentation {

/// What lies beyond the volume's faces.
enum class Border {
    same_label,  // the volume continues: faces are no boundary (edt's black_border=False)
    background,  // label 0 surrounds the volume (edt's black_border=True)
};

namespace detail {

/// Squared 1D transform of one run: out[i] = min_j (a2 * (i - j)^2 + f[j]) over j in the run
/// and the zero sources at -1 (if `left`) and n (if `right`). Scratch vectors are reused.
struct Envelope {
    std::vector<double> f, z;
    std::vector<std::int64_t> v;

    void run(const float* in, float* out, std::int64_t n, double a2, bool left, bool right) {
        f.resize(static_cast<std::size_t>(n + 2));
        v.resize(static_cast<std::size_t>(n + 2));
        z.resize(static_cast<std::size_t>(n + 3));
        // Positions shifted by one so that the left source sits at 0.
        const std::int64_t lo = left ? 0 : 1, hi = right ? n + 1 : n;
        for (std::int64_t i = 1; i <= n; ++i) f[static_cast<std::size_t>(i)] = in[i - 1];
        f[0] = 0;
        f[static_cast<std::size_t>(n + 1)] = 0;
        std::int64_t k = -1;
        for (std::int64_t q = lo; q <= hi; ++q) {
            const double fq = f[static_cast<std::size_t>(q)];
            if (std::isinf(fq)) continue;  // never the nearest
            double s = 0;
            while (k >= 0) {
                const std::int64_t p = v[static_cast<std::size_t>(k)];
                const double fp = f[static_cast<std::size_t>(p)];
                s = ((fq + a2 * double(q * q)) - (fp + a2 * double(p * p))) / (2 * a2 * double(q - p));
                if (s > z[static_cast<std::size_t>(k)]) break;
                --k;
            }
            ++k;
            v[static_cast<std::size_t>(k)] = q;
            z[static_cast<std::size_t>(k)] = k == 0 ? -std::numeric_limits<double>::infinity() : s;
            z[static_cast<std::size_t>(k + 1)] = std::numeric_limits<double>::infinity();
        }
        if (k < 0) {  // no finite source at all
            std::fill(out, out + n, std::numeric_limits<float>::infinity());
            return;
        }
        std::int64_t j = 0;
        for (std::int64_t i = 1; i <= n; ++i) {
            while (z[static_cast<std::size_t>(j + 1)] < double(i)) ++j;
            const std::int64_t p = v[static_cast<std::size_t>(j)];
            out[i - 1] = static_cast<float>(a2 * double((i - p) * (i - p)) + f[static_cast<std::size_t>(p)]);
        }
    }
};

/// One line of labels/distances: split into runs of equal labels and transform each run.
template <class T>
void transform_line(const T* labels, const float* in, float* out, std::int64_t n, double a2, bool border_is_source,
                    Envelope& env) {
    std::int64_t start = 0;
    while (start < n) {
        const T value = labels[start];
        std::int64_t end = start + 1;
        while (end < n && labels[end] == value) ++end;
        if (value == T(0)) {
            std::fill(out + start, out + end, 0.0f);
        } else {
            env.run(in + start, out + start, end - start, a2, start > 0 || border_is_source,
                    end < n || border_is_source);
        }
        start = end;
    }
}

/// The capped pass along one axis for whole x rows: n rows of `len` voxels, `stride` apart in
/// `labels` and `out`, `in_stride` apart in `in`.
/// Row i becomes min over d of (in(i + d) if that voxel has i's label, else 0) + a2 d^2: the
/// voxels of i's label and the first voxel of another value (or the border, if it is a source)
/// are the candidates, and anything beyond that first other voxel is farther than it, so the
/// runs need no tracking. `in` is at most the squared cap, so the loop over d stops once a2 d^2
/// reaches the largest value it could still lower, per chunk of 64 voxels: near a boundary (most
/// voxels) that is after a step or two. The chunk sits in a local array (no aliasing), so the
/// loops over it vectorise.
template <class T>
void capped_rows(const T* labels, const float* in, float* out, std::int64_t n, std::int64_t stride,
                 std::int64_t in_stride, std::int64_t len, double a2, bool border_is_source) {
    constexpr std::int64_t width = 64;
    T li_pad[width], lj_pad[width];
    float fi_pad[width], fj_pad[width];
    alignas(16) float acc[width];
    auto largest = [&] {  // four lanes at a time (GCC/Clang vector extension: SSE2, NEON)
        using f32x4 = float __attribute__((vector_size(16)));
        f32x4 m, v;
        std::memcpy(&m, acc, sizeof m);
        for (std::int64_t x = 4; x < width; x += 4) {
            std::memcpy(&v, acc + x, sizeof v);
            m = m > v ? m : v;
        }
        return std::max(std::max(m[0], m[1]), std::max(m[2], m[3]));
    };
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t start = 0; start < len; start += width) {
            // The last chunk of a row ends at the row's end, overlapping the one before (the
            // voxels there get the same values twice); a row shorter than a chunk is padded
            // with copies of its first voxel.
            const std::int64_t x0 = std::max<std::int64_t>(0, std::min(start, len - width));
            const std::int64_t w = std::min(width, len);
            auto chunk = [&](const T*& l, const float*& f, std::int64_t row, T* l_pad, float* f_pad) {
                l = labels + row * stride + x0, f = in + row * in_stride + x0;
                if (w == width) return;
                for (std::int64_t x = 0; x < width; ++x) l_pad[x] = l[x < w ? x : 0], f_pad[x] = f[x < w ? x : 0];
                l = l_pad, f = f_pad;
            };
            const T* li;
            const float* fi;
            chunk(li, fi, i, li_pad, fi_pad);
            std::copy(fi, fi + width, acc);
            float open = largest();
            for (const std::int64_t dir : {-1, 1})
                for (std::int64_t d = 1;; ++d) {
                    const auto c = static_cast<float>(a2 * double(d * d));
                    if (!(c < open)) break;
                    const std::int64_t j = i + dir * d;
                    if (j < 0 || j >= n) {
                        if (border_is_source)
                            for (std::int64_t x = 0; x < width; ++x) acc[x] = std::min(acc[x], c);
                        break;
                    }
                    const T* lj;
                    const float* fj;
                    chunk(lj, fj, j, lj_pad, fj_pad);
                    for (std::int64_t x = 0; x < width; ++x) {
                        const float f = fj[x];
                        const float candidate = (lj[x] == li[x] ? f : 0.0f) + c;
                        acc[x] = candidate < acc[x] ? candidate : acc[x];
                    }
                    open = largest();
                }
            std::copy(acc, acc + w, out + i * stride + x0);
        }
}

/// The y and z passes of the exact transform: lines gathered 16 at a time (neighbouring x share
/// cache lines), each run of equal labels through its lower envelope of parabolas.
template <class T>
void envelope_passes(View<const T> labels, View<float> out, std::array<double, 3> voxel_size, bool source_at_border,
                     ThreadPool& pool) {
    const Vec3 s = labels.shape();
    constexpr std::int64_t group = 16;
    auto pass = [&](std::int64_t n, std::int64_t stride, std::int64_t lines_per_plane, std::int64_t planes,
                    std::int64_t plane_stride, double a) {
        const double a2 = a * a;
        const std::int64_t groups_per_plane = (lines_per_plane + group - 1) / group;
        parallel_for(pool, 0, planes * groups_per_plane, [&](std::int64_t g) {
            const std::int64_t plane = g / groups_per_plane, first = (g % groups_per_plane) * group;
            const std::int64_t count = std::min(group, lines_per_plane - first);
            thread_local Envelope env;
            thread_local std::vector<T> lab;
            thread_local std::vector<float> in, res;
            lab.resize(static_cast<std::size_t>(group * n));
            in.resize(static_cast<std::size_t>(group * n));
            res.resize(static_cast<std::size_t>(group * n));
            // Line c of the group starts at base + c (x fastest): gather by position, then line.
            const std::int64_t base = plane * plane_stride + first;
            for (std::int64_t i = 0; i < n; ++i)
                for (std::int64_t c = 0; c < count; ++c) {
                    lab[static_cast<std::size_t>(c * n + i)] = labels[base + c + i * stride];
                    in[static_cast<std::size_t>(c * n + i)] = out[base + c + i * stride];
                }
            for (std::int64_t c = 0; c < count; ++c)
                transform_line(lab.data() + c * n, in.data() + c * n, res.data() + c * n, n, a2, source_at_border, env);
            for (std::int64_t i = 0; i < n; ++i)
                for (std::int64_t c = 0; c < count; ++c)
                    out[base + c + i * stride] = res[static_cast<std::size_t>(c * n + i)];
        });
    };
    // y lines: x varies within a plane z; z lines: x varies within a "plane" y.
    pass(s.y, s.x, s.x, s.z, s.x * s.y, voxel_size[1]);
    pass(s.z, s.x * s.y, s.x, s.y, s.x, voxel_size[2]);
}

}  // namespace detail

/// Squared (if `squared`) or plain Euclidean distance of every voxel to the nearest voxel of
/// another value; see the file comment. `voxel_size` (x, y, z) must be positive and finite;
/// `max_distance` (same units) caps the distances, and the smaller it is, the faster this runs.
template <class T>
void distance_transform(View<const T> labels, View<float> out, std::array<double, 3> voxel_size, bool squared,
                        Border border, ThreadPool& pool,
                        double max_distance = std::numeric_limits<double>::infinity()) {
    require_same_shape(labels, View<const float>(out), "distance_transform: labels and out");
    for (std::size_t a = 0; a < 3; ++a)
        if (!(voxel_size[a] > 0) || !std::isfinite(voxel_size[a])) {
            std::ostringstream msg;
            msg << "distance_transform: voxel_size must be positive and finite, got (" << voxel_size[0] << ", "
                << voxel_size[1] << ", " << voxel_size[2] << ")";
            throw InvalidArgument(msg.str());
        }
    if (!(max_distance >= 0)) {
        std::ostringstream msg;
        msg << "distance_transform: max_distance must be >= 0, got " << max_distance;
        throw InvalidArgument(msg.str());
    }
    const Vec3 s = labels.shape();
    if (labels.size() == 0) return;
    const bool source_at_border = border == Border::background;
    const double inf = std::numeric_limits<double>::infinity();

    // x: the distance to the ends of each run, in closed form.
    const double ax = voxel_size[0];
    parallel_for(pool, 0, s.y * s.z, [&](std::int64_t row) {
        const T* l = labels.data() + row * s.x;
        float* o = out.data() + row * s.x;
        std::int64_t start = 0;
        while (start < s.x) {
            const T value = l[start];
            std::int64_t end = start + 1;
            while (end < s.x && l[end] == value) ++end;
            const bool left = start > 0 || source_at_border, right = end < s.x || source_at_border;
            for (std::int64_t i = start; i < end; ++i) {
                if (value == T(0)) {
                    o[i] = 0;
                    continue;
                }
                const double d = std::min(left ? double(i - start + 1) : inf, right ? double(end - i) : inf) * ax;
                o[i] = static_cast<float>(std::min(d, max_distance) * std::min(d, max_distance));
            }
            start = end;
        }
    });

    // y and z. The windowed passes cost up to the cap's reach in voxels per voxel, the envelope
    // passes do not depend on the cap: windows for short reaches only. (The envelopes, given the
    // capped x distances, give the capped result as well.)
    constexpr double windowed_reach = 16;  // voxels along y and z
    if (max_distance <= windowed_reach * std::min(voxel_size[1], voxel_size[2])) {
        // Rows depend on their neighbours' inputs, so each task copies its plane (y) or its
        // (x, z) slab (z) aside first: a few hundred kB in cache instead of a second volume.
        const double ay2 = voxel_size[1] * voxel_size[1], az2 = voxel_size[2] * voxel_size[2];
        parallel_for(pool, 0, s.z, [&](std::int64_t z) {
            thread_local std::vector<float> plane;
            const float* begin = out.data() + z * s.x * s.y;
            plane.assign(begin, begin + s.x * s.y);
            detail::capped_rows(labels.data() + z * s.x * s.y, plane.data(), out.data() + z * s.x * s.y, s.y, s.x, s.x,
                                s.x, ay2, source_at_border);
        });
        parallel_for(pool, 0, s.y, [&](std::int64_t y) {
            thread_local std::vector<float> slab;
            slab.resize(static_cast<std::size_t>(s.x * s.z));
            for (std::int64_t z = 0; z < s.z; ++z) {
                const float* row = out.data() + (z * s.y + y) * s.x;
                std::copy(row, row + s.x, slab.begin() + z * s.x);
            }
            detail::capped_rows(labels.data() + y * s.x, slab.data(), out.data() + y * s.x, s.z, s.x * s.y, s.x, s.x,
                                az2, source_at_border);
        });
    } else {
        detail::envelope_passes(labels, out, voxel_size, source_at_border, pool);
    }
    if (!squared) parallel_for(pool, 0, out.size(), [&](std::int64_t i) { out[i] = std::sqrt(out[i]); });
}

}  // namespace vx::segmentation
