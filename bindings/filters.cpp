// vx::filters -> voxelytics._core.filters.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <vector>

#include "detail/numpy.hpp"
#include "voxelytics/filters/gaussian.hpp"

namespace py = pybind11;
using namespace vx::bindings;

namespace {

py::array gaussian_filter(const py::handle& volume_obj, std::array<double, 3> sigma, double truncate,
                          std::size_t threads, const py::object& out_obj) {
    const py::array volume = float32_volume_argument(volume_obj, "volume");
    const auto out = output_volume<float>(out_obj, shape_of(volume), volume);
    const py::gil_scoped_release nogil;
    vx::ThreadPool pool(threads);
    std::vector<float> scratch;
    vx::filters::gaussian_filter(const_view<float>(volume), out.view, sigma, truncate, pool, scratch);
    return out.array;
}

}  // namespace

void export_filters(py::module_& parent) {
    auto m = parent.def_submodule("filters", "vx::filters");
    m.def("gaussian_filter", &gaussian_filter, py::arg("volume"), py::arg("sigma"), py::arg("truncate"),
          py::arg("threads"), py::arg("out") = py::none(),
          "Separable Gaussian smoothing of a float32 [x, y, z] volume (scipy's conventions, mode reflect).");
}
