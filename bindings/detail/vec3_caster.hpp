// Lets vx::Vec3 cross the binding boundary as a Python tuple (x, y, z) (any length-3 sequence of
// ints is accepted).
#pragma once

#include <pybind11/pybind11.h>

#include "voxelytics/core/vec3.hpp"

namespace pybind11::detail {

template <>
struct type_caster<vx::Vec3> {
    PYBIND11_TYPE_CASTER(vx::Vec3, const_name("tuple[int, int, int]"));

    bool load(handle src, bool) {
        if (!src || !PySequence_Check(src.ptr()) || PyUnicode_Check(src.ptr())) return false;
        const auto seq = reinterpret_borrow<sequence>(src);
        if (seq.size() != 3) return false;
        try {
            value = vx::Vec3(seq[0].cast<std::int64_t>(), seq[1].cast<std::int64_t>(), seq[2].cast<std::int64_t>());
        } catch (const cast_error&) {
            return false;
        }
        return true;
    }

    static handle cast(const vx::Vec3& v, return_value_policy, handle) { return make_tuple(v.x, v.y, v.z).release(); }
};

}  // namespace pybind11::detail
