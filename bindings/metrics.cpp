// vx::metrics -> voxelytics._core.metrics. Label arrays of any shape and integer dtype (each of
// the two dispatched at run time); they are read in their own memory order when both share one,
// otherwise the test labels are copied once into the truth's order. Kernels run without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "detail/numpy.hpp"
#include "voxelytics/metrics/connectome.hpp"
#include "voxelytics/metrics/contingency.hpp"
#include "voxelytics/metrics/detection.hpp"
#include "voxelytics/metrics/run_length.hpp"
#include "voxelytics/metrics/segmentation_scores.hpp"

namespace py = pybind11;
using namespace vx::bindings;
namespace metrics = vx::metrics;

namespace {

std::string shape_string(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// `obj` as an array of `like`'s shape in `like`'s memory order (copied only if it is not).
py::array same_layout(const py::handle& obj, const py::array& like, const char* name) {
    py::array a = py::array::ensure(obj);
    if (!a) throw vx::InvalidArgument(std::string(name) + " must be a numpy array");
    if (a.ndim() != like.ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), like.shape()))
        throw vx::InvalidArgument(std::string(name) + " has shape " + shape_string(a) + " but the truth has " +
                                  shape_string(like));
    if (!a.dtype().attr("isnative").cast<bool>()) a = a.attr("astype")(a.dtype().attr("newbyteorder")("="));
    const bool fortran = (like.flags() & py::array::f_style) && !(like.flags() & py::array::c_style);
    const int order = fortran ? py::array::f_style : py::array::c_style;
    if (!(a.flags() & order)) a = py::array::ensure(a, order | py::array::forcecast);
    return a;
}

metrics::ContingencyTable contingency_table(const py::handle& truth_obj, const py::handle& test_obj,
                                            std::vector<std::uint64_t> ignore_truth, const py::object& mask_obj,
                                            std::size_t threads) {
    py::array truth = py::array::ensure(truth_obj);
    if (!truth) throw vx::InvalidArgument("truth must be a numpy array");
    if (!truth.dtype().attr("isnative").cast<bool>() || !(truth.flags() & (py::array::c_style | py::array::f_style)))
        truth = py::array::ensure(truth.attr("astype")(truth.dtype().attr("newbyteorder")("=")), py::array::c_style);
    const py::array test = same_layout(test_obj, truth, "test");
    py::array mask;
    metrics::Counted counted;
    counted.ignore_truth = std::move(ignore_truth);
    if (!mask_obj.is_none()) {
        mask = same_layout(mask_obj, truth, "mask");
        if (mask.dtype().kind() != 'b' && !(mask.dtype().kind() == 'u' && mask.dtype().itemsize() == 1))
            throw vx::UnsupportedType("mask must be a bool or uint8 array, got " +
                                      py::str(mask.dtype()).cast<std::string>());
        counted.mask = static_cast<const std::uint8_t*>(mask.data());
    }
    const auto n = static_cast<std::int64_t>(truth.size());
    return dispatch_array<vx::IntegerTypes>(truth, "truth", [&](auto truth_tag) {
        using A = typename decltype(truth_tag)::type;
        return dispatch_array<vx::IntegerTypes>(test, "test", [&](auto test_tag) {
            using B = typename decltype(test_tag)::type;
            const auto* a = static_cast<const A*>(truth.data());
            const auto* b = static_cast<const B*>(test.data());
            const py::gil_scoped_release nogil;
            vx::ThreadPool pool(threads);
            return metrics::contingency_table(a, b, n, counted, pool);
        });
    });
}

template <class T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
    return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

py::dict scores_dict(const metrics::SegmentationScores& s) {
    py::dict d;
    d["voi_split"] = s.voi_split;
    d["voi_merge"] = s.voi_merge;
    d["rand_split"] = s.rand_split;
    d["rand_merge"] = s.rand_merge;
    d["arand"] = s.arand;
    d["arand_precision"] = s.arand_precision;
    d["arand_recall"] = s.arand_recall;
    d["cremi_score"] = s.cremi_score;
    d["voxels"] = s.voxels;
    return d;
}

py::dict detection_dict(const metrics::DetectionScores& s) {
    py::dict d;
    d["true_positives"] = s.true_positives;
    d["false_positives"] = s.false_positives;
    d["false_negatives"] = s.false_negatives;
    d["precision"] = s.precision;
    d["recall"] = s.recall;
    d["f1"] = s.f1;
    py::array_t<std::int64_t> matches({static_cast<py::ssize_t>(s.matches.size()), py::ssize_t{2}});
    auto m = matches.mutable_unchecked<2>();
    for (std::size_t k = 0; k < s.matches.size(); ++k) {
        m(static_cast<py::ssize_t>(k), 0) = static_cast<std::int64_t>(s.matches[k].first);
        m(static_cast<py::ssize_t>(k), 1) = static_cast<std::int64_t>(s.matches[k].second);
    }
    d["matches"] = matches;
    return d;
}

std::vector<metrics::Point> points(const py::array_t<double, py::array::c_style | py::array::forcecast>& a,
                                   const char* name) {
    if (a.ndim() != 2 || a.shape(1) != 3)
        throw vx::InvalidArgument(std::string(name) + " must be shaped (n, 3): x, y, z in nm; got " + shape_string(a));
    std::vector<metrics::Point> out(static_cast<std::size_t>(a.shape(0)));
    auto r = a.unchecked<2>();
    for (py::ssize_t i = 0; i < a.shape(0); ++i) out[static_cast<std::size_t>(i)] = {r(i, 0), r(i, 1), r(i, 2)};
    return out;
}

std::vector<metrics::WeightedEdge> edges(const py::array_t<double, py::array::c_style | py::array::forcecast>& a,
                                         const char* name) {
    if (a.ndim() != 2 || a.shape(1) != 3)
        throw vx::InvalidArgument(std::string(name) + " must be shaped (n, 3): pre, post, weight; got " +
                                  shape_string(a));
    std::vector<metrics::WeightedEdge> out;
    auto r = a.unchecked<2>();
    for (py::ssize_t i = 0; i < a.shape(0); ++i)
        out.push_back({static_cast<std::uint64_t>(r(i, 0)), static_cast<std::uint64_t>(r(i, 1)), r(i, 2)});
    return out;
}

}  // namespace

void export_metrics(py::module_& parent) {
    py::module_ m = parent.def_submodule("metrics", "Evaluation metrics (see voxelytics.metrics).");

    py::class_<metrics::ContingencyTable>(m, "ContingencyTable")
        .def_property_readonly("truth", [](const metrics::ContingencyTable& t) { return to_numpy(t.truth); })
        .def_property_readonly("test", [](const metrics::ContingencyTable& t) { return to_numpy(t.test); })
        .def_property_readonly("count", [](const metrics::ContingencyTable& t) { return to_numpy(t.count); })
        .def_property_readonly("total", [](const metrics::ContingencyTable& t) { return t.total; })
        .def("scores", [](const metrics::ContingencyTable& t) { return scores_dict(metrics::segmentation_scores(t)); })
        .def("match_by_overlap", [](const metrics::ContingencyTable& t) {
            const auto matches = metrics::match_by_overlap(t);
            std::vector<std::uint64_t> segments, neurons;
            for (const auto& [s, n] : matches) {
                segments.push_back(s);
                neurons.push_back(n);
            }
            return py::make_tuple(to_numpy(segments), to_numpy(neurons));
        });
    m.def("contingency_table", &contingency_table, py::arg("truth"), py::arg("test"), py::arg("ignore_truth"),
          py::arg("mask"), py::arg("threads"));
    m.def(
        "contingency_of_pairs",
        [](const py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>& truth,
           const py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>& test,
           const py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>& count) {
            const auto n = truth.size();
            if (truth.ndim() != 1 || test.ndim() != 1 || count.ndim() != 1 || test.size() != n || count.size() != n)
                throw vx::InvalidArgument("truth, test and count must be 1D arrays of one length, got " +
                                          shape_string(truth) + ", " + shape_string(test) + " and " +
                                          shape_string(count));
            const std::uint64_t *a = truth.data(), *b = test.data(), *c = count.data();
            std::vector<vx::metrics::detail::PairCount> pairs(static_cast<std::size_t>(n));
            for (std::size_t i = 0; i < pairs.size(); ++i) pairs[i] = {a[i], b[i], c[i]};
            const py::gil_scoped_release nogil;
            return metrics::contingency_of_pairs(std::move(pairs));
        },
        py::arg("truth"), py::arg("test"), py::arg("count"));

    m.def(
        "detection_scores",
        [](const py::array_t<double, py::array::c_style | py::array::forcecast>& truth,
           const py::array_t<double, py::array::c_style | py::array::forcecast>& predicted, double max_distance) {
            return detection_dict(
                metrics::detection_scores(points(truth, "truth"), points(predicted, "predicted"), max_distance));
        },
        py::arg("truth"), py::arg("predicted"), py::arg("max_distance"));

    m.def(
        "partner_scores",
        [](const py::array_t<double, py::array::c_style | py::array::forcecast>& true_pre,
           const py::array_t<double, py::array::c_style | py::array::forcecast>& true_post,
           const py::array_t<double, py::array::c_style | py::array::forcecast>& pred_pre,
           const py::array_t<double, py::array::c_style | py::array::forcecast>& pred_post,
           const std::vector<std::pair<std::uint64_t, std::uint64_t>>& true_ids,
           const std::vector<std::pair<std::uint64_t, std::uint64_t>>& pred_ids, double max_distance) {
            auto connections = [](const std::vector<metrics::Point>& pre, const std::vector<metrics::Point>& post,
                                  const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ids, const char* what) {
                if (pre.size() != post.size() || (!ids.empty() && ids.size() != pre.size()))
                    throw vx::InvalidArgument(std::string(what) +
                                              ": pre sites, post sites and ids must have one entry per connection");
                std::vector<metrics::Partners> out(pre.size());
                for (std::size_t i = 0; i < pre.size(); ++i) {
                    out[i].pre = pre[i];
                    out[i].post = post[i];
                    if (!ids.empty()) std::tie(out[i].pre_id, out[i].post_id) = ids[i];
                }
                return out;
            };
            return detection_dict(
                metrics::partner_scores(connections(points(true_pre, "true pre sites"),
                                                    points(true_post, "true post sites"), true_ids, "truth"),
                                        connections(points(pred_pre, "predicted pre sites"),
                                                    points(pred_post, "predicted post sites"), pred_ids, "prediction"),
                                        max_distance));
        },
        py::arg("true_pre"), py::arg("true_post"), py::arg("predicted_pre"), py::arg("predicted_post"),
        py::arg("true_ids"), py::arg("predicted_ids"), py::arg("max_distance"));

    m.def(
        "connectome_scores",
        [](const py::array_t<double, py::array::c_style | py::array::forcecast>& truth,
           const py::array_t<double, py::array::c_style | py::array::forcecast>& predicted,
           const std::vector<std::pair<std::uint64_t, std::uint64_t>>& segment_to_neuron, double threshold) {
            const auto s = metrics::connectome_scores(edges(truth, "true edges"), edges(predicted, "predicted edges"),
                                                      segment_to_neuron, threshold);
            py::dict d;
            d["true_edges"] = s.true_edges;
            d["predicted_edges"] = s.predicted_edges;
            d["common_edges"] = s.common_edges;
            d["edge_precision"] = s.edge_precision;
            d["edge_recall"] = s.edge_recall;
            d["edge_f1"] = s.edge_f1;
            d["weight_correlation"] = s.weight_correlation;
            return d;
        },
        py::arg("truth"), py::arg("predicted"), py::arg("segment_to_neuron"), py::arg("weight_threshold"));

    m.def(
        "expected_run_length",
        [](const std::vector<std::uint64_t>& skeleton, const std::vector<std::uint64_t>& segment,
           const std::vector<std::pair<std::size_t, std::size_t>>& edge_list, const std::vector<double>& lengths) {
            const auto r = metrics::expected_run_length(skeleton, segment, edge_list, lengths);
            py::dict d;
            d["erl"] = r.erl;
            d["max_erl"] = r.max_erl;
            d["total_length"] = r.total_length;
            d["merging_segments"] = r.merging_segments;
            d["merged_skeletons"] = r.merged_skeletons;
            d["split_edges"] = r.split_edges;
            d["omitted_edges"] = r.omitted_edges;
            return d;
        },
        py::arg("skeleton"), py::arg("segment"), py::arg("edges"), py::arg("lengths"));
}
