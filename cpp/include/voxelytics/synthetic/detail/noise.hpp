// Counter-based randomness for rendering: every value is a pure function of (seed, integer
// coordinates), so any block of a volume renders the same on its own, in any order, on any number
// of threads.
#pragma once

#include <cmath>
#include <cstdint>

namespace vx::synthetic::detail {

inline std::uint64_t mix(std::uint64_t z) {  // the splitmix64 finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

inline std::uint64_t hash(std::uint64_t seed, std::int64_t a, std::int64_t b = 0, std::int64_t c = 0,
                          std::int64_t d = 0) {
    std::uint64_t h = mix(seed + 0x9e3779b97f4a7c15ULL);
    h = mix(h ^ static_cast<std::uint64_t>(a));
    h = mix(h ^ static_cast<std::uint64_t>(b));
    h = mix(h ^ static_cast<std::uint64_t>(c));
    return mix(h ^ static_cast<std::uint64_t>(d));
}

/// Uniform in [0, 1).
inline double uniform(std::uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

/// Standard normal (Box-Muller on two halves of one hash chain).
inline double normal(std::uint64_t h) {
    const double u1 = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = uniform(mix(h));
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

/// Smooth value noise in [-1, 1] with features of about `scale` (same units as x, y, z).
inline double value_noise(std::uint64_t seed, double x, double y, double z, double scale) {
    x /= scale, y /= scale, z /= scale;
    const double fx = std::floor(x), fy = std::floor(y), fz = std::floor(z);
    const auto ix = static_cast<std::int64_t>(fx), iy = static_cast<std::int64_t>(fy),
               iz = static_cast<std::int64_t>(fz);
    auto smooth = [](double t) { return t * t * (3 - 2 * t); };
    const double tx = smooth(x - fx), ty = smooth(y - fy), tz = smooth(z - fz);
    auto corner = [&](int dx, int dy, int dz) { return 2 * uniform(hash(seed, ix + dx, iy + dy, iz + dz)) - 1; };
    auto lerp = [](double a, double b, double t) { return a + (b - a) * t; };
    const double x00 = lerp(corner(0, 0, 0), corner(1, 0, 0), tx), x10 = lerp(corner(0, 1, 0), corner(1, 1, 0), tx);
    const double x01 = lerp(corner(0, 0, 1), corner(1, 0, 1), tx), x11 = lerp(corner(0, 1, 1), corner(1, 1, 1), tx);
    return lerp(lerp(x00, x10, ty), lerp(x01, x11, ty), tz);
}

}  // namespace vx::synthetic::detail
