// Vec3: an (x, y, z) triple of signed 64-bit voxel coordinates or extents, with element-wise
// arithmetic. Everything geometric in voxelytics (boxes, blocks, offsets) is built on it.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <ostream>

namespace vx {

struct Vec3 {
    std::int64_t x = 0, y = 0, z = 0;

    constexpr Vec3() = default;
    constexpr Vec3(std::int64_t x_, std::int64_t y_, std::int64_t z_) : x(x_), y(y_), z(z_) {}
    static constexpr Vec3 full(std::int64_t v) { return {v, v, v}; }

    constexpr std::int64_t operator[](std::size_t i) const { return i == 0 ? x : (i == 1 ? y : z); }
    constexpr std::int64_t& operator[](std::size_t i) { return i == 0 ? x : (i == 1 ? y : z); }

    /// Number of voxels in a box of this size (0 if any extent is <= 0).
    constexpr std::int64_t prod() const { return (x > 0 && y > 0 && z > 0) ? x * y * z : 0; }
    constexpr std::array<std::int64_t, 3> to_array() const { return {x, y, z}; }

    friend constexpr bool operator==(const Vec3& a, const Vec3& b) { return a.x == b.x && a.y == b.y && a.z == b.z; }
    friend constexpr bool operator!=(const Vec3& a, const Vec3& b) { return !(a == b); }
    friend constexpr Vec3 operator+(const Vec3& a, const Vec3& b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
    friend constexpr Vec3 operator-(const Vec3& a, const Vec3& b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
    friend constexpr Vec3 operator*(const Vec3& a, const Vec3& b) { return {a.x * b.x, a.y * b.y, a.z * b.z}; }
    friend constexpr Vec3 operator*(const Vec3& a, std::int64_t s) { return {a.x * s, a.y * s, a.z * s}; }

    /// True if every component of `a` is <= the one of `b`.
    friend constexpr bool all_le(const Vec3& a, const Vec3& b) { return a.x <= b.x && a.y <= b.y && a.z <= b.z; }
    friend constexpr Vec3 min(const Vec3& a, const Vec3& b) {
        return {std::min(a.x, b.x), std::min(a.y, b.y), std::min(a.z, b.z)};
    }
    friend constexpr Vec3 max(const Vec3& a, const Vec3& b) {
        return {std::max(a.x, b.x), std::max(a.y, b.y), std::max(a.z, b.z)};
    }
    friend std::ostream& operator<<(std::ostream& os, const Vec3& v) {
        return os << "(" << v.x << ", " << v.y << ", " << v.z << ")";
    }
};

/// Floor division that rounds toward negative infinity (C++ `/` rounds toward zero).
constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    const std::int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

constexpr Vec3 floor_div(const Vec3& a, const Vec3& b) {
    return {floor_div(a.x, b.x), floor_div(a.y, b.y), floor_div(a.z, b.z)};
}
constexpr Vec3 ceil_div(const Vec3& a, const Vec3& b) {
    return {ceil_div(a.x, b.x), ceil_div(a.y, b.y), ceil_div(a.z, b.z)};
}

}  // namespace vx
