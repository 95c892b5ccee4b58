// Index reflection at volume borders, shared by the kernels that read beyond a volume's edge.
#pragma once

#include <cstdint>

namespace vx::detail {

/// Index i (possibly outside [0, n)) reflected into [0, n), the edge voxel repeated (scipy's
/// "reflect", numpy's "symmetric": ..., 1, 0 | 0, 1, ..., n-1 | n-1, n-2, ...), period 2n.
inline std::int64_t reflect(std::int64_t i, std::int64_t n) {
    const std::int64_t period = 2 * n;
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

}  // namespace vx::detail
