// AffinityView: affinities of every voxel to its -x, -y and -z face neighbours. Channel c at voxel
// v is the affinity between v and v - e_c (offsets (-1, 0, 0), (0, -1, 0), (0, 0, -1)), stored as
// a [c, x, y, z] array with c fastest (numpy's Fortran order of a (3, x, y, z) array: the three
// affinities of a voxel share a cache line) or in any other layout given by the two steps.
#pragma once

#include <cstdint>

#include "voxelytics/core/vec3.hpp"

namespace vx {

template <class T>
struct AffinityView {
    const T* data = nullptr;
    Vec3 shape;                     // voxels (x, y, z)
    std::int64_t channel_step = 1;  // elements from channel c to c + 1 of one voxel
    std::int64_t voxel_step = 3;    // elements from voxel i to i + 1 (x fastest)

    T operator()(int channel, std::int64_t voxel) const { return data[channel * channel_step + voxel * voxel_step]; }
    std::int64_t size() const { return shape.prod(); }
};

}  // namespace vx
