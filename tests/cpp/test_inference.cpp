#include <filesystem>

#include "catch.hpp"
#include "voxelytics/inference/torchscript.hpp"

// Builds a tiny scripted module in C++ (no Python needed), saves it, and runs it through
// TorchScriptModel as a user's exported network would be.
TEST_CASE("TorchScriptModel loads a saved module and runs it") {
    const auto path = (std::filesystem::temp_directory_path() / "voxelytics_test_affine.pt").string();
    torch::jit::Module m("Affine");
    m.register_parameter("weight", torch::tensor({2.0f}), false);
    m.define("def forward(self, x):\n    return x * self.weight + 1.0\n");
    m.save(path);

    vx::inference::TorchScriptModel model(path);
    CHECK(model.device() == "cpu");
    const torch::Tensor x = torch::arange(6, torch::kFloat32).reshape({1, 1, 6});
    const torch::Tensor y = model.forward(x);
    REQUIRE(y.sizes() == x.sizes());
    for (int i = 0; i < 6; ++i) CHECK(y[0][0][i].item<float>() == 2.0f * static_cast<float>(i) + 1.0f);
    std::filesystem::remove(path);

    REQUIRE_THROWS_AS(vx::inference::TorchScriptModel("/nonexistent/model.pt"), vx::NotFound);
    REQUIRE_THROWS_AS(vx::inference::TorchScriptModel(path, "warp-drive"), vx::InvalidArgument);  // bad device
}
