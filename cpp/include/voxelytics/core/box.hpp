// Box: an axis-aligned box of voxels given as (topleft, size), the convention of webKnossos.
// Boxes with a zero or negative extent are empty; all empty boxes compare equal to Box{}.
#pragma once

#include <sstream>
#include <string>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/vec3.hpp"

namespace vx {

class Box {
public:
    constexpr Box() = default;
    /// Throws InvalidArgument for a negative size.
    Box(Vec3 topleft, Vec3 size) : topleft_(topleft), size_(size) {
        if (size.x < 0 || size.y < 0 || size.z < 0) {
            std::ostringstream msg;
            msg << "Box size must be non-negative, got " << size;
            throw InvalidArgument(msg.str());
        }
    }
    static Box from_corners(Vec3 topleft, Vec3 bottomright) { return Box(topleft, max(bottomright - topleft, Vec3{})); }

    constexpr Vec3 topleft() const { return topleft_; }
    constexpr Vec3 size() const { return size_; }
    /// One past the last voxel on each axis.
    constexpr Vec3 bottomright() const { return topleft_ + size_; }
    constexpr std::int64_t volume() const { return size_.prod(); }
    constexpr bool empty() const { return volume() == 0; }

    constexpr bool contains(Vec3 p) const {
        return all_le(topleft_, p) && p.x < bottomright().x && p.y < bottomright().y && p.z < bottomright().z;
    }
    /// True if `other` lies inside this box (an empty box lies inside every box).
    constexpr bool contains(const Box& other) const {
        return other.empty() || (all_le(topleft_, other.topleft_) && all_le(other.bottomright(), bottomright()));
    }

    /// The common part of two boxes; empty (Box{}) if they do not overlap.
    Box intersection(const Box& other) const {
        const Vec3 lo = max(topleft_, other.topleft_);
        const Vec3 hi = min(bottomright(), other.bottomright());
        if (!(lo.x < hi.x && lo.y < hi.y && lo.z < hi.z)) return Box{};
        return Box(lo, hi - lo);
    }
    /// The smallest box holding both (an empty box adds nothing).
    Box union_with(const Box& other) const {
        if (empty()) return other;
        if (other.empty()) return *this;
        return from_corners(min(topleft_, other.topleft_), max(bottomright(), other.bottomright()));
    }
    Box translated(Vec3 by) const { return Box(topleft_ + by, size_); }
    /// Grown by `margin` on every side (a negative margin shrinks; the result never has negative size).
    Box padded(Vec3 margin) const { return from_corners(topleft_ - margin, bottomright() + margin); }

    /// The smallest box whose corners lie on multiples of `grid` and that holds this one.
    Box aligned_outward(Vec3 grid) const {
        check_grid(grid);
        return from_corners(floor_div(topleft_, grid) * grid, ceil_div(bottomright(), grid) * grid);
    }
    /// The largest box whose corners lie on multiples of `grid` and that lies inside this one.
    Box aligned_inward(Vec3 grid) const {
        check_grid(grid);
        return from_corners(ceil_div(topleft_, grid) * grid, floor_div(bottomright(), grid) * grid);
    }
    bool is_aligned(Vec3 grid) const { return aligned_outward(grid) == *this; }

    friend bool operator==(const Box& a, const Box& b) {
        if (a.empty() || b.empty()) return a.empty() && b.empty();
        return a.topleft_ == b.topleft_ && a.size_ == b.size_;
    }
    friend bool operator!=(const Box& a, const Box& b) { return !(a == b); }
    friend std::ostream& operator<<(std::ostream& os, const Box& b) {
        return os << "Box(topleft=" << b.topleft_ << ", size=" << b.size_ << ")";
    }
    std::string to_string() const {
        std::ostringstream s;
        s << *this;
        return s.str();
    }

private:
    static void check_grid(Vec3 grid) {
        if (grid.x <= 0 || grid.y <= 0 || grid.z <= 0) {
            std::ostringstream msg;
            msg << "grid must be positive on every axis, got " << grid;
            throw InvalidArgument(msg.str());
        }
    }
    Vec3 topleft_{};
    Vec3 size_{};
};

}  // namespace vx
