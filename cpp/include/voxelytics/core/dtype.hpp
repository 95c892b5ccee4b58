// DType: the element types voxelytics stores and computes on, and `dispatch`, which turns a
// runtime DType into a compile-time type for a chosen list of supported types. Bindings and
// readers use it so that one entry point serves every dtype and an unsupported one is refused
// with a message that lists what is supported.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "voxelytics/core/errors.hpp"

namespace vx {

enum class DType { uint8, uint16, uint32, uint64, int8, int16, int32, int64, float32, float64 };

inline const char* dtype_name(DType d) {
    switch (d) {
        case DType::uint8: return "uint8";
        case DType::uint16: return "uint16";
        case DType::uint32: return "uint32";
        case DType::uint64: return "uint64";
        case DType::int8: return "int8";
        case DType::int16: return "int16";
        case DType::int32: return "int32";
        case DType::int64: return "int64";
        case DType::float32: return "float32";
        case DType::float64: return "float64";
    }
    return "unknown";
}

template <class T>
struct dtype_of;
#define VOXELYTICS_DTYPE_OF(T, D)                \
    template <>                                  \
    struct dtype_of<T> {                         \
        static constexpr DType value = DType::D; \
    };
VOXELYTICS_DTYPE_OF(std::uint8_t, uint8)
VOXELYTICS_DTYPE_OF(std::uint16_t, uint16)
VOXELYTICS_DTYPE_OF(std::uint32_t, uint32)
VOXELYTICS_DTYPE_OF(std::uint64_t, uint64)
VOXELYTICS_DTYPE_OF(std::int8_t, int8)
VOXELYTICS_DTYPE_OF(std::int16_t, int16)
VOXELYTICS_DTYPE_OF(std::int32_t, int32)
VOXELYTICS_DTYPE_OF(std::int64_t, int64)
VOXELYTICS_DTYPE_OF(float, float32)
VOXELYTICS_DTYPE_OF(double, float64)
#undef VOXELYTICS_DTYPE_OF

template <class T>
inline constexpr DType dtype_of_v = dtype_of<T>::value;

/// A value that carries a type, handed to the callable of `dispatch`.
template <class T>
struct TypeTag {
    using type = T;
};

/// A list of types that an operation supports, e.g. `TypeList<std::uint8_t, std::uint64_t>`.
template <class... Ts>
struct TypeList {
    /// "uint8, uint64": for error messages.
    static std::string names() {
        std::string s;
        ((s += (s.empty() ? std::string() : std::string(", ")) + dtype_name(dtype_of_v<Ts>)), ...);
        return s;
    }
};

using UnsignedTypes = TypeList<std::uint8_t, std::uint16_t, std::uint32_t, std::uint64_t>;
using IntegerTypes = TypeList<std::uint8_t, std::uint16_t, std::uint32_t, std::uint64_t, std::int8_t, std::int16_t,
                              std::int32_t, std::int64_t>;
using AllTypes = TypeList<std::uint8_t, std::uint16_t, std::uint32_t, std::uint64_t, std::int8_t, std::int16_t,
                          std::int32_t, std::int64_t, float, double>;

namespace detail {
template <class F, class... Ts>
decltype(auto) dispatch_impl(DType d, const char* what, F&& f, TypeList<Ts...>) {
    using R = std::invoke_result_t<F, TypeTag<std::tuple_element_t<0, std::tuple<Ts...>>>>;
    auto unsupported = [&] {
        return UnsupportedType(std::string(what) + " has unsupported dtype " + dtype_name(d) +
                               "; supported: " + TypeList<Ts...>::names());
    };
    if constexpr (std::is_void_v<R>) {
        if (!((d == dtype_of_v<Ts> ? (f(TypeTag<Ts>{}), true) : false) || ...)) throw unsupported();
    } else {
        R result{};
        if (!((d == dtype_of_v<Ts> ? (result = f(TypeTag<Ts>{}), true) : false) || ...)) throw unsupported();
        return result;
    }
}
}  // namespace detail

/// Calls `f(TypeTag<T>{})` for the T in `Types` whose DType is `d`; throws UnsupportedType naming
/// `what` (e.g. "labels") and the supported dtypes otherwise.
template <class Types, class F>
decltype(auto) dispatch(DType d, const char* what, F&& f) {
    return detail::dispatch_impl(d, what, std::forward<F>(f), Types{});
}

}  // namespace vx
