// Counts the connected components of a small synthetic volume: two solid balls joined by a thin
// diagonal bridge that only 26-connectivity sees. Prints one line per connectivity.
#include <cstdint>
#include <iostream>

#include "voxelytics/segmentation/connected_components.hpp"

int main() {
    const vx::Vec3 shape{48, 32, 32};
    vx::Volume<std::uint32_t> labels = vx::Volume<std::uint32_t>::from_shape({48, 32, 32});
    labels.fill(0);
    auto ball = [&](vx::Vec3 c, std::int64_t r) {
        for (std::int64_t z = 0; z < shape.z; ++z)
            for (std::int64_t y = 0; y < shape.y; ++y)
                for (std::int64_t x = 0; x < shape.x; ++x) {
                    const vx::Vec3 d = vx::Vec3{x, y, z} - c;
                    if (d.x * d.x + d.y * d.y + d.z * d.z <= r * r) labels(x, y, z) = 7;
                }
    };
    ball({12, 16, 16}, 8);
    ball({36, 16, 16}, 8);
    for (std::int64_t i = 0; i < 5; ++i) labels(20 + 2 * i, 16, 16) = 7;  // dotted: touching at corners only
    for (std::int64_t i = 0; i < 4; ++i) labels(21 + 2 * i, 17, 17) = 7;

    vx::Volume<std::uint64_t> ids = vx::Volume<std::uint64_t>::from_shape({48, 32, 32});
    vx::ThreadPool pool(2);
    for (int connectivity : {6, 18, 26}) {
        const std::uint64_t n = vx::segmentation::connected_components<std::uint32_t>(
            vx::View<const std::uint32_t>(labels.data(), shape), vx::View<std::uint64_t>(ids),
            vx::segmentation::connectivity_from_int(connectivity), pool);
        std::cout << "connectivity " << connectivity << ": " << n << " components\n";
    }
    return 0;
}
