#include <algorithm>
#include <filesystem>
#include <vector>

#include "voxelytics/inference/predictor.hpp"
#include "voxelytics/inference/torchscript.hpp"

// LibTorch's logging defines a glog-style CHECK; the tests mean Catch's.
#undef CHECK
#include "catch.hpp"

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

TEST_CASE("an optimized or bfloat16 model gives the plain model's values") {
    const auto path = (std::filesystem::temp_directory_path() / "voxelytics_test_conv.pt").string();
    torch::jit::Module m("Conv");
    m.register_parameter("weight", torch::linspace(-1.0, 1.0, 2 * 27).reshape({2, 1, 3, 3, 3}), false);
    m.register_parameter("bias", torch::tensor({0.5f, -0.25f}), false);
    m.define("def forward(self, x):\n    return torch.relu(torch.conv3d(x, self.weight, self.bias))\n");
    m.save(path);
    const torch::Tensor x = torch::rand({2, 1, 6, 7, 8});
    vx::inference::TorchScriptModel plain(path);
    vx::inference::TorchScriptModel optimized(path, "cpu", true);
    vx::inference::TorchScriptModel bf16(path, "cpu", false, "bfloat16");
    CHECK(optimized.optimized());
    CHECK(bf16.precision() == "bfloat16");
    const torch::Tensor expected = plain.forward(x);
    CHECK(torch::allclose(optimized.forward(x), expected, 1e-5, 1e-6));
    const torch::Tensor half = bf16.forward(x);
    CHECK(half.scalar_type() == torch::kFloat32);  // outputs come back as float32
    CHECK(torch::allclose(half, expected, 2e-2, 5e-2));
    REQUIRE_THROWS_AS(vx::inference::TorchScriptModel(path, "cpu", false, "float8"), vx::InvalidArgument);
    std::filesystem::remove(path);
}

TEST_CASE("tile starts are aligned, cover the axis, and reflect maps any index inside") {
    using vx::detail::reflect;
    using vx::inference::detail::tile_starts;
    CHECK(tile_starts(10, 4, 1) == std::vector<std::int64_t>{0, 4, 6});
    CHECK(tile_starts(10, 4, 4) == std::vector<std::int64_t>{0, 4, 8});  // the last reaches past 10
    CHECK(tile_starts(3, 4, 2) == std::vector<std::int64_t>{0});
    CHECK(tile_starts(12, 6, 4) == std::vector<std::int64_t>{0, 4, 8});  // steps of 6 rounded down to 4
    for (std::int64_t n : {1, 5, 64})
        for (std::int64_t patch : {1, 3, 12})
            for (std::int64_t align : {1, 2, 4}) {
                if (patch < align) continue;  // refused by PatchSpec: aligned tiles would leave gaps
                const auto starts = tile_starts(n, patch, align);
                std::int64_t covered = 0;
                for (const auto s : starts) {
                    CHECK(s % align == 0);
                    CHECK(s <= covered);
                    covered = std::max(covered, s + patch);
                }
                CHECK(covered >= n);
            }
    CHECK(reflect(-1, 5) == 0);
    CHECK(reflect(-2, 5) == 1);
    CHECK(reflect(5, 5) == 4);
    CHECK(reflect(12, 5) == 2);  // 12 -> period 10 -> 2
    CHECK(reflect(-7, 1) == 0);
}

TEST_CASE("predict tiles a valid convolution exactly, with mirrored borders and channels fastest") {
    // A 3x3x3 sum filter without padding, two output channels (sum and -sum): context 2 per axis.
    const auto path = (std::filesystem::temp_directory_path() / "voxelytics_test_box.pt").string();
    torch::jit::Module m("Box");
    m.register_parameter("weight", torch::ones({2, 1, 3, 3, 3}) * torch::tensor({1.0f, -1.0f}).reshape({2, 1, 1, 1, 1}),
                         false);
    m.define("def forward(self, x):\n    return torch.conv3d(x, self.weight)\n");
    m.save(path);
    vx::inference::TorchScriptModel model(path);
    const vx::Vec3 shape{7, 5, 4};
    std::vector<std::uint8_t> input(static_cast<std::size_t>(shape.prod()));
    for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<std::uint8_t>((i * 37) % 251);
    auto at = [&](std::int64_t x, std::int64_t y, std::int64_t z) {
        using vx::detail::reflect;
        return static_cast<float>(input[static_cast<std::size_t>(
                   reflect(x, shape.x) + shape.x * (reflect(y, shape.y) + shape.y * reflect(z, shape.z)))]) -
               1.0f;  // mean 1, std 1
    };
    for (const std::int64_t batch : {1, 4}) {
        const vx::inference::PatchSpec spec{{5, 4, 4}, {3, 2, 2}, 1, 2, 1.0f, 1.0f, {1, 1, 1}};
        std::vector<float> out(static_cast<std::size_t>(2 * shape.prod()));
        vx::inference::predict(model, spec, input.data(), shape, {0, 0, 0}, shape, out.data(), batch);
        for (std::int64_t z = 0; z < shape.z; ++z)
            for (std::int64_t y = 0; y < shape.y; ++y)
                for (std::int64_t x = 0; x < shape.x; ++x) {
                    float sum = 0;
                    for (int dz = -1; dz <= 1; ++dz)
                        for (int dy = -1; dy <= 1; ++dy)
                            for (int dx = -1; dx <= 1; ++dx) sum += at(x + dx, y + dy, z + dz);
                    const auto i = static_cast<std::size_t>(2 * (x + shape.x * (y + shape.y * z)));
                    CHECK(out[i] == Approx(sum));
                    CHECK(out[i + 1] == Approx(-sum));
                }
    }
    // A card that promises another output shape than the model gives is refused, naming both.
    const vx::inference::PatchSpec wrong{{5, 4, 4}, {1, 2, 2}, 1, 2, 1.0f, 1.0f, {1, 1, 1}};
    std::vector<float> out(static_cast<std::size_t>(2 * shape.prod()));
    REQUIRE_THROWS_WITH(vx::inference::predict(model, wrong, input.data(), shape, {0, 0, 0}, shape, out.data()),
                        Catch::Contains("its card says 2 channels of"));
    std::filesystem::remove(path);
}
