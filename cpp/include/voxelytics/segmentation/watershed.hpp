// seeded_watershed: grows seed labels over a boundary map by priority flood (Beucher & Meyer's
// watershed as skimage.segmentation.watershed computes it): a voxel takes the label of the
// first labelled neighbour that reaches it, and labelled voxels are expanded in order of
// increasing boundary value, so labels meet on the ridges of the map.
//
// Determinism: the queue orders by (boundary value as float32, time of entry); seeds enter in x-fastest scan
// order and each expanded voxel pushes its neighbours in the order -x, +x, -y, +y, -z, +z. Equal
// values therefore flood first-in first-out. The result never depends on threads (the flood is
// one sequential pass).
//
// Cost: linear in the voxels plus the radix heap's bucket moves (at most 32 per entry, a few in
// practice), and log of the side heap for entries below the flood level (voxels reached from a
// higher neighbour: a minority on boundary maps). The rest is memory latency: consecutive pops
// are scattered over the volume, hence the label carried in each entry, the 1-bit "done" map
// and the prefetching of the next pops' neighbours.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <queue>
#include <sstream>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/view.hpp"
#include "voxelytics/segmentation/detail/radix_heap.hpp"

namespace vx::segmentation {

/// `labels` holds the seeds (nonzero) on entry and the flooded labels on return. Voxels where
/// `mask` (optional, same shape, nonzero = inside) is 0 are never labelled, and seeds there are
/// cleared. Throws InvalidArgument for a NaN in `boundary`, naming the voxel.
template <class Boundary>
void seeded_watershed(View<const Boundary> boundary, View<std::uint64_t> labels, const std::uint8_t* mask = nullptr) {
    require_same_shape(boundary, View<const std::uint64_t>(labels), "seeded_watershed: boundary and seeds");
    const Vec3 s = boundary.shape();
    const std::int64_t n = boundary.size();
    // Voxel indices and ages (each voxel enters the queue at most once) fit 32 bits: smaller
    // entries, and coordinates from 32-bit division.
    if (static_cast<std::uint64_t>(n) > 0xffffffffULL)
        throw InvalidArgument("seeded_watershed: at most 2^32 voxels per call (split the volume into blocks)");
    // The float32 value's bits as an unsigned integer in the same order, so the radix heap can
    // work on them.
    auto key = [](Boundary v) {
        const float value = static_cast<float>(v);
        std::uint32_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    };
    // The radix heap gives (value, time of entry) order by itself, but only takes values >= the
    // last one it popped. A voxel reached from a higher neighbour goes to `below` instead, a
    // binary heap on (value, age): everything in it is below everything in the radix heap, so
    // popping it first while it is non-empty keeps the global order. Entries carry their label:
    // reading it back from `labels` at pop time was the flood's main cache miss.
    struct Item {
        std::uint32_t key;
        std::uint32_t index;
        std::uint64_t label;
    };
    detail::RadixHeap<Item> queue;
    struct Below {
        std::uint64_t key;  // value key << 32 | age
        Item item;
        bool operator>(const Below& o) const { return key > o.key; }
    };
    std::priority_queue<Below, std::vector<Below>, std::greater<Below>> below;
    std::uint32_t age = 0;  // orders `below` only: the radix heap keeps push order itself
    // One bit per voxel, set once it is labelled or outside the mask: the neighbour checks hit
    // this 1/64-size copy in cache instead of missing on `labels` and `mask`.
    std::vector<std::uint64_t> done(static_cast<std::size_t>(n / 64 + 1), 0);
    auto is_done = [&](std::uint32_t i) { return (done[i / 64] >> (i % 64)) & 1; };
    auto set_done = [&](std::uint32_t i) { done[i / 64] |= std::uint64_t(1) << (i % 64); };

    for (std::int64_t i = 0; i < n; ++i) {
        if (std::isnan(static_cast<double>(boundary[i]))) {
            std::ostringstream msg;
            msg << "seeded_watershed: boundary is NaN at voxel (" << i % s.x << ", " << (i / s.x) % s.y << ", "
                << i / (s.x * s.y) << ")";
            throw InvalidArgument(msg.str());
        }
        if (mask && !mask[i]) labels[i] = 0;
        const auto i32 = static_cast<std::uint32_t>(i);
        if (labels[i] != 0) queue.push({key(boundary[i]), i32, labels[i]});
        if (labels[i] != 0 || (mask && !mask[i])) set_done(i32);
    }
    const auto sx = static_cast<std::uint32_t>(s.x), sy = static_cast<std::uint32_t>(s.y);
    const auto sz = static_cast<std::uint32_t>(s.z), sxy = sx * sy;
    const std::uint32_t n32 = static_cast<std::uint32_t>(n);
    while (!below.empty() || !queue.empty()) {
        Item item;
        if (!below.empty()) {
            item = below.top().item;
            below.pop();
        } else {
            item = queue.pop();
            // Consecutive pops lie far apart in the volume, so every expansion misses the cache
            // on its neighbours; the radix heap knows its next pops, so fetch theirs early.
            if (const Item* soon = queue.ahead(16)) {
                const std::uint32_t k = soon->index;
                for (const std::uint32_t j : {k, k - sx, k + sx, k - sxy, k + sxy}) {
                    if (j >= n32) continue;  // off the volume (k - sx wraps around)
                    __builtin_prefetch(&boundary[j]);
                    __builtin_prefetch(&labels[j], 1);
                    __builtin_prefetch(&done[j / 64]);
                }
            }
        }
        const std::uint32_t i = item.index;
        const std::uint32_t x = i % sx, yz = i / sx, y = yz % sy, z = yz / sy;
        auto visit = [&](bool inside, std::uint32_t j) {
            if (!inside || is_done(j)) return;
            set_done(j);
            labels[j] = item.label;
            const Item next{key(boundary[j]), j, item.label};
            if (next.key >= queue.last())
                queue.push(next);
            else
                below.push({(std::uint64_t(next.key) << 32) | age++, next});
        };
        visit(x > 0, i - 1);
        visit(x + 1 < sx, i + 1);
        visit(y > 0, i - sx);
        visit(y + 1 < sy, i + sx);
        visit(z > 0, i - sxy);
        visit(z + 1 < sz, i + sxy);
    }
}

}  // namespace vx::segmentation
