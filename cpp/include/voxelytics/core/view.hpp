// View<T>: a non-owning 3D array of T in voxelytics' memory order, x fastest (Fortran order of an
// [x, y, z] array; the same bytes as a C-ordered [z, y, x] array). Kernels take Views so that they
// work on numpy buffers, xtensor containers and chunks alike without copies; `as_xtensor` gives
// an xtensor expression over the same memory for code that prefers xtensor's algebra.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <type_traits>

#include <xtensor/xadapt.hpp>
#include <xtensor/xtensor.hpp>

#include "voxelytics/core/box.hpp"
#include "voxelytics/core/errors.hpp"

namespace vx {

template <class T>
class View {
public:
    using value_type = T;

    View() = default;
    View(T* data, Vec3 shape) : data_(data), shape_(shape) {
        if (shape.x < 0 || shape.y < 0 || shape.z < 0) {
            std::ostringstream msg;
            msg << "array shape must be non-negative, got " << shape;
            throw InvalidArgument(msg.str());
        }
    }
    /// A View over an xtensor container in column-major (x-fastest) layout.
    template <class E, class = std::enable_if_t<E::static_layout == xt::layout_type::column_major>>
    explicit View(E& e)
        : View(e.data(), Vec3{static_cast<std::int64_t>(e.shape()[0]), static_cast<std::int64_t>(e.shape()[1]),
                              static_cast<std::int64_t>(e.shape()[2])}) {}

    /// Views of T convert to views of const T.
    operator View<const T>() const { return View<const T>(data_, shape_); }

    T* data() const { return data_; }
    Vec3 shape() const { return shape_; }
    std::int64_t size() const { return shape_.prod(); }
    Box box() const { return Box({}, shape_); }

    std::int64_t offset(std::int64_t x, std::int64_t y, std::int64_t z) const {
        return x + shape_.x * (y + shape_.y * z);
    }
    T& operator()(std::int64_t x, std::int64_t y, std::int64_t z) const { return data_[offset(x, y, z)]; }
    T& operator[](std::int64_t i) const { return data_[i]; }

private:
    T* data_ = nullptr;
    Vec3 shape_{};
};

/// An xtensor expression (column-major, shape [x, y, z]) over the View's memory; no copy.
template <class T>
auto as_xtensor(View<T> v) {
    using shape_type = std::array<std::size_t, 3>;
    const shape_type shape{static_cast<std::size_t>(v.shape().x), static_cast<std::size_t>(v.shape().y),
                           static_cast<std::size_t>(v.shape().z)};
    return xt::adapt<xt::layout_type::column_major>(v.data(), static_cast<std::size_t>(v.size()), xt::no_ownership(),
                                                    shape);
}

/// The owning container voxelytics' C++ API uses for volumes: [x, y, z], x fastest.
template <class T>
using Volume = xt::xtensor<T, 3, xt::layout_type::column_major>;

/// Throws InvalidArgument unless `a` and `b` have the same shape; `what` names them for the message.
template <class A, class B>
void require_same_shape(const View<A>& a, const View<B>& b, const char* what) {
    if (a.shape() != b.shape()) {
        std::ostringstream msg;
        msg << what << ": shapes differ, " << a.shape() << " vs " << b.shape();
        throw InvalidArgument(msg.str());
    }
}

}  // namespace vx
