// vx::synapses -> voxelytics._core.synapses. `block_pieces` labels one block (score uint8 or
// float32, fragments any unsigned type or None, features float32) without the GIL; a `Detector`
// collects the blocks and `finish` returns the tables as numpy arrays (fixed-point sums converted
// to floats here, the one place that knows the representation).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "detail/numpy.hpp"
#include "detail/vec3_caster.hpp"
#include "voxelytics/synapses/detection.hpp"

namespace py = pybind11;
using namespace vx::bindings;
namespace syn = vx::synapses;

namespace {

syn::BlockPieces block_pieces(const py::handle& score_obj, double threshold, const py::object& fragments_obj,
                              const std::vector<py::object>& feature_objs, vx::Vec3 topleft, vx::Vec3 volume_shape,
                              int connectivity, std::size_t threads) {
    const auto conn = vx::segmentation::connectivity_from_int(connectivity);
    const py::array score = volume_argument(score_obj, "score");
    const vx::Vec3 shape = shape_of(score);
    py::array fragments;
    if (!fragments_obj.is_none()) {
        fragments = volume_argument(fragments_obj, "fragments");
        if (shape_of(fragments) != shape) throw vx::InvalidArgument("fragments do not have the shape of the score");
    }
    std::vector<py::array> feature_arrays;
    std::vector<vx::View<const float>> features;
    for (std::size_t f = 0; f < feature_objs.size(); ++f) {
        const std::string name = "feature " + std::to_string(f);
        feature_arrays.push_back(float32_volume_argument(feature_objs[f], name.c_str()));
        if (shape_of(feature_arrays.back()) != shape)
            throw vx::InvalidArgument(name + " does not have the shape of the score");
        features.push_back(const_view<float>(feature_arrays.back()));
    }
    vx::ThreadPool pool(threads);
    return dispatch_array<vx::TypeList<std::uint8_t, float>>(score, "score", [&](auto score_tag) {
        using Score = typename decltype(score_tag)::type;
        // A quantised score q stands for q / 255; q >= ceil(255 t) is q / 255 >= t.
        const bool quantised = std::is_integral_v<Score>;
        const double t = quantised ? std::ceil(threshold * 255 - 1e-9) : threshold;
        if (quantised && t > 255) throw vx::InvalidArgument("threshold above 1 for a uint8 score");
        const auto limit = static_cast<Score>(quantised ? std::max(t, 0.0) : t);
        const double scale = quantised ? 1.0 / 255 : 1.0;
        auto run = [&](auto fragment_view) {
            const py::gil_scoped_release nogil;
            return syn::block_pieces(const_view<Score>(score), limit, scale, fragment_view, features, topleft,
                                     volume_shape, conn, pool);
        };
        if (fragments_obj.is_none()) return run(vx::View<const std::uint64_t>());
        return dispatch_array<vx::UnsignedTypes>(fragments, "fragments", [&](auto fragment_tag) {
            using Fragment = typename decltype(fragment_tag)::type;
            return run(const_view<Fragment>(fragments));
        });
    });
}

template <class T>
py::array_t<T> column(std::size_t n, std::size_t width = 1) {
    if (width == 1) return py::array_t<T>(static_cast<py::ssize_t>(n));
    return py::array_t<T>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(width)});
}

// Moments as arrays: voxels, centroid (n, 3) and covariance (n, 6: xx yy zz xy xz yz), in voxels.
template <class Items, class Get>
void moments_columns(py::dict& out, const Items& items, Get get) {
    const std::size_t n = items.size();
    auto voxels = column<std::uint64_t>(n);
    auto centroid = column<double>(n, 3);
    auto covariance = column<double>(n, 6);
    auto v = voxels.mutable_unchecked<1>();
    auto c = centroid.mutable_unchecked<2>();
    auto q = covariance.mutable_unchecked<2>();
    static constexpr int pairs[6][2] = {{0, 0}, {1, 1}, {2, 2}, {0, 1}, {0, 2}, {1, 2}};
    for (std::size_t i = 0; i < n; ++i) {
        const syn::Moments& m = get(items[i]);
        const auto count = static_cast<double>(m.voxels);
        v(i) = m.voxels;
        for (int a = 0; a < 3; ++a) c(i, a) = static_cast<double>(m.sum[a]) / count;
        for (int k = 0; k < 6; ++k)
            q(i, k) = static_cast<double>(m.sum2[k]) / count - c(i, pairs[k][0]) * c(i, pairs[k][1]);
    }
    out["voxels"] = voxels;
    out["centroid"] = centroid;
    out["covariance"] = covariance;
}

// Summed features per row, divided by the row's voxels: the mean of each feature.
py::array_t<double> feature_means(const std::vector<std::int64_t>& sums, std::size_t width,
                                  const std::vector<std::uint64_t>& voxels) {
    py::array_t<double> out({static_cast<py::ssize_t>(voxels.size()), static_cast<py::ssize_t>(width)});
    auto o = out.mutable_unchecked<2>();
    for (std::size_t i = 0; i < voxels.size(); ++i)
        for (std::size_t f = 0; f < width; ++f)
            o(i, f) = syn::from_fixed(sums[i * width + f]) / static_cast<double>(voxels[i]);
    return out;
}

py::dict finish(syn::Detector& detector, std::uint64_t min_size, std::uint64_t max_size) {
    syn::Detection d;
    {
        const py::gil_scoped_release nogil;
        d = detector.finish(min_size, max_size);
    }
    const std::size_t n = d.synapses.size(), F = d.num_features;
    py::dict synapses;
    moments_columns(synapses, d.synapses, [](const syn::Synapse& s) -> const syn::Moments& { return s.moments; });
    auto score = column<double>(n), score_max = column<double>(n);
    auto lo = column<std::int64_t>(n, 3), size = column<std::int64_t>(n, 3), first = column<std::int64_t>(n);
    std::vector<std::uint64_t> voxels(n);
    {
        auto s = score.mutable_unchecked<1>(), m = score_max.mutable_unchecked<1>();
        auto l = lo.mutable_unchecked<2>(), z = size.mutable_unchecked<2>();
        auto f = first.mutable_unchecked<1>();
        for (std::size_t i = 0; i < n; ++i) {
            const syn::Synapse& x = d.synapses[i];
            voxels[i] = x.moments.voxels;
            s(i) = syn::from_fixed(x.score_sum) / static_cast<double>(x.moments.voxels);
            m(i) = syn::from_fixed(x.score_max);
            for (std::size_t a = 0; a < 3; ++a) {
                l(i, a) = x.lo[a];
                z(i, a) = x.hi[a] - x.lo[a] + 1;
            }
            f(i) = x.first;
        }
    }
    synapses["score"] = score;
    synapses["score_max"] = score_max;
    synapses["box_topleft"] = lo;
    synapses["box_size"] = size;
    synapses["first_voxel"] = first;
    synapses["features"] = feature_means(d.features, F, voxels);

    py::dict contacts;
    moments_columns(contacts, d.contacts, [](const syn::Contact& c) -> const syn::Moments& { return c.moments; });
    auto index = column<std::uint64_t>(d.contacts.size()), fragment = column<std::uint64_t>(d.contacts.size());
    std::vector<std::uint64_t> contact_voxels(d.contacts.size());
    {
        auto s = index.mutable_unchecked<1>(), f = fragment.mutable_unchecked<1>();
        for (std::size_t i = 0; i < d.contacts.size(); ++i) {
            s(i) = d.contacts[i].synapse;
            f(i) = d.contacts[i].fragment;
            contact_voxels[i] = d.contacts[i].moments.voxels;
        }
    }
    contacts["synapse"] = index;
    contacts["fragment"] = fragment;
    contacts["features"] = feature_means(d.contact_features, F, contact_voxels);
    py::dict out;
    out["synapses"] = synapses;
    out["contacts"] = contacts;
    out["too_small"] = d.too_small;
    out["too_large"] = d.too_large;
    return out;
}

// BlockPieces to and from bytes, so that blocks can be detected in other processes or hosts
// (workflow units) and joined later: the structs are plain integers, stored as they are.
template <class T>
py::bytes bytes_of(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    return py::bytes(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <class T>
std::vector<T> vector_of(const py::bytes& b, const char* what) {
    static_assert(std::is_trivially_copyable_v<T>);
    const std::string s = b;
    if (s.size() % sizeof(T)) throw vx::InvalidArgument(std::string("BlockPieces: truncated ") + what);
    std::vector<T> v(s.size() / sizeof(T));
    std::memcpy(v.data(), s.data(), s.size());
    return v;
}

py::tuple pieces_state(const syn::BlockPieces& b) {
    std::vector<std::int64_t> shell_index;
    std::vector<std::uint32_t> shell_piece;
    for (const auto& [index, piece] : b.shell) shell_index.push_back(index), shell_piece.push_back(piece);
    return py::make_tuple(1, b.topleft, b.num_features, bytes_of(b.pieces), bytes_of(b.features), bytes_of(b.contacts),
                          bytes_of(b.contact_features), bytes_of(shell_index), bytes_of(shell_piece));
}

syn::BlockPieces pieces_from_state(const py::tuple& t) {
    if (t.size() != 9 || t[0].cast<int>() != 1) throw vx::InvalidArgument("BlockPieces: unknown pickle format");
    syn::BlockPieces b;
    b.topleft = t[1].cast<vx::Vec3>();
    b.num_features = t[2].cast<std::size_t>();
    b.pieces = vector_of<syn::Synapse>(t[3], "pieces");
    b.features = vector_of<std::int64_t>(t[4], "features");
    b.contacts = vector_of<syn::Contact>(t[5], "contacts");
    b.contact_features = vector_of<std::int64_t>(t[6], "contact features");
    const auto index = vector_of<std::int64_t>(t[7], "shell");
    const auto piece = vector_of<std::uint32_t>(t[8], "shell");
    if (index.size() != piece.size()) throw vx::InvalidArgument("BlockPieces: truncated shell");
    for (std::size_t i = 0; i < index.size(); ++i) b.shell.emplace_back(index[i], piece[i]);
    return b;
}

}  // namespace

void export_synapses(py::module_& parent) {
    auto m = parent.def_submodule("synapses", "synapse detection (vx::synapses)");
    py::class_<syn::BlockPieces>(m, "BlockPieces", "The synapse pieces of one block (pass to Detector.add).")
        .def_property_readonly("count", [](const syn::BlockPieces& b) { return b.pieces.size(); })
        .def(py::pickle(&pieces_state, &pieces_from_state));
    m.def("block_pieces", &block_pieces, py::arg("score"), py::arg("threshold"), py::arg("fragments"),
          py::arg("features"), py::arg("topleft"), py::arg("volume_shape"), py::arg("connectivity"),
          py::arg("threads"));
    py::class_<syn::Detector>(m, "Detector")
        .def(py::init([](vx::Vec3 shape, std::size_t num_features, int connectivity) {
                 return syn::Detector(shape, num_features, vx::segmentation::connectivity_from_int(connectivity));
             }),
             py::arg("volume_shape"), py::arg("num_features"), py::arg("connectivity"))
        .def(
            "add", [](syn::Detector& d, syn::BlockPieces& b) { d.add(std::move(b)); }, py::arg("pieces"))
        .def("finish", &finish, py::arg("min_size"), py::arg("max_size"));
}
