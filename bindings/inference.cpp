// vx::inference -> voxelytics._core.inference: run TorchScript models through LibTorch.
// Arrays cross as float32 numpy arrays (C order, any rank); torch tensors never cross the
// boundary, so the extension needs no libtorch_python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "detail/vec3_caster.hpp"
#include "voxelytics/inference/output_channels.hpp"
#include "voxelytics/inference/predictor.hpp"
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

// Sets LibTorch's intra-op thread count for a scope (it is process-wide) and restores it after.
class TorchThreads {
public:
    explicit TorchThreads(std::size_t n) : before_(at::get_num_threads()) { at::set_num_threads(static_cast<int>(n)); }
    ~TorchThreads() { at::set_num_threads(before_); }
    TorchThreads(const TorchThreads&) = delete;
    TorchThreads& operator=(const TorchThreads&) = delete;

private:
    int before_;
};

// prediction: (C, x, y, z) float32, channels fastest; returns (len(channels), x, y, z) of `dtype`
// ("float32" or "uint8": probabilities quantised), channels fastest.
py::array output_channels(const py::array_t<float, py::array::f_style>& prediction,
                          const std::vector<std::int64_t>& channels, const std::string& dtype, std::size_t threads) {
    if (prediction.ndim() != 4) throw vx::InvalidArgument("output_channels: the prediction must be (C, x, y, z)");
    const std::int64_t voxels = prediction.shape(1) * prediction.shape(2) * prediction.shape(3);
    const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(channels.size()), prediction.shape(1),
                                         prediction.shape(2), prediction.shape(3)};
    auto run = [&](auto tag) {
        using Out = decltype(tag);
        py::array_t<Out, py::array::f_style> out(shape);
        Out* o = out.mutable_data();
        const float* in = prediction.data();
        const py::gil_scoped_release nogil;
        vx::ThreadPool pool(threads);
        vx::inference::output_channels<Out>(in, prediction.shape(0), voxels, channels, o, pool);
        return py::array(out);
    };
    if (dtype == "float32") return run(float{});
    if (dtype == "uint8") return run(std::uint8_t{});
    throw vx::InvalidArgument("output_channels: dtype must be float32 or uint8, got '" + dtype + "'");
}

// input: (c, x, y, z) uint8 or float32, channels fastest (Fortran order); returns (C, x, y, z)
// float32 of out_shape, channels fastest.
py::array predict(vx::inference::TorchScriptModel& model, const py::array& input, vx::Vec3 input_patch,
                  vx::Vec3 output_patch, vx::Vec3 alignment, std::int64_t out_channels, float mean, float std,
                  vx::Vec3 out_offset, vx::Vec3 out_shape, std::int64_t batch, std::size_t threads) {
    if (input.ndim() != 4) throw vx::InvalidArgument("predict: input must be (c, x, y, z)");
    if (!(input.flags() & py::array::f_style))
        throw vx::InvalidArgument("predict: input must be Fortran-ordered (channels, then x, fastest)");
    vx::inference::PatchSpec spec{input_patch, output_patch, input.shape(0), out_channels, mean, std, alignment};
    const vx::Vec3 in_shape{input.shape(1), input.shape(2), input.shape(3)};
    py::array_t<float, py::array::f_style> out(
        {static_cast<py::ssize_t>(out_channels), out_shape.x, out_shape.y, out_shape.z});
    float* o = out.mutable_data();
    auto run = [&](const auto* data) {
        const py::gil_scoped_release nogil;
        const TorchThreads scope(threads);
        vx::inference::predict(model, spec, data, in_shape, out_offset, out_shape, o, batch);
    };
    if (input.dtype().is(py::dtype::of<std::uint8_t>())) {
        run(static_cast<const std::uint8_t*>(input.data()));
    } else if (input.dtype().is(py::dtype::of<float>())) {
        run(static_cast<const float*>(input.data()));
    } else {
        throw vx::UnsupportedType("predict: input must be uint8 or float32, got " +
                                  py::str(input.dtype()).cast<std::string>());
    }
    return out;
}

}  // namespace

void export_inference(py::module_& parent) {
    py::module_ m = parent.def_submodule("inference", "TorchScript models run through LibTorch.");
    py::class_<vx::inference::TorchScriptModel>(m, "TorchScriptModel")
        .def(py::init<const std::string&, const std::string&, bool, const std::string&>(), py::arg("path"),
             py::arg("device") = "cpu", py::arg("optimize") = false, py::arg("precision") = "float32")
        .def_property_readonly("path", &vx::inference::TorchScriptModel::path)
        .def_property_readonly("device", &vx::inference::TorchScriptModel::device)
        .def_property_readonly("precision", &vx::inference::TorchScriptModel::precision)
        .def_property_readonly("optimized", &vx::inference::TorchScriptModel::optimized)
        .def("forward", &forward, py::arg("input"), "float32 array in, float32 array out (C order).");
    m.def("output_channels", &output_channels, py::arg("prediction"), py::arg("channels"), py::arg("dtype"),
          py::arg("threads"));
    m.def("predict", &predict, py::arg("model"), py::arg("input"), py::arg("input_patch"), py::arg("output_patch"),
          py::arg("alignment"), py::arg("out_channels"), py::arg("mean"), py::arg("std"), py::arg("out_offset"),
          py::arg("out_shape"), py::arg("batch"), py::arg("threads"),
          "Tiled inference of a valid-convolution model (see predictor.hpp).");
    m.attr("torch_version") = TORCH_VERSION;
}
