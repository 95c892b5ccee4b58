// seeded_watershed: grows seed labels over a boundary map by priority flood (Beucher & Meyer's
// watershed as skimage.segmentation.watershed computes it): a voxel takes the label of the
// first labelled neighbour that reaches it, and labelled voxels are expanded in order of
// increasing boundary value, so labels meet on the ridges of the map.
//
// Determinism: the queue orders by (boundary value as float32, time of entry); seeds enter in x-fastest scan
// order and each expanded voxel pushes its neighbours in the order -x, +x, -y, +y, -z, +z. Equal
// values therefore flood first-in first-out. The result never depends on threads (the flood is
// one sequential pass; it is linear in the voxels times log of the queue).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <queue>
#include <sstream>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/view.hpp"

namespace vx::segmentation {

/// `labels` holds the seeds (nonzero) on entry and the flooded labels on return. Voxels where
/// `mask` (optional, same shape, nonzero = inside) is 0 are never labelled, and seeds there are
/// cleared. Throws InvalidArgument for a NaN in `boundary`, naming the voxel.
template <class Boundary>
void seeded_watershed(View<const Boundary> boundary, View<std::uint64_t> labels, const std::uint8_t* mask = nullptr) {
    require_same_shape(boundary, View<const std::uint64_t>(labels), "seeded_watershed: boundary and seeds");
    const Vec3 s = boundary.shape();
    const std::int64_t n = boundary.size();
    // One integer key per entry, (order-preserving bits of the value, age): one comparison per
    // heap step instead of two on mixed types.
    if (static_cast<std::uint64_t>(n) > 0xffffffffULL)
        throw InvalidArgument("seeded_watershed: at most 2^32 voxels per call (split the volume into blocks)");
    struct Entry {
        std::uint64_t key;
        std::int64_t index;
        bool operator>(const Entry& o) const { return key > o.key; }
    };
    auto key = [](float value, std::uint64_t age) {
        std::uint32_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);  // IEEE order as unsigned order
        return (std::uint64_t(bits) << 32) | age;
    };
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
    std::uint64_t age = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        if (std::isnan(static_cast<double>(boundary[i]))) {
            std::ostringstream msg;
            msg << "seeded_watershed: boundary is NaN at voxel (" << i % s.x << ", " << (i / s.x) % s.y << ", "
                << i / (s.x * s.y) << ")";
            throw InvalidArgument(msg.str());
        }
        if (mask && !mask[i]) labels[i] = 0;
        if (labels[i] != 0) queue.push({key(static_cast<float>(boundary[i]), age++), i});
    }
    while (!queue.empty()) {
        const std::int64_t i = queue.top().index;
        queue.pop();
        const std::uint64_t label = labels[i];
        const std::int64_t x = i % s.x, y = (i / s.x) % s.y, z = i / (s.x * s.y);
        auto visit = [&](bool inside, std::int64_t j) {
            if (!inside || labels[j] != 0 || (mask && !mask[j])) return;
            labels[j] = label;
            queue.push({key(static_cast<float>(boundary[j]), age++), j});
        };
        visit(x > 0, i - 1);
        visit(x + 1 < s.x, i + 1);
        visit(y > 0, i - s.x);
        visit(y + 1 < s.y, i + s.x);
        visit(z > 0, i - s.x * s.y);
        visit(z + 1 < s.z, i + s.x * s.y);
    }
}

}  // namespace vx::segmentation
