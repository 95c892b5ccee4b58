// vx::inference -> voxelytics._core.inference: run TorchScript models through LibTorch.
// Arrays cross as float32 numpy arrays (C order, any rank); torch tensors never cross the
// boundary, so the extension needs no libtorch_python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include <torch/version.h>

#include "voxelytics/inference/torchscript.hpp"

namespace py = pybind11;

namespace {

py::array_t<float> forward(vx::inference::TorchScriptModel& model,
                           const py::array_t<float, py::array::c_style | py::array::forcecast>& input) {
    std::vector<std::int64_t> shape(input.shape(), input.shape() + input.ndim());
    torch::Tensor result;
    {
        const py::gil_scoped_release nogil;
        // from_blob borrows the numpy buffer; the model never writes its input.
        const torch::Tensor x = torch::from_blob(const_cast<float*>(input.data()), shape, torch::kFloat32);
        result = model.forward(x).to(torch::kFloat32).contiguous();
    }
    std::vector<py::ssize_t> out_shape(result.sizes().begin(), result.sizes().end());
    py::array_t<float> out(out_shape);
    std::copy_n(result.data_ptr<float>(), result.numel(), out.mutable_data());
    return out;
}

}  // namespace

void export_inference(py::module_& parent) {
    py::module_ m = parent.def_submodule("inference", "TorchScript models run through LibTorch.");
    py::class_<vx::inference::TorchScriptModel>(m, "TorchScriptModel")
        .def(py::init<const std::string&, const std::string&>(), py::arg("path"), py::arg("device") = "cpu")
        .def_property_readonly("path", &vx::inference::TorchScriptModel::path)
        .def_property_readonly("device", &vx::inference::TorchScriptModel::device)
        .def("forward", &forward, py::arg("input"), "float32 array in, float32 array out (C order).");
    m.attr("torch_version") = TORCH_VERSION;
}
