// Connected components of a 3D label volume.
//
// Every nonzero label value is its own foreground; two voxels are connected if they have the
// same value and are neighbours under 6 (faces), 18 (+ edges) or 26 (+ corners) connectivity. In
// binary mode all nonzero voxels are one foreground. Output ids are 1..N in the order in which
// components first appear in x-fastest scan order (0 stays background), so the result is the
// same for every thread count.
//
// How: each x-row is cut into runs of equal value; runs that touch a run of the same value in one
// of the (up to four) neighbour rows scanned before it are merged in a union-find whose roots
// are the smallest run index. Work is proportional to voxels for the two memory passes and to
// runs for the merging, which is what makes it fast on segmentations. Rows are split into
// contiguous ranges, one per thread; merges that cross ranges are done after the parallel part.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"

namespace vx::segmentation {

enum class Connectivity { faces = 6, edges = 18, vertices = 26 };

/// 6, 18 or 26 -> Connectivity; InvalidArgument otherwise.
inline Connectivity connectivity_from_int(int c) {
    if (c == 6 || c == 18 || c == 26) return static_cast<Connectivity>(c);
    throw InvalidArgument("connectivity must be 6, 18 or 26, got " + std::to_string(c));
}

/// Whether all nonzero voxels form one foreground (binary) or each label value its own.
enum class Foreground { per_label, binary };

namespace detail {

using RunIndex = std::uint64_t;

// Runs of equal nonzero value along x, row by row (row = y + Y*z); row r owns the runs
// [row_start[r], row_start[r+1]).
template <class Label>
struct Runs {
    std::vector<std::int32_t> begin, end;  // [begin, end) in x
    std::vector<Label> value;              // 1 in binary mode
    std::vector<RunIndex> row_start;
};

template <class Label>
void append_row_runs(const Label* row, std::int64_t nx, Foreground fg, Runs<Label>& runs) {
    std::int64_t x = 0;
    while (x < nx) {
        const Label v = row[x];
        if (v == 0) {
            ++x;
            continue;
        }
        const std::int64_t start = x++;
        if (fg == Foreground::binary) {
            while (x < nx && row[x] != 0) ++x;
        } else {
            while (x < nx && row[x] == v) ++x;
        }
        runs.begin.push_back(static_cast<std::int32_t>(start));
        runs.end.push_back(static_cast<std::int32_t>(x));
        runs.value.push_back(fg == Foreground::binary ? Label{1} : v);
    }
}

template <class Label>
Runs<Label> find_runs(View<const Label> labels, Foreground fg, ThreadPool& pool,
                      const std::vector<std::int64_t>& range_start) {
    const Vec3 s = labels.shape();
    const std::int64_t num_ranges = static_cast<std::int64_t>(range_start.size()) - 1;
    std::vector<Runs<Label>> parts(static_cast<std::size_t>(num_ranges));
    parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
        Runs<Label>& part = parts[static_cast<std::size_t>(k)];
        for (std::int64_t r = range_start[k]; r < range_start[k + 1]; ++r) {
            part.row_start.push_back(part.begin.size());
            append_row_runs(labels.data() + r * s.x, s.x, fg, part);
        }
    });
    // Concatenate the parts; run indices become global.
    Runs<Label> runs;
    std::vector<RunIndex> run_offset(parts.size() + 1, 0);
    for (std::size_t k = 0; k < parts.size(); ++k) run_offset[k + 1] = run_offset[k] + parts[k].begin.size();
    const RunIndex total = run_offset.back();
    runs.begin.resize(total);
    runs.end.resize(total);
    runs.value.resize(total);
    runs.row_start.resize(static_cast<std::size_t>(s.y * s.z) + 1);
    parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
        const auto& part = parts[static_cast<std::size_t>(k)];
        const RunIndex off = run_offset[static_cast<std::size_t>(k)];
        std::copy(part.begin.begin(), part.begin.end(), runs.begin.begin() + static_cast<std::ptrdiff_t>(off));
        std::copy(part.end.begin(), part.end.end(), runs.end.begin() + static_cast<std::ptrdiff_t>(off));
        std::copy(part.value.begin(), part.value.end(), runs.value.begin() + static_cast<std::ptrdiff_t>(off));
        for (std::size_t i = 0; i < part.row_start.size(); ++i)
            runs.row_start[static_cast<std::size_t>(range_start[k]) + i] = part.row_start[i] + off;
    });
    runs.row_start.back() = total;
    return runs;
}

inline RunIndex find_root(std::vector<RunIndex>& parent, RunIndex a) {
    while (parent[a] != a) {
        parent[a] = parent[parent[a]];
        a = parent[a];
    }
    return a;
}

// Read-only find, safe while other threads read the same parents.
inline RunIndex find_root_const(const std::vector<RunIndex>& parent, RunIndex a) {
    while (parent[a] != a) a = parent[a];
    return a;
}

inline void merge(std::vector<RunIndex>& parent, RunIndex a, RunIndex b) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a < b) {
        parent[b] = a;
    } else if (b < a) {
        parent[a] = b;
    }
}

// Merges the runs of row `r` with those of row `nr` that have the same value and whose x
// ranges overlap once widened by `tolerance` (1 lets diagonal neighbours touch).
template <class Label>
void merge_rows(const Runs<Label>& runs, std::vector<RunIndex>& parent, std::int64_t r, std::int64_t nr,
                std::int32_t tolerance) {
    RunIndex j = runs.row_start[static_cast<std::size_t>(nr)];
    const RunIndex j_end = runs.row_start[static_cast<std::size_t>(nr) + 1];
    const RunIndex i_end = runs.row_start[static_cast<std::size_t>(r) + 1];
    for (RunIndex i = runs.row_start[static_cast<std::size_t>(r)]; i < i_end && j < j_end; ++i) {
        const std::int32_t lo = runs.begin[i] - tolerance;
        const std::int32_t hi = runs.end[i] + tolerance;
        while (j < j_end && runs.end[j] <= lo) ++j;
        for (RunIndex k = j; k < j_end && runs.begin[k] < hi; ++k)
            if (runs.value[k] == runs.value[i]) merge(parent, i, k);
    }
}

// Merges row r with each neighbour row scanned before it whose index lies in [lo, hi): step 1
// of connected_components passes its own range, step 2 the rows of the ranges before.
template <class Label>
void merge_with_previous_rows(const Runs<Label>& runs, std::vector<RunIndex>& parent, Vec3 shape, std::int64_t r,
                              std::int64_t lo, std::int64_t hi, Connectivity conn) {
    const std::int64_t y = r % shape.y;
    const bool has_z = r >= shape.y;
    auto merge_if_allowed = [&](std::int64_t nr, std::int32_t tolerance) {
        if (nr >= lo && nr < hi) merge_rows(runs, parent, r, nr, tolerance);
    };
    // Face neighbours (same x) touch for every connectivity; with 18 and 26 their x-diagonals touch too.
    const std::int32_t face_tol = conn == Connectivity::faces ? 0 : 1;
    if (y > 0) merge_if_allowed(r - 1, face_tol);
    if (has_z) merge_if_allowed(r - shape.y, face_tol);
    if (conn == Connectivity::faces || !has_z) return;
    // Rows diagonal in (y, z): edge neighbours for 18 (same x), corner neighbours too for 26.
    const std::int32_t diag_tol = conn == Connectivity::vertices ? 1 : 0;
    if (y > 0) merge_if_allowed(r - shape.y - 1, diag_tol);
    if (y + 1 < shape.y) merge_if_allowed(r - shape.y + 1, diag_tol);
}

}  // namespace detail

/// Labels the connected components of `labels` into `out` (same shape) and returns their number.
template <class Label>
std::uint64_t connected_components(View<const Label> labels, View<std::uint64_t> out, Connectivity connectivity,
                                   ThreadPool& pool, Foreground foreground = Foreground::per_label) {
    using detail::RunIndex;
    require_same_shape(labels, View<const std::uint64_t>(out), "connected_components(labels, out)");
    const Vec3 shape = labels.shape();
    if (shape.x >= std::numeric_limits<std::int32_t>::max())
        throw InvalidArgument("connected_components: x extent too large (" + std::to_string(shape.x) + ")");
    const std::int64_t num_rows = shape.y * shape.z;
    if (labels.size() == 0) return 0;

    // Contiguous row ranges, one per thread.
    const std::int64_t num_ranges = std::min<std::int64_t>(static_cast<std::int64_t>(pool.size()), num_rows);
    std::vector<std::int64_t> range_start(static_cast<std::size_t>(num_ranges) + 1);
    for (std::int64_t k = 0; k <= num_ranges; ++k) range_start[static_cast<std::size_t>(k)] = num_rows * k / num_ranges;

    const detail::Runs<Label> runs = detail::find_runs(labels, foreground, pool, range_start);
    const RunIndex num_runs = runs.begin.size();
    std::vector<RunIndex> parent(num_runs);

    // 1. Merge within each row range, in parallel: every union touches runs of one range only.
    parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
        const RunIndex lo = runs.row_start[static_cast<std::size_t>(range_start[k])];
        const RunIndex hi = runs.row_start[static_cast<std::size_t>(range_start[k + 1])];
        for (RunIndex i = lo; i < hi; ++i) parent[i] = i;
        for (std::int64_t r = range_start[k]; r < range_start[k + 1]; ++r)
            detail::merge_with_previous_rows(runs, parent, shape, r, range_start[k], r, connectivity);
    });
    // 2. Merge across range borders: only the first y+1 rows of a range reach back before it.
    for (std::int64_t k = 1; k < num_ranges; ++k) {
        const std::int64_t first = range_start[static_cast<std::size_t>(k)];
        for (std::int64_t r = first; r < std::min(first + shape.y + 1, num_rows); ++r)
            detail::merge_with_previous_rows(runs, parent, shape, r, 0, first, connectivity);
    }

    // 3. Number the roots (smallest run of each component) in run order: count per range, then
    //    offset. Run ranges follow the row ranges, so this is balanced like step 1.
    std::vector<RunIndex> label(num_runs);
    std::vector<std::uint64_t> roots_before(static_cast<std::size_t>(num_ranges) + 1, 0);
    auto run_range = [&](std::int64_t k) {
        return std::make_pair(runs.row_start[static_cast<std::size_t>(range_start[k])],
                              runs.row_start[static_cast<std::size_t>(range_start[k + 1])]);
    };
    parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
        const auto [lo, hi] = run_range(k);
        std::uint64_t n = 0;
        for (RunIndex i = lo; i < hi; ++i) n += parent[i] == i;
        roots_before[static_cast<std::size_t>(k) + 1] = n;
    });
    for (std::size_t k = 1; k < roots_before.size(); ++k) roots_before[k] += roots_before[k - 1];
    parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
        const auto [lo, hi] = run_range(k);
        std::uint64_t next = roots_before[static_cast<std::size_t>(k)];
        for (RunIndex i = lo; i < hi; ++i)
            if (parent[i] == i) label[i] = ++next;
    });

    // 4. Write the output row by row; a run's id is its root's.
    parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
        for (std::int64_t r = range_start[k]; r < range_start[k + 1]; ++r) {
            std::uint64_t* row = out.data() + r * shape.x;
            std::int32_t x = 0;
            for (RunIndex i = runs.row_start[static_cast<std::size_t>(r)]; i < runs.row_start[static_cast<std::size_t>(r) + 1]; ++i) {
                std::fill(row + x, row + runs.begin[i], std::uint64_t{0});
                const std::uint64_t id = label[detail::find_root_const(parent, i)];
                std::fill(row + runs.begin[i], row + runs.end[i], id);
                x = runs.end[i];
            }
            std::fill(row + x, row + shape.x, std::uint64_t{0});
        }
    });
    return roots_before.back();
}

}  // namespace vx::segmentation
