// numpy <-> View plumbing shared by the binding files: dtype mapping, shape checks, and taking
// arrays in voxelytics' x-fastest order (Fortran order of [x, y, z]) without copying when they
// already are, copying once when they are not.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "voxelytics/core/affinity_view.hpp"
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

/// volume_argument for kernels that take float32 only: UnsupportedType naming `name` otherwise.
inline py::array float32_volume_argument(const py::handle& obj, const char* name) {
    py::array a = volume_argument(obj, name);
    if (!a.dtype().is(py::dtype::of<float>()))
        throw UnsupportedType(std::string(name) + " must be a float32 array, got " +
                              py::str(a.dtype()).cast<std::string>());
    return a;
}

inline Vec3 shape_of(const py::array& a) { return {a.shape(0), a.shape(1), a.shape(2)}; }

template <class T>
View<const T> const_view(const py::array& a) {
    return View<const T>(static_cast<const T*>(a.data()), shape_of(a));
}

/// A new uninitialised array of `dtype` and shape `dims` in Fortran order (axis 0 fastest).
inline py::array new_fortran_array(DType dtype, const std::vector<py::ssize_t>& dims) {
    std::vector<py::ssize_t> strides(dims.size());
    py::ssize_t stride = py::dtype(dtype_name(dtype)).itemsize();
    for (std::size_t d = 0; d < dims.size(); ++d) {
        strides[d] = stride;
        stride *= dims[d];
    }
    return py::array(py::dtype(dtype_name(dtype)), dims, strides);
}

/// UnsupportedType unless `data` has exactly dtype `want`; `target` names where it should go.
inline void require_dtype(const py::array& data, DType want, const std::string& target) {
    if (!data.dtype().is(py::dtype(dtype_name(want))))
        throw UnsupportedType("data has dtype " + py::str(data.dtype()).cast<std::string>() + " but " + target +
                              " holds " + dtype_name(want));
}

/// The array to write a result into, and a View onto it: a new uninitialised [x, y, z] array in
/// x-fastest order if `out` is None, else `out` itself after checking that it is a writeable,
/// Fortran-ordered array of dtype T and shape `shape` that is either `input` or disjoint from it
/// (kernels read each input voxel before they write the same output voxel, never after).
template <class T>
struct Output {
    py::array array;
    View<T> view;
};

template <class T>
Output<T> output_volume(const py::object& out, Vec3 shape, const py::array& input) {
    if (out.is_none()) {
        py::array_t<T, py::array::f_style> a({shape.x, shape.y, shape.z});
        return {a, View<T>(a.mutable_data(), shape)};
    }
    if (!py::isinstance<py::array>(out)) throw UnsupportedType("out must be a numpy array or None");
    auto a = py::reinterpret_borrow<py::array>(out);
    if (!a.dtype().is(py::dtype::of<T>()))
        throw UnsupportedType("out must have dtype " + std::string(dtype_name(dtype_of_v<T>)) + ", got " +
                              py::str(a.dtype()).cast<std::string>());
    if (a.ndim() != 3 || Vec3{a.shape(0), a.shape(1), a.shape(2)} != shape)
        throw InvalidArgument("out must have the shape of labels (" + std::to_string(shape.x) + ", " +
                              std::to_string(shape.y) + ", " + std::to_string(shape.z) + ")");
    if (!(a.flags() & py::array::f_style) || !a.writeable())
        throw InvalidArgument("out must be writeable and Fortran-ordered (x fastest)");
    const auto* begin = static_cast<const char*>(a.data());
    const auto* in_begin = static_cast<const char*>(input.data());
    const bool overlap = begin < in_begin + input.nbytes() && in_begin < begin + a.nbytes();
    if (overlap && begin != in_begin) throw InvalidArgument("out overlaps labels without being the same array");
    return {a, View<T>(static_cast<T*>(a.mutable_data()), shape)};
}

/// Affinities as a (3, x, y, z) float32 array in Fortran order (channels fastest; copied once if
/// the input is laid out otherwise) and the AffinityView onto it.
struct AffinityArray {
    py::array_t<float, py::array::f_style> array;
    AffinityView<float> view;
};

inline AffinityArray affinity_argument(const py::handle& obj, const char* name) {
    auto a = py::array_t < float, py::array::f_style | py::array::forcecast > ::ensure(obj);
    if (!a) throw UnsupportedType(std::string(name) + " must be a numeric array");
    if (a.ndim() != 4 || a.shape(0) != 3) throw InvalidArgument(std::string(name) + " must be shaped (3, x, y, z)");
    return {a, AffinityView<float>{a.data(), {a.shape(1), a.shape(2), a.shape(3)}, 1, 3}};
}

/// A 1D (or any) numpy argument as a C-ordered array of T, converted once if needed.
template <class T>
using ArrayOf = py::array_t<T, py::array::c_style | py::array::forcecast>;

/// The elements of `a` as a vector, from its memory (pybind11's list conversion of a
/// std::vector parameter would visit every element in Python).
template <class T>
std::vector<T> to_vector(const ArrayOf<T>& a) {
    return std::vector<T>(a.data(), a.data() + a.size());
}

}  // namespace vx::bindings
