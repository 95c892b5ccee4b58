// vx::graph -> voxelytics._core.graph: the region adjacency graph of a fragment volume.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <utility>

#include "detail/numpy.hpp"
#include "detail/vec3_caster.hpp"
#include "voxelytics/graph/agglomeration.hpp"
#include "voxelytics/graph/region_graph.hpp"
#include "voxelytics/graph/seeded_cut.hpp"

namespace py = pybind11;
using namespace vx::bindings;

namespace {

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
    return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

vx::Box core_box(const std::optional<std::pair<vx::Vec3, vx::Vec3>>& core, const py::array& fragments) {
    return core ? vx::Box(core->first, core->second) : vx::Box({}, shape_of(fragments));
}

py::dict to_dict(vx::graph::RegionGraph&& g);

py::dict region_graph(const py::handle& fragments_obj, const py::handle& boundary_obj, std::size_t bins,
                      std::size_t threads, const std::optional<std::pair<vx::Vec3, vx::Vec3>>& core) {
    const py::array fragments = volume_argument(fragments_obj, "fragments");
    const py::array boundary = volume_argument(boundary_obj, "boundary");
    if (shape_of(fragments) != shape_of(boundary)) throw vx::InvalidArgument("fragments and boundary differ in shape");
    return to_dict(dispatch_array<vx::UnsignedTypes>(fragments, "fragments", [&](auto ftag) {
        using L = typename decltype(ftag)::type;
        return dispatch_array<vx::TypeList<float, double>>(boundary, "boundary", [&](auto btag) {
            using V = typename decltype(btag)::type;
            const py::gil_scoped_release nogil;
            vx::ThreadPool pool(threads);
            return vx::graph::region_graph(const_view<L>(fragments),
                                           vx::graph::BoundaryContacts<V>{const_view<V>(boundary)}, bins, pool,
                                           core_box(core, fragments));
        });
    }));
}

/// `affinities`: (3, x, y, z), channel c at v linking v and v - e_c.
py::dict affinity_region_graph(const py::handle& fragments_obj, const py::handle& affinities_obj, std::size_t bins,
                               std::size_t threads, const std::optional<std::pair<vx::Vec3, vx::Vec3>>& core) {
    const py::array fragments = volume_argument(fragments_obj, "fragments");
    const auto affinities = affinity_argument(affinities_obj, "affinities");
    if (affinities.view.shape != shape_of(fragments))
        throw vx::InvalidArgument("fragments and affinities differ in shape");
    return to_dict(dispatch_array<vx::UnsignedTypes>(fragments, "fragments", [&](auto ftag) {
        using L = typename decltype(ftag)::type;
        const py::gil_scoped_release nogil;
        vx::ThreadPool pool(threads);
        return vx::graph::region_graph(const_view<L>(fragments), vx::graph::AffinityContacts<float>{affinities.view},
                                       bins, pool, core_box(core, fragments));
    }));
}

py::dict to_dict(vx::graph::RegionGraph&& g) {
    const auto m = static_cast<py::ssize_t>(g.edges.size());
    py::array_t<std::uint64_t> edges({m, py::ssize_t{2}});
    auto e = edges.mutable_unchecked<2>();
    for (py::ssize_t k = 0; k < m; ++k)
        e(k, 0) = g.edges[std::size_t(k)].first, e(k, 1) = g.edges[std::size_t(k)].second;
    py::array_t<std::uint32_t> histogram({m, static_cast<py::ssize_t>(g.bins)});
    std::copy(g.histogram.begin(), g.histogram.end(), histogram.mutable_data());
    py::dict d;
    d["edges"] = edges;
    d["count"] = to_numpy(std::move(g.count));
    d["sum"] = to_numpy(std::move(g.sum));
    d["min"] = to_numpy(std::move(g.min));
    d["max"] = to_numpy(std::move(g.max));
    d["histogram"] = histogram;
    d["nodes"] = to_numpy(std::move(g.nodes));
    d["sizes"] = to_numpy(std::move(g.sizes));
    return d;
}

using U64Array = ArrayOf<std::uint64_t>;

/// An (m, 2) edge array as (u, v) pairs; `what` names the caller in the length error.
std::vector<std::pair<std::uint64_t, std::uint64_t>> edge_pairs(const U64Array& edges, std::size_t m,
                                                                const char* what) {
    if (edges.ndim() != 2 || edges.shape(1) != 2 || std::size_t(edges.shape(0)) != m)
        throw vx::InvalidArgument(std::string(what) + ": the graph's edge arrays differ in length");
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pairs(m);
    const std::uint64_t* e = edges.data();
    for (std::size_t k = 0; k < m; ++k) pairs[k] = {e[2 * k], e[2 * k + 1]};
    return pairs;
}

py::array_t<std::uint64_t> merge_small(const U64Array& edges,
                                       const py::array_t<float, py::array::c_style | py::array::forcecast>& min,
                                       const U64Array& nodes, const U64Array& sizes, std::uint64_t size_threshold,
                                       double min_strength) {
    vx::graph::RegionGraph g;
    g.edges = edge_pairs(edges, static_cast<std::size_t>(min.size()), "merge_small");
    g.min = to_vector(min), g.nodes = to_vector(nodes), g.sizes = to_vector(sizes);
    std::vector<std::uint64_t> segments;
    {
        const py::gil_scoped_release nogil;
        segments = vx::graph::merge_small(g, size_threshold, min_strength);
    }
    return to_numpy(std::move(segments));
}

/// `edges`: (m, 2) node indices; returns per node the smallest node index of its piece.
py::array_t<std::uint64_t> seeded_cut(const U64Array& edges,
                                      const py::array_t<double, py::array::c_style | py::array::forcecast>& scores,
                                      const U64Array& seeds) {
    const auto pairs = edge_pairs(edges, static_cast<std::size_t>(scores.size()), "seeded_cut");
    const auto score = to_vector(scores);
    const auto seed = to_vector(seeds);
    std::vector<std::uint64_t> pieces;
    {
        const py::gil_scoped_release nogil;
        pieces = vx::graph::seeded_cut(pairs, score, seed);
    }
    return to_numpy(std::move(pieces));
}

py::dict agglomerate(const U64Array& edges,
                     const py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>& count,
                     const py::array_t<double, py::array::c_style | py::array::forcecast>& sum,
                     const py::array_t<float, py::array::c_style | py::array::forcecast>& min,
                     const py::array_t<float, py::array::c_style | py::array::forcecast>& max,
                     const py::array_t<std::uint32_t, py::array::c_style | py::array::forcecast>& histogram,
                     const py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>& nodes,
                     const std::string& scoring, double quantile, const std::vector<double>& thresholds) {
    vx::graph::RegionGraph g;
    const auto m = static_cast<std::size_t>(count.size());
    if (std::size_t(sum.size()) != m || std::size_t(min.size()) != m || std::size_t(max.size()) != m ||
        histogram.ndim() != 2 || std::size_t(histogram.shape(0)) != m)
        throw vx::InvalidArgument("agglomerate: the graph's edge arrays differ in length");
    g.bins = static_cast<std::size_t>(histogram.shape(1));
    g.edges = edge_pairs(edges, m, "agglomerate");
    g.count = to_vector(count), g.sum = to_vector(sum), g.min = to_vector(min), g.max = to_vector(max);
    g.histogram = to_vector(histogram), g.nodes = to_vector(nodes);
    vx::graph::Score score;
    if (scoring == "mean")
        score = vx::graph::Score::mean;
    else if (scoring == "max")
        score = vx::graph::Score::max;
    else if (scoring == "min")
        score = vx::graph::Score::min;
    else if (scoring == "quantile")
        score = vx::graph::Score::quantile;
    else
        throw vx::InvalidArgument("agglomerate: unknown scoring '" + scoring + "'; use mean, max, min or quantile");
    vx::graph::Agglomeration a;
    {
        const py::gil_scoped_release nogil;
        a = vx::graph::agglomerate(g, score, quantile, thresholds);
    }
    const auto t = static_cast<py::ssize_t>(a.segments.size()), n = static_cast<py::ssize_t>(g.nodes.size());
    py::array_t<std::uint64_t> segments({t, n});
    for (py::ssize_t k = 0; k < t; ++k)
        std::copy(a.segments[std::size_t(k)].begin(), a.segments[std::size_t(k)].end(), segments.mutable_data(k, 0));
    const auto h = static_cast<py::ssize_t>(a.history.size());
    py::array_t<std::uint64_t> merged({h, py::ssize_t{2}});
    py::array_t<double> scores(h);
    for (py::ssize_t k = 0; k < h; ++k) {
        const auto& mg = a.history[std::size_t(k)];
        merged.mutable_at(k, 0) = mg.a, merged.mutable_at(k, 1) = mg.b, scores.mutable_at(k) = mg.score;
    }
    py::dict d;
    d["segments"] = segments;
    d["merges"] = merged;
    d["scores"] = scores;
    return d;
}

}  // namespace

void export_graph(py::module_& parent) {
    py::module_ m = parent.def_submodule("graph", "Region adjacency graphs (see voxelytics.graph).");
    m.def("affinity_region_graph", &affinity_region_graph, py::arg("fragments"), py::arg("affinities"), py::arg("bins"),
          py::arg("threads"), py::arg("core") = py::none());
    m.def("merge_small", &merge_small, py::arg("edges"), py::arg("min"), py::arg("nodes"), py::arg("sizes"),
          py::arg("size_threshold"), py::arg("min_strength"));
    m.def("seeded_cut", &seeded_cut, py::arg("edges"), py::arg("scores"), py::arg("seeds"));
    m.def("region_graph", &region_graph, py::arg("fragments"), py::arg("boundary"), py::arg("bins"), py::arg("threads"),
          py::arg("core") = py::none());
    m.def("agglomerate", &agglomerate, py::arg("edges"), py::arg("count"), py::arg("sum"), py::arg("min"),
          py::arg("max"), py::arg("histogram"), py::arg("nodes"), py::arg("scoring"), py::arg("quantile"),
          py::arg("thresholds"));
}
