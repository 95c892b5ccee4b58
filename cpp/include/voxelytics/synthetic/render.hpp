// render: voxelises a Scene (scene.hpp) into any box of the volume: cell ids, compartments,
// mitochondria and the EM image. Every voxel is a pure function of the scene and its position,
// and the image's blur and section shifts read a halo around the box, so a volume rendered block
// by block, on any number of threads, equals the volume rendered at once, bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <vector>

#include "voxelytics/core/box.hpp"
#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"
#include "voxelytics/synthetic/detail/noise.hpp"
#include "voxelytics/synthetic/scene.hpp"

namespace vx::synthetic {

/// Where to write; an output whose data() is null is not rendered. Each non-null view has the
/// box's shape.
struct Outputs {
    View<std::uint64_t> cells;         // neuron and glia ids
    View<std::uint8_t> compartments;   // Compartment codes
    View<std::uint64_t> mitochondria;  // mitochondrion ids, 0 outside
    View<std::uint8_t> image;          // the EM image
};

namespace detail {

inline double dot(const Point& a, const Point& b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline Point sub(const Point& a, const Point& b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }

/// Closest point of segment ab to p: parameter t in [0, 1] and the distance.
inline void closest_on_segment(const Point& a, const Point& b, const Point& p, double& t, double& d) {
    const Point ab = sub(b, a), ap = sub(p, a);
    const double len2 = dot(ab, ab);
    t = len2 > 0 ? std::clamp(dot(ap, ab) / len2, 0.0, 1.0) : 0.0;
    const Point q{a.x + t * ab.x - p.x, a.y + t * ab.y - p.y, a.z + t * ab.z - p.z};
    d = std::sqrt(dot(q, q));
}

/// How deep p lies in segment s: -1 on its axis, 0 on its surface, (distance to the surface) /
/// fill_length outside. `grad` is the rate of change per nm, to turn depth gaps into distances.
struct Depth {
    double depth, grad;
};
inline Depth depth(const Segment& s, const Point& p, double fill_length) {
    double t, d;
    closest_on_segment(s.a, s.b, p, t, d);
    const double r = s.ra + t * (s.rb - s.ra);
    if (d < r) return {d / r - 1, 1 / r};
    return {(d - r) / fill_length, 1 / fill_length};
}

/// The deepest cell at a point, and the depth of the deepest other cell (for the membrane).
struct Nearest {
    double depth = std::numeric_limits<double>::infinity(), grad = 0;
    std::int64_t segment = -1;
    std::uint64_t cell = 0;  // of `segment`
    double other_depth = std::numeric_limits<double>::infinity(), other_grad = 0;

    void add(const Scene& scene, std::int64_t k, const Depth& d) {
        // Cheap rejection first: most candidates are neither the deepest nor the runner-up.
        if (d.depth > other_depth && d.depth > depth) return;
        const std::uint64_t c = scene.segments[static_cast<std::size_t>(k)].cell;
        const bool better = d.depth < depth || (d.depth == depth && k < segment);
        if (better) {
            if (segment >= 0 && cell != c) other_depth = depth, other_grad = grad;
            depth = d.depth, grad = d.grad, segment = k, cell = c;
        } else if (cell != c && d.depth < other_depth) {
            other_depth = d.depth, other_grad = d.grad;
        }
    }
};

/// Cell, compartment and distance (nm) to the nearest boundary with another cell.
struct Label {
    std::uint64_t cell = 0;
    Compartment compartment = Compartment::glia;
    double boundary = 0;
};

inline Label resolve(const Scene& scene, const Nearest& n, const Point& p) {
    Label out;
    const double gap = scene.glia_gap;
    if (n.segment >= 0 && n.depth <= gap) {
        const Segment& s = scene.segments[static_cast<std::size_t>(n.segment)];
        out.cell = s.cell, out.compartment = s.compartment;
        const bool glia_second = n.other_depth > gap;
        const double other = glia_second ? gap : n.other_depth, other_grad = glia_second ? 0 : n.other_grad;
        out.boundary = (other - n.depth) / (n.grad + other_grad);
        return out;
    }
    // Glia: the nearest glia cell; its boundary is with the next glia cell or the nearest neuron.
    double d1 = std::numeric_limits<double>::infinity(), d2 = d1;
    for (const GliaCell& g : scene.glia) {
        const Point q = sub(p, g.centre);
        const double d = std::sqrt(dot(q, q));
        if (d < d1 || (d == d1 && g.cell < out.cell))
            d2 = d1, d1 = d, out.cell = g.cell;
        else if (d < d2)
            d2 = d;
    }
    out.compartment = Compartment::glia;
    out.boundary = std::min(
        (d2 - d1) / 2, n.segment >= 0 ? (n.depth - gap) * scene.fill_length : std::numeric_limits<double>::infinity());
    return out;
}

/// Reach of a segment: beyond it, the segment is never the deepest cell (glia wins there).
inline double reach(const Scene& scene, const Segment& s) {
    return std::max(s.ra, s.rb) + scene.glia_gap * scene.fill_length;
}

inline Point voxel_centre(const Imaging& im, std::int64_t x, std::int64_t y, std::int64_t z) {
    return {(static_cast<double>(x) + 0.5) * im.voxel_size[0], (static_cast<double>(y) + 0.5) * im.voxel_size[1],
            (static_cast<double>(z) + 0.5) * im.voxel_size[2]};
}

/// The voxels of `box` whose centres lie within `margin` nm of the axis-aligned box spanned by
/// the points p and q (a segment's ends, or a centre twice).
inline Box voxels_near(const Imaging& im, Point p, Point q, double margin, const Box& box) {
    const double lo[3] = {std::min(p.x, q.x) - margin, std::min(p.y, q.y) - margin, std::min(p.z, q.z) - margin};
    const double hi[3] = {std::max(p.x, q.x) + margin, std::max(p.y, q.y) + margin, std::max(p.z, q.z) + margin};
    Vec3 a, b;
    for (std::size_t i = 0; i < 3; ++i) {
        // Centre (v + 0.5) * size in [lo, hi]  <=>  v in [lo / size - 0.5, hi / size - 0.5].
        a[i] = static_cast<std::int64_t>(std::ceil(lo[i] / im.voxel_size[i] - 0.5));
        b[i] = static_cast<std::int64_t>(std::floor(hi[i] / im.voxel_size[i] - 0.5)) + 1;
    }
    return Box::from_corners(a, b).intersection(box);
}

/// Calls f(x, y, z) for every voxel of `box`, x fastest.
template <class F>
void for_each_voxel(const Box& box, F&& f) {
    for (std::int64_t z = box.topleft().z; z < box.bottomright().z; ++z)
        for (std::int64_t y = box.topleft().y; y < box.bottomright().y; ++y)
            for (std::int64_t x = box.topleft().x; x < box.bottomright().x; ++x) f(x, y, z);
}

inline double smoothstep_edge(double inside_by, double softness) {
    return std::clamp(0.5 + inside_by / softness, 0.0, 1.0);
}

/// Separable Gaussian blur of a float volume in place, along axis `axis` with sigma in voxels.
inline void blur_axis(std::vector<float>& data, Vec3 shape, int axis, double sigma, ThreadPool& pool) {
    if (sigma <= 0) return;
    const auto radius = static_cast<std::int64_t>(std::ceil(3 * sigma));
    std::vector<double> kernel(static_cast<std::size_t>(2 * radius + 1));
    double sum = 0;
    for (std::int64_t i = -radius; i <= radius; ++i)
        sum += kernel[static_cast<std::size_t>(i + radius)] = std::exp(-0.5 * double(i * i) / (sigma * sigma));
    for (double& k : kernel) k /= sum;
    const std::int64_t n = shape[static_cast<std::size_t>(axis)];
    const std::int64_t stride = axis == 0 ? 1 : (axis == 1 ? shape.x : shape.x * shape.y);
    const std::int64_t lines = shape.prod() / n;
    parallel_for(pool, 0, lines, [&](std::int64_t line) {
        // Line `line` enumerates the other two axes, x fastest.
        std::int64_t base;
        if (axis == 0)
            base = line * shape.x;
        else if (axis == 1)
            base = (line % shape.x) + (line / shape.x) * shape.x * shape.y;
        else
            base = line;
        std::vector<double> in(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i)
            in[static_cast<std::size_t>(i)] = data[static_cast<std::size_t>(base + i * stride)];
        for (std::int64_t i = 0; i < n; ++i) {
            double acc = 0;
            for (std::int64_t k = -radius; k <= radius; ++k) {
                const std::int64_t j = std::clamp<std::int64_t>(i + k, 0, n - 1);
                acc += kernel[static_cast<std::size_t>(k + radius)] * in[static_cast<std::size_t>(j)];
            }
            data[static_cast<std::size_t>(base + i * stride)] = static_cast<float>(acc);
        }
    });
}

inline void check_scene(const Scene& scene) {
    const auto& v = scene.imaging.voxel_size;
    if (!(v[0] > 0 && v[1] > 0 && v[2] > 0)) throw InvalidArgument("synthetic scene: voxel_size must be positive");
    if (!(scene.fill_length > 0)) throw InvalidArgument("synthetic scene: fill_length must be positive");
    if (!(scene.glia_gap > 0)) throw InvalidArgument("synthetic scene: glia_gap must be positive");
    if (scene.glia.empty()) throw InvalidArgument("synthetic scene: needs at least one glia cell to fill gaps");
    for (std::size_t k = 0; k < scene.segments.size(); ++k) {
        const Segment& s = scene.segments[k];
        if (!(s.ra > 0 && s.rb > 0)) {
            std::ostringstream msg;
            msg << "synthetic scene: segment " << k << " has a non-positive radius";
            throw InvalidArgument(msg.str());
        }
    }
    if (scene.imaging.section_samples < 1 || scene.imaging.section_samples % 2 == 0)
        throw InvalidArgument(
            "synthetic scene: section_samples must be odd and >= 1 (the middle one gives the labels)");
    if (scene.shifts.size() != scene.defects.size())
        throw InvalidArgument("synthetic scene: defects and shifts must have one entry per section");
}

}  // namespace detail

/// Cell id and compartment at points given in nm (the rule the renderer applies at voxel centres).
inline std::vector<detail::Label> labels_at(const Scene& scene, const std::vector<Point>& points) {
    detail::check_scene(scene);
    std::vector<detail::Label> out;
    out.reserve(points.size());
    for (const Point& p : points) {
        detail::Nearest n;
        for (std::size_t k = 0; k < scene.segments.size(); ++k)
            n.add(scene, static_cast<std::int64_t>(k), detail::depth(scene.segments[k], p, scene.fill_length));
        out.push_back(detail::resolve(scene, n, p));
    }
    return out;
}

namespace detail {

/// Labels and the image before blur over `box`, z-slab by z-slab in parallel.
struct Field {
    Box box;
    std::vector<std::uint64_t> cells;
    std::vector<std::uint8_t> compartments;
    std::vector<std::uint64_t> mitochondria;
    std::vector<float> image;
};

/// The segments that can reach `box` (indices into scene.segments, ascending: ties between
/// equally deep cells are broken by index, so the order must not depend on the box).
inline std::vector<std::size_t> segments_near(const Scene& scene, const Box& box) {
    std::vector<std::size_t> out;
    for (std::size_t k = 0; k < scene.segments.size(); ++k) {
        const Segment& sg = scene.segments[k];
        if (!voxels_near(scene.imaging, sg.a, sg.b, reach(scene, sg), box).empty()) out.push_back(k);
    }
    return out;
}

/// One sample plane per voxel of `slab`, `dz` nm above or below the voxel centres, into
/// slab-local buffers.
struct Sample {
    std::vector<std::uint64_t> cells;
    std::vector<std::uint8_t> compartments;
    std::vector<std::uint64_t> mitochondria;
    std::vector<float> image;
};

inline void render_sample(const Scene& scene, const std::vector<std::size_t>& candidates, const Box& slab, double dz,
                          bool want_image, const std::vector<float>& grain, Sample& f) {
    const Imaging& im = scene.imaging;
    const Vec3 s = slab.size();
    const auto n = static_cast<std::size_t>(slab.volume());
    f.cells.assign(n, 0);
    f.compartments.assign(n, 0);
    f.mitochondria.assign(n, 0);
    f.image.assign(want_image ? n : 0, 0);
    auto centre = [&](std::int64_t x, std::int64_t y, std::int64_t z) {
        Point p = voxel_centre(im, x, y, z);
        p.z += dz;
        return p;
    };
    const double slack = std::abs(dz);  // voxels_near reasons about voxel centres
    std::vector<Nearest> nearest(n);
    auto local = [&](std::int64_t x, std::int64_t y, std::int64_t z) {
        const Vec3 o = Vec3{x, y, z} - slab.topleft();
        return static_cast<std::size_t>(o.x + s.x * (o.y + s.y * o.z));
    };
    // Splat every segment into the voxels within its reach.
    for (const std::size_t k : candidates) {
        const Segment& sg = scene.segments[k];
        const Box near = voxels_near(im, sg.a, sg.b, reach(scene, sg) + slack, slab);
        for_each_voxel(near, [&](std::int64_t x, std::int64_t y, std::int64_t z) {
            nearest[local(x, y, z)].add(scene, static_cast<std::int64_t>(k),
                                        depth(sg, centre(x, y, z), scene.fill_length));
        });
    }
    std::vector<float> boundary(want_image ? n : 0);
    for_each_voxel(slab, [&](std::int64_t x, std::int64_t y, std::int64_t z) {
        const Point p = centre(x, y, z);
        const Label l = resolve(scene, nearest[local(x, y, z)], p);
        const std::size_t i = local(x, y, z);
        f.cells[i] = l.cell;
        f.compartments[i] = static_cast<std::uint8_t>(l.compartment);
        if (!want_image) return;
        boundary[local(x, y, z)] = static_cast<float>(l.boundary);
        const double jitter = im.cell_jitter * (2 * uniform(hash(im.seed, static_cast<std::int64_t>(l.cell), 7)) - 1);
        f.image[i] =
            static_cast<float>(im.intensity[static_cast<std::size_t>(l.compartment)] + jitter + im.texture * grain[i]);
    });
    // Organelles: each only inside its own cell.
    auto in_cell = [&](std::size_t i, std::uint64_t cell) { return f.cells[i] == cell; };
    for (const Nucleus& nu : scene.nuclei) {
        const Box near = voxels_near(im, nu.centre, nu.centre, nu.radius + 3 * im.membrane_width + slack, slab);
        for_each_voxel(near, [&](std::int64_t x, std::int64_t y, std::int64_t z) {
            const std::size_t i = local(x, y, z);
            if (!in_cell(i, nu.cell)) return;
            const Point p = centre(x, y, z);
            const Point q = sub(p, nu.centre);
            const double d = std::sqrt(dot(q, q));
            if (d < nu.radius) {
                f.compartments[i] = static_cast<std::uint8_t>(Compartment::nucleus);
                if (want_image)
                    f.image[i] = static_cast<float>(
                        im.intensity[static_cast<std::size_t>(Compartment::nucleus)] +
                        im.nucleus_texture * value_noise(im.seed + 3, p.x, p.y, p.z, 150) +
                        0.5 * im.texture * value_noise(im.seed + 4, p.x, p.y, p.z, 0.4 * im.texture_scale));
            }
            if (want_image) {  // the nuclear envelope
                const double e = (d - nu.radius) / im.membrane_width;
                f.image[i] -= static_cast<float>(0.8 * im.membrane_darkness * std::exp(-e * e));
            }
        });
    }
    for (const Mitochondrion& m : scene.mitochondria) {
        const Box near = voxels_near(im, m.a, m.b, m.radius + slack, slab);
        const Point axis = sub(m.b, m.a);
        const double len = std::sqrt(dot(axis, axis));
        for_each_voxel(near, [&](std::int64_t x, std::int64_t y, std::int64_t z) {
            const std::size_t i = local(x, y, z);
            if (!in_cell(i, m.cell)) return;
            const Point p = centre(x, y, z);
            double t, d;
            closest_on_segment(m.a, m.b, p, t, d);
            if (d >= m.radius) return;
            f.mitochondria[i] = m.id;
            if (!want_image) return;
            // Cristae: folds across the long axis; a dark double membrane around.
            const double along = t * len + 0.37 * d;
            const double cristae = std::cos(6.283185307179586 * along / im.cristae_period);
            const double e = (m.radius - d) / im.membrane_width;
            f.image[i] = static_cast<float>(im.mitochondrion_intensity - 18 * cristae * cristae -
                                            0.5 * im.membrane_darkness * std::exp(-e * e) +
                                            0.5 * im.texture * value_noise(im.seed + 5, p.x, p.y, p.z, 30));
        });
    }
    if (want_image) {
        for (const Vesicle& v : scene.vesicles) {
            const Box near = voxels_near(im, v.centre, v.centre, v.radius + 2 * im.membrane_width + slack, slab);
            for_each_voxel(near, [&](std::int64_t x, std::int64_t y, std::int64_t z) {
                const std::size_t i = local(x, y, z);
                if (!in_cell(i, v.cell)) return;
                const Point q = sub(centre(x, y, z), v.centre);
                const double e = (std::sqrt(dot(q, q)) - v.radius) / (0.7 * im.membrane_width);
                f.image[i] -= static_cast<float>(im.vesicle_darkness * std::exp(-e * e));
            });
        }
        for (const Density& dn : scene.densities) {
            const Box near = voxels_near(im, dn.centre, dn.centre, dn.radius + dn.thickness + slack, slab);
            for_each_voxel(near, [&](std::int64_t x, std::int64_t y, std::int64_t z) {
                const std::size_t i = local(x, y, z);
                if (!in_cell(i, dn.cell)) return;
                const Point q = sub(centre(x, y, z), dn.centre);
                const double h = dot(q, dn.normal);
                const Point radial{q.x - h * dn.normal.x, q.y - h * dn.normal.y, q.z - h * dn.normal.z};
                const double r = std::sqrt(dot(radial, radial));
                const double w = smoothstep_edge(dn.radius - r, 20) *
                                 smoothstep_edge(dn.thickness - std::abs(h - 0.5 * dn.thickness) * 2, 10) *
                                 smoothstep_edge(h + 15, 10);
                f.image[i] -= static_cast<float>(dn.darkness * w);
            });
        }
        // Membranes last: they lie on top of everything at cell boundaries.
        for_each_voxel(slab, [&](std::int64_t x, std::int64_t y, std::int64_t z) {
            const double e = boundary[local(x, y, z)] / im.membrane_width;
            f.image[local(x, y, z)] -= static_cast<float>(im.membrane_darkness * std::exp(-e * e));
        });
    }
}

/// Labels at the voxel centres; the image averaged over `section_samples` planes spread evenly
/// through each section's thickness, as a section images everything within it (a membrane
/// lying between two voxel centres in z still darkens the section).
inline void render_slab(const Scene& scene, const std::vector<std::size_t>& candidates, Field& f, const Box& slab,
                        bool want_image) {
    const Imaging& im = scene.imaging;
    const int samples = want_image ? im.section_samples : 1;
    const Vec3 shape = f.box.size();
    // Cytoplasm texture, the same for every sample plane of a voxel (it varies over ~60 nm):
    // smooth mottling plus voxel grain that the blur turns into fine texture.
    std::vector<float> grain(want_image ? static_cast<std::size_t>(slab.volume()) : 0);
    if (want_image) {
        std::size_t j = 0;
        for_each_voxel(slab, [&](std::int64_t x, std::int64_t y, std::int64_t z) {
            const Point p = voxel_centre(im, x, y, z);
            grain[j] = static_cast<float>(0.55 * value_noise(im.seed + 1, p.x, p.y, p.z, im.texture_scale) +
                                          0.25 * value_noise(im.seed + 2, p.x, p.y, p.z, 0.4 * im.texture_scale) +
                                          0.45 * normal(hash(im.seed + 9, x, y, z)));
            ++j;
        });
    }
    Sample sample;
    for (int k = 0; k < samples; ++k) {
        const double dz = ((k + 0.5) / samples - 0.5) * im.voxel_size[2];
        const bool middle = 2 * k + 1 == samples;
        render_sample(scene, candidates, slab, dz, want_image, grain, sample);
        std::size_t j = 0;
        for_each_voxel(slab, [&](std::int64_t x, std::int64_t y, std::int64_t z) {
            const Vec3 o = Vec3{x, y, z} - f.box.topleft();
            const auto i = static_cast<std::size_t>(o.x + shape.x * (o.y + shape.y * o.z));
            if (middle) {
                f.cells[i] = sample.cells[j];
                f.compartments[i] = sample.compartments[j];
                f.mitochondria[i] = sample.mitochondria[j];
            }
            if (want_image) f.image[i] += sample.image[j] / static_cast<float>(samples);
            ++j;
        });
    }
}

inline std::uint8_t quantise(double v) { return static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace detail

/// Renders `box` (voxels of the whole volume's grid) of `scene` into `out`.
inline void render(const Scene& scene, const Box& box, const Outputs& out, ThreadPool& pool) {
    detail::check_scene(scene);
    const Imaging& im = scene.imaging;
    for (const auto* v : {&out.cells, &out.mitochondria})
        if (v->data() && v->shape() != box.size())
            throw InvalidArgument("synthetic render: output shape differs from the box");
    for (const auto* v : {&out.compartments, &out.image})
        if (v->data() && v->shape() != box.size())
            throw InvalidArgument("synthetic render: output shape differs from the box");
    const bool want_image = out.image.data() != nullptr;

    // The image needs a halo: the blur's reach, and in x and y the largest section shift.
    Vec3 halo{};
    if (want_image) {
        std::int64_t shift = 0;
        for (const auto& s : scene.shifts) shift = std::max({shift, std::abs(s[0]), std::abs(s[1])});
        for (std::size_t a = 0; a < 3; ++a)
            halo[a] = static_cast<std::int64_t>(std::ceil(3 * im.blur[a])) + (a < 2 ? shift : 0);
    }
    detail::Field f;
    f.box = box.padded(halo);
    const auto n = static_cast<std::size_t>(f.box.volume());
    f.cells.assign(n, 0);
    f.compartments.assign(n, 0);
    f.mitochondria.assign(n, 0);
    if (want_image) f.image.assign(n, 0);
    const std::vector<std::size_t> candidates = detail::segments_near(scene, f.box);
    constexpr std::int64_t slab_depth = 4;
    const std::int64_t slabs = (f.box.size().z + slab_depth - 1) / slab_depth;
    parallel_for(
        pool, 0, slabs,
        [&](std::int64_t k) {
            const Vec3 tl = f.box.topleft() + Vec3{0, 0, k * slab_depth};
            const Box slab = Box(tl, {f.box.size().x, f.box.size().y, slab_depth}).intersection(f.box);
            detail::render_slab(scene, candidates, f, slab, want_image);
        },
        slabs);

    const Vec3 fs = f.box.size();
    auto findex = [&](Vec3 g) {
        const Vec3 o = g - f.box.topleft();
        return static_cast<std::size_t>(o.x + fs.x * (o.y + fs.y * o.z));
    };
    if (want_image)
        for (int axis = 0; axis < 3; ++axis)
            detail::blur_axis(f.image, fs, axis, im.blur[static_cast<std::size_t>(axis)], pool);

    const double phase1 = 6.283185307179586 * detail::uniform(detail::hash(im.seed, 101));
    const double phase2 = 6.283185307179586 * detail::uniform(detail::hash(im.seed, 102));
    const double phase3 = 6.283185307179586 * detail::uniform(detail::hash(im.seed, 103));
    const double phase4 = 6.283185307179586 * detail::uniform(detail::hash(im.seed, 104));
    parallel_for(pool, 0, box.size().z, [&](std::int64_t oz) {
        const std::int64_t z = box.topleft().z + oz;
        const double zn = (static_cast<double>(z) + 0.5) * im.voxel_size[2];
        const auto zi = static_cast<std::size_t>(z);
        const bool in_defects = z >= 0 && zi < scene.defects.size();
        const SectionDefect defect = in_defects ? scene.defects[zi] : SectionDefect::none;
        const std::array<std::int64_t, 2> shift =
            defect == SectionDefect::shifted ? scene.shifts[zi] : std::array<std::int64_t, 2>{0, 0};
        // Section-to-section brightness and contrast wander slowly, plus a little per section.
        const double offset = im.drift * (0.6 * std::sin(6.283185307179586 * zn / im.drift_period + phase1) +
                                          0.4 * std::sin(6.283185307179586 * zn / (0.37 * im.drift_period) + phase2) +
                                          0.3 * detail::normal(detail::hash(im.seed, 105, z)));
        const double gain = 1 + 0.004 * im.drift * std::sin(6.283185307179586 * zn / (1.3 * im.drift_period) + phase3);
        for (std::int64_t oy = 0; oy < box.size().y; ++oy)
            for (std::int64_t ox = 0; ox < box.size().x; ++ox) {
                const Vec3 g = box.topleft() + Vec3{ox, oy, oz};
                const std::int64_t o = ox + box.size().x * (oy + box.size().y * oz);
                const std::size_t i = findex(g);
                if (out.cells.data()) out.cells[o] = f.cells[i];
                if (out.compartments.data()) out.compartments[o] = f.compartments[i];
                if (out.mitochondria.data()) out.mitochondria[o] = f.mitochondria[i];
                if (!want_image) continue;
                if (defect == SectionDefect::missing) {
                    out.image[o] = detail::quantise(im.missing_value);
                    continue;
                }
                const double v = f.image[findex(g + Vec3{shift[0], shift[1], 0})];
                const double xn = (static_cast<double>(g.x) + 0.5) * im.voxel_size[0];
                const double yn = (static_cast<double>(g.y) + 0.5) * im.voxel_size[1];
                const double gradient = 0.5 * im.gradient *
                                        (std::cos(6.283185307179586 * xn / 20000 + phase4) +
                                         std::cos(6.283185307179586 * yn / 20000 - phase4));
                const double noise = im.noise * detail::normal(detail::hash(im.seed, g.x, g.y, g.z, 106));
                out.image[o] = detail::quantise(128 + (v - 128) * gain + offset + gradient + noise);
            }
    });
}

}  // namespace vx::synthetic
