// TorchScriptModel: a network exported from PyTorch with torch.jit.script/trace + save, loaded
// and run through LibTorch, so inference runs without a Python interpreter (C++ tools, workers).
// Needs VOXELYTICS_WITH_TORCH; the rest of the library never includes LibTorch.
#pragma once

#include <filesystem>
#include <string>

#include <torch/script.h>

#include "voxelytics/core/errors.hpp"

namespace vx::inference {

class TorchScriptModel {
public:
    /// Loads `path` onto `device` ("cpu", "cuda", "cuda:1", ...), its weights in `precision`
    /// ("float32", "float16" or "bfloat16"; inputs are converted to it, outputs back to float32).
    /// `optimize`: freeze the module and apply torch.jit.optimize_for_inference's passes (weights
    /// folded into constants, convolutions prepacked for oneDNN on CPU: ~1.4x faster there; results
    /// equal to float rounding). Throws NotFound for a missing file and CorruptData for one that
    /// LibTorch cannot load.
    explicit TorchScriptModel(const std::string& path, const std::string& device = "cpu", bool optimize = false,
                              const std::string& precision = "float32")
        : path_(path), device_(parse_device(device)), dtype_(parse_precision(precision)), optimized_(optimize) {
        if (!std::filesystem::exists(path)) throw NotFound("TorchScript model not found: " + path);
        try {
            module_ = torch::jit::load(path, device_);
        } catch (const c10::Error& e) {
            throw CorruptData("cannot load TorchScript model " + path + ": " + e.what_without_backtrace());
        }
        module_.eval();
        if (dtype_ != torch::kFloat32) module_.to(dtype_);
        if (optimize) {
            try {
                module_ = torch::jit::optimize_for_inference(module_);
            } catch (const std::exception& e) {
                throw InvalidArgument("cannot optimize TorchScript model " + path +
                                      " for inference (load it with "
                                      "optimize=False): " +
                                      e.what());
            }
        }
    }

    const std::string& path() const { return path_; }
    std::string device() const { return device_.str(); }
    std::string precision() const {
        return dtype_ == torch::kFloat16 ? "float16" : dtype_ == torch::kBFloat16 ? "bfloat16" : "float32";
    }
    bool optimized() const { return optimized_; }

    /// Runs the model on one input tensor (moved to the model's device) without autograd and
    /// returns its single tensor output on the CPU.
    torch::Tensor forward(const torch::Tensor& input) {
        const c10::InferenceMode no_grad;
        torch::jit::IValue result;
        try {
            result = module_.forward({input.to(device_, dtype_)});
        } catch (const c10::Error& e) {
            throw InvalidArgument("TorchScript model " + path_ + " failed on input of shape " + shape_string(input) +
                                  ": " + e.what_without_backtrace());
        } catch (const std::exception& e) {  // the TorchScript interpreter rethrows op errors as runtime_error
            throw InvalidArgument("TorchScript model " + path_ + " failed on input of shape " + shape_string(input) +
                                  ": " + e.what());
        }
        if (!result.isTensor()) throw InvalidArgument("TorchScript model " + path_ + " must return one tensor");
        return result.toTensor().to(torch::kCPU, torch::kFloat32);
    }

private:
    static torch::Device parse_device(const std::string& device) {
        try {
            return torch::Device(device);
        } catch (const c10::Error&) {
            throw InvalidArgument("unknown torch device '" + device + "' (expected e.g. 'cpu' or 'cuda:0')");
        }
    }
    static torch::ScalarType parse_precision(const std::string& precision) {
        if (precision == "float32") return torch::kFloat32;
        if (precision == "float16") return torch::kFloat16;
        if (precision == "bfloat16") return torch::kBFloat16;
        throw InvalidArgument("unknown precision '" + precision + "' (expected float32, float16 or bfloat16)");
    }
    static std::string shape_string(const torch::Tensor& t) {
        std::string s = "(";
        for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
        return s + ")";
    }

    std::string path_;
    torch::Device device_;
    torch::ScalarType dtype_;
    bool optimized_;
    torch::jit::script::Module module_;
};

}  // namespace vx::inference
