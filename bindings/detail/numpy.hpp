// numpy <-> View plumbing shared by the binding files: dtype mapping, shape checks, and taking
// arrays in voxelytics' x-fastest order (Fortran order of [x, y, z]) without copying when they
// already are, copying once when they are not.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "voxelytics/core/dtype.hpp"
#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/view.hpp"

namespace vx::bindings {

namespace py = pybind11;

/// The voxelytics DType of a numpy array (bool counts as uint8); false if there is none.
inline bool to_dtype(const py::dtype& dt, DType& out) {
    const char kind = dt.kind();
    const auto size = dt.itemsize();
    if (kind == 'b' || (kind == 'u' && size == 1))
        out = DType::uint8;
    else if (kind == 'u' && size == 2)
        out = DType::uint16;
    else if (kind == 'u' && size == 4)
        out = DType::uint32;
    else if (kind == 'u' && size == 8)
        out = DType::uint64;
    else if (kind == 'i' && size == 1)
        out = DType::int8;
    else if (kind == 'i' && size == 2)
        out = DType::int16;
    else if (kind == 'i' && size == 4)
        out = DType::int32;
    else if (kind == 'i' && size == 8)
        out = DType::int64;
    else if (kind == 'f' && size == 4)
        out = DType::float32;
    else if (kind == 'f' && size == 8)
        out = DType::float64;
    else
        return false;
    return true;
}

/// Calls `f(TypeTag<T>{})` for the element type T of `a` if T is in `Types`; otherwise throws
/// UnsupportedType naming `name`, the array's dtype and the supported ones.
template <class Types, class F>
decltype(auto) dispatch_array(const py::array& a, const char* name, F&& f) {
    DType d;
    if (!to_dtype(a.dtype(), d))
        throw UnsupportedType(std::string(name) + " has unsupported dtype " + py::str(a.dtype()).cast<std::string>() +
                              "; supported: " + Types::names());
    return vx::dispatch<Types>(d, name, std::forward<F>(f));
}

/// Checks that `obj` is a 3D array and returns it in x-fastest (Fortran) order, copying only if
/// it is not already. Byte order is normalised to native by the same copy.
inline py::array volume_argument(const py::handle& obj, const char* name) {
    py::array a = py::array::ensure(obj);
    if (!a) throw InvalidArgument(std::string(name) + " must be a numpy array");
    if (a.ndim() != 3) {
        std::string shape = "(";
        for (py::ssize_t i = 0; i < a.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(a.shape(i));
        throw InvalidArgument(std::string(name) + " must be a 3D array indexed [x, y, z], got shape " + shape + ")");
    }
    if (!a.dtype().attr("isnative").cast<bool>()) a = a.attr("astype")(a.dtype().attr("newbyteorder")("="));
    if (!(a.flags() & py::array::f_style)) a = py::array::ensure(a, py::array::f_style | py::array::forcecast);
    return a;
}

inline Vec3 shape_of(const py::array& a) { return {a.shape(0), a.shape(1), a.shape(2)}; }

template <class T>
View<const T> const_view(const py::array& a) {
    return View<const T>(static_cast<const T*>(a.data()), shape_of(a));
}

/// A new uninitialised [x, y, z] array in x-fastest order and a View onto it.
template <class T>
std::pair<py::array_t<T, py::array::f_style>, View<T>> new_volume(Vec3 shape) {
    py::array_t<T, py::array::f_style> a({shape.x, shape.y, shape.z});
    return {a, View<T>(a.mutable_data(), shape)};
}

}  // namespace vx::bindings
