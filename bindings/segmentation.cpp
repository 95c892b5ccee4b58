// vx::segmentation -> voxelytics._core.segmentation. One Python name per operation for every
// supported dtype (runtime dispatch); arrays checked here, kernels run without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <optional>

#include "detail/numpy.hpp"
#include "detail/vec3_caster.hpp"
#include "voxelytics/core/dtype.hpp"
#include "voxelytics/segmentation/connected_components.hpp"
#include "voxelytics/segmentation/distance_height.hpp"
#include "voxelytics/segmentation/distance_transform.hpp"
#include "voxelytics/segmentation/label_statistics.hpp"
#include "voxelytics/segmentation/relabel.hpp"
#include "voxelytics/segmentation/steepest_ascent.hpp"
#include "voxelytics/segmentation/watershed.hpp"

namespace py = pybind11;
using namespace vx::bindings;
namespace seg = vx::segmentation;

namespace {

// The id type: `out`'s if given, else out_dtype ("auto": the smallest of uint16, uint32, uint64
// that holds the number of components, known before the output is allocated).
vx::DType component_id_type(const py::object& out_obj, const std::string& out_dtype, std::uint64_t count) {
    vx::DType d = vx::DType::uint64;
    if (!out_obj.is_none()) {
        if (!py::isinstance<py::array>(out_obj) || !to_dtype(py::reinterpret_borrow<py::array>(out_obj).dtype(), d) ||
            (d != vx::DType::uint16 && d != vx::DType::uint32 && d != vx::DType::uint64))
            throw vx::UnsupportedType("out must be a uint16, uint32 or uint64 numpy array");
        return d;
    }
    if (out_dtype == "auto") {
        if (count <= std::numeric_limits<std::uint16_t>::max()) return vx::DType::uint16;
        if (count <= std::numeric_limits<std::uint32_t>::max()) return vx::DType::uint32;
        return vx::DType::uint64;
    }
    if (out_dtype == "uint16") return vx::DType::uint16;
    if (out_dtype == "uint32") return vx::DType::uint32;
    if (out_dtype == "uint64") return vx::DType::uint64;
    throw vx::InvalidArgument("out_dtype must be 'auto', 'uint16', 'uint32' or 'uint64', got '" + out_dtype + "'");
}

py::tuple connected_components(const py::handle& labels_obj, int connectivity, bool binary, std::size_t threads,
                               const py::object& out_obj, const std::string& out_dtype) {
    const auto conn = seg::connectivity_from_int(connectivity);
    const py::array labels = volume_argument(labels_obj, "labels");
    const auto fg = binary ? seg::Foreground::binary : seg::Foreground::per_label;
    vx::ThreadPool pool(threads);
    return dispatch_array<vx::UnsignedTypes>(labels, "labels", [&](auto tag) {
        using T = typename decltype(tag)::type;
        std::optional<seg::Components<T>> components;
        {
            const py::gil_scoped_release nogil;
            components.emplace(const_view<T>(labels), conn, pool, fg);
        }
        const std::uint64_t n = components->count();
        using IdTypes = vx::TypeList<std::uint16_t, std::uint32_t, std::uint64_t>;
        py::array ids = vx::dispatch<IdTypes>(component_id_type(out_obj, out_dtype, n), "out", [&](auto id_tag) {
            using Out = typename decltype(id_tag)::type;
            const auto out = output_volume<Out>(out_obj, shape_of(labels), labels);
            const py::gil_scoped_release nogil;
            components->write(out.view, pool);
            return out.array;
        });
        return py::make_tuple(ids, n);
    });
}

py::tuple relabel_sequential(const py::handle& labels_obj, std::size_t threads, const py::object& out_obj) {
    const py::array labels = volume_argument(labels_obj, "labels");
    const auto out = output_volume<std::uint64_t>(out_obj, shape_of(labels), labels);
    py::array old_values = dispatch_array<vx::UnsignedTypes>(labels, "labels", [&](auto tag) {
        using T = typename decltype(tag)::type;
        std::vector<T> values;
        {
            const py::gil_scoped_release nogil;
            vx::ThreadPool pool(threads);
            values = seg::relabel_sequential<T>(const_view<T>(labels), out.view, pool);
        }
        return py::array(py::array_t<T>(static_cast<py::ssize_t>(values.size()), values.data()));
    });
    return py::make_tuple(out.array, old_values);
}

py::array remap(const py::handle& labels_obj, const ArrayOf<std::uint64_t>& keys_array,
                const ArrayOf<std::uint64_t>& values_array, bool preserve_missing, std::size_t threads,
                const py::object& out_obj) {
    const auto keys = to_vector(keys_array), values = to_vector(values_array);
    const py::array labels = volume_argument(labels_obj, "labels");
    const auto out = output_volume<std::uint64_t>(out_obj, shape_of(labels), labels);
    const auto missing = preserve_missing ? seg::MissingLabels::keep : seg::MissingLabels::raise;
    dispatch_array<vx::UnsignedTypes>(labels, "labels", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const py::gil_scoped_release nogil;
        vx::ThreadPool pool(threads);
        seg::remap<T>(const_view<T>(labels), out.view, keys, values, missing, pool);
    });
    return out.array;
}

py::list remap_each(const py::handle& labels_obj, const ArrayOf<std::uint64_t>& keys_array,
                    const py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>& values_array,
                    std::size_t threads) {
    const auto keys = to_vector(keys_array);
    if (values_array.ndim() != 2 || std::size_t(values_array.shape(1)) != keys.size())
        throw vx::InvalidArgument("remap_each: values must be a 2D array with one column per key");
    const py::array labels = volume_argument(labels_obj, "labels");
    std::vector<std::vector<std::uint64_t>> values;
    std::vector<vx::View<std::uint64_t>> views;
    py::list outs;
    for (py::ssize_t k = 0; k < values_array.shape(0); ++k) {
        values.emplace_back(values_array.data(k, 0), values_array.data(k, 0) + keys.size());
        auto out = output_volume<std::uint64_t>(py::none(), shape_of(labels), labels);
        outs.append(out.array);
        views.push_back(out.view);
    }
    dispatch_array<vx::UnsignedTypes>(labels, "labels", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const py::gil_scoped_release nogil;
        vx::ThreadPool pool(threads);
        seg::remap_each<T>(const_view<T>(labels), views, keys, values, pool);
    });
    return outs;
}

py::dict label_statistics(const py::handle& labels_obj, const py::list& values_list, std::array<double, 3> voxel_size,
                          vx::Vec3 offset, std::size_t threads) {
    const py::array labels = volume_argument(labels_obj, "labels");
    std::vector<py::array> arrays;  // float32, x fastest: kept alive while the views are used
    std::vector<vx::View<const float>> values;
    for (const py::handle v : values_list) {
        arrays.push_back(float32_volume_argument(v, "values"));
        values.push_back(const_view<float>(arrays.back()));
    }
    seg::LabelStatistics stats;
    dispatch_array<vx::UnsignedTypes>(labels, "labels", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const py::gil_scoped_release nogil;
        vx::ThreadPool pool(threads);
        stats = seg::label_statistics<T>(const_view<T>(labels), values, voxel_size, offset, pool);
    });
    const auto n = static_cast<py::ssize_t>(stats.labels.size()), nv = static_cast<py::ssize_t>(values.size());
    auto table = [](const std::vector<double>& v, py::ssize_t rows, py::ssize_t cols) {
        return py::array_t<double>({rows, cols}, v.data());
    };
    py::dict out;
    out["labels"] = py::array_t<std::uint64_t>(n, stats.labels.data());
    out["counts"] = py::array_t<std::uint64_t>(n, stats.counts.data());
    out["moments"] = table(stats.moments, n, seg::LabelStatistics::num_moments);
    out["sums"] = table(stats.sums, n, nv);
    out["maxima"] = table(stats.maxima, n, nv);
    return out;
}

py::array distance_transform(const py::handle& labels_obj, std::array<double, 3> voxel_size, bool squared,
                             bool black_border, double max_distance, std::size_t threads, const py::object& out_obj) {
    const py::array labels = volume_argument(labels_obj, "labels");
    const auto out = output_volume<float>(out_obj, shape_of(labels), labels);
    const auto border = black_border ? seg::Border::background : seg::Border::same_label;
    dispatch_array<vx::UnsignedTypes>(labels, "labels", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const py::gil_scoped_release nogil;
        vx::ThreadPool pool(threads);
        seg::distance_transform<T>(const_view<T>(labels), out.view, voxel_size, squared, border, pool, max_distance);
    });
    return out.array;
}

py::array distance_height(const py::handle& boundary_obj, float threshold, std::array<double, 3> voxel_size, double cap,
                          std::array<double, 3> sigma, float boundary_weight, std::size_t threads) {
    const py::array boundary = float32_volume_argument(boundary_obj, "boundary");
    const auto out = output_volume<float>(py::none(), shape_of(boundary), boundary);
    const py::gil_scoped_release nogil;
    vx::ThreadPool pool(threads);
    seg::distance_height(const_view<float>(boundary), out.view, threshold, voxel_size, cap, sigma, boundary_weight,
                         pool);
    return out.array;
}

py::array seeded_watershed(const py::handle& boundary_obj, const py::handle& seeds_obj, const py::object& mask_obj) {
    const py::array boundary = volume_argument(boundary_obj, "boundary");
    const py::array seeds = volume_argument(seeds_obj, "seeds");
    if (shape_of(seeds) != shape_of(boundary)) throw vx::InvalidArgument("seeds and boundary differ in shape");
    py::array_t<std::uint64_t, py::array::f_style> out = py::array::ensure(seeds.attr("astype")("uint64", "F"));
    py::array mask;
    if (!mask_obj.is_none()) {
        mask = volume_argument(mask_obj, "mask");
        if (shape_of(mask) != shape_of(boundary)) throw vx::InvalidArgument("mask and boundary differ in shape");
        if (mask.dtype().itemsize() != 1 || (mask.dtype().kind() != 'b' && mask.dtype().kind() != 'u'))
            throw vx::UnsupportedType("mask must be a bool or uint8 array");
    }
    const auto* mask_data = mask_obj.is_none() ? nullptr : static_cast<const std::uint8_t*>(mask.data());
    const vx::View<std::uint64_t> labels(out.mutable_data(), shape_of(boundary));
    dispatch_array<vx::TypeList<float, double>>(boundary, "boundary", [&](auto tag) {
        using T = typename decltype(tag)::type;
        const py::gil_scoped_release nogil;
        seg::seeded_watershed<T>(const_view<T>(boundary), labels, mask_data);
    });
    return out;
}

/// Runs steepest_ascent_basins with the rule `make_rule(pool)` builds on `core` (topleft, size) of
/// its region `input`; returns (labels of the core (in `out` if given), first voxel per label, per
/// axis the upper-face links or None).
template <class MakeRule>
py::tuple basins(MakeRule&& make_rule, const std::pair<vx::Vec3, vx::Vec3>& core_box, std::size_t threads,
                 const py::array& input, const py::object& out) {
    const vx::Box core(core_box.first, core_box.second);
    const auto labels = output_volume<std::uint64_t>(out, core.size(), input);
    vx::segmentation::Basins result;
    {
        const py::gil_scoped_release nogil;
        vx::ThreadPool pool(threads);
        const auto rule = make_rule(pool);
        result = seg::steepest_ascent_basins(rule, core, labels.view, pool);
    }
    py::list links;
    for (const auto& face : result.upper_links)
        links.append(face.empty()
                         ? py::object(py::none())
                         : py::object(py::array_t<std::uint8_t>(static_cast<py::ssize_t>(face.size()), face.data())));
    const auto& first = result.first_voxel;
    return py::make_tuple(labels.array, py::array_t<std::int64_t>(static_cast<py::ssize_t>(first.size()), first.data()),
                          links);
}

// A float32 volume without NaN.
py::array float32_volume(const py::handle& obj, const char* name) {
    const py::array a = float32_volume_argument(obj, name);
    const auto v = const_view<float>(a);
    const py::gil_scoped_release nogil;
    seg::require_no_nan(v, name);
    return a;
}

py::tuple height_basins(const py::handle& height_obj, const std::pair<vx::Vec3, vx::Vec3>& core, std::size_t threads,
                        const py::object& out) {
    const py::array height = float32_volume(height_obj, "height");
    const auto view = const_view<float>(height);
    return basins([&](vx::ThreadPool&) { return seg::HeightRule{view}; }, core, threads, height, out);
}

py::tuple affinity_basins(const py::handle& affinities_obj, float low, float high,
                          const std::pair<vx::Vec3, vx::Vec3>& core, std::size_t threads, const py::object& out) {
    const auto affinities = affinity_argument(affinities_obj, "affinities");  // NaN: the rule refuses it
    const auto view = affinities.view;
    return basins([&](vx::ThreadPool& pool) { return seg::AffinityRule(view, low, high, pool); }, core, threads,
                  affinities.array, out);
}

}  // namespace

void export_segmentation(py::module_& parent) {
    py::module_ m = parent.def_submodule("segmentation", "Label-volume kernels (see voxelytics.segmentation).");
    m.def("connected_components", &connected_components, py::arg("labels"), py::arg("connectivity"), py::arg("binary"),
          py::arg("threads"), py::arg("out") = py::none(), py::arg("out_dtype") = "uint64",
          "Returns (component ids in first-appearance order, number of components).");
    m.def("relabel_sequential", &relabel_sequential, py::arg("labels"), py::arg("threads"), py::arg("out") = py::none(),
          "Returns (uint64 ids 1..N by increasing old value, old values).");
    m.def("remap", &remap, py::arg("labels"), py::arg("keys"), py::arg("values"), py::arg("preserve_missing"),
          py::arg("threads"), py::arg("out") = py::none());
    m.def("remap_each", &remap_each, py::arg("labels"), py::arg("keys"), py::arg("values"), py::arg("threads"),
          "One uint64 volume per row of values: labels remapped (missing values kept), in one pass.");
    m.def("seeded_watershed", &seeded_watershed, py::arg("boundary"), py::arg("seeds"), py::arg("mask") = py::none(),
          "uint64 labels: seeds flooded over the boundary map (priority flood).");
    m.def("label_statistics", &label_statistics, py::arg("labels"), py::arg("values"), py::arg("voxel_size"),
          py::arg("offset"), py::arg("threads"));
    m.def("distance_transform", &distance_transform, py::arg("labels"), py::arg("voxel_size"), py::arg("squared"),
          py::arg("black_border"), py::arg("max_distance"), py::arg("threads"), py::arg("out") = py::none(),
          "float32 distance of each voxel to the nearest voxel of another value (0 for label 0).");
    m.def("distance_height", &distance_height, py::arg("boundary"), py::arg("threshold"), py::arg("voxel_size"),
          py::arg("cap"), py::arg("sigma"), py::arg("boundary_weight"), py::arg("threads"),
          "DistanceWatershed's float32 height map of a float32 boundary map.");
    m.def("height_basins", &height_basins, py::arg("height"), py::arg("core"), py::arg("threads"),
          py::arg("out") = py::none(),
          "Steepest-ascent basins of a float32 height map on core (topleft, size): (labels, first voxels, links).");
    m.def("affinity_basins", &affinity_basins, py::arg("affinities"), py::arg("low"), py::arg("high"), py::arg("core"),
          py::arg("threads"), py::arg("out") = py::none(),
          "Zlateski & Seung basins of (3, x, y, z) affinities on core.");
}
