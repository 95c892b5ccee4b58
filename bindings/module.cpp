// voxelytics._core: one submodule per domain, each exported by the file of the same name.
#include <pybind11/pybind11.h>

#include "detail/errors.hpp"
#include "voxelytics/config.hpp"

namespace py = pybind11;

void export_core(py::module_&);
void export_filters(py::module_&);
void export_graph(py::module_&);
void export_io(py::module_&);
void export_metrics(py::module_&);
void export_segmentation(py::module_&);
void export_synapses(py::module_&);
void export_synthetic(py::module_&);
#ifdef VOXELYTICS_WITH_TORCH
void export_inference(py::module_&);
#endif

PYBIND11_MODULE(_core, m) {
    m.doc() = "voxelytics C++ core (use the `voxelytics` package, not this module)";
    m.attr("__version__") = VOXELYTICS_VERSION_STRING;
    vx::bindings::register_errors(m);
    export_core(m);
    export_filters(m);
    export_graph(m);
    export_io(m);
    export_metrics(m);
    export_segmentation(m);
    export_synapses(m);
    export_synthetic(m);
#ifdef VOXELYTICS_WITH_TORCH
    export_inference(m);
    m.attr("with_torch") = true;
#else
    m.attr("with_torch") = false;
#endif
}
