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
#include <array>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "voxelytics/core/detail/huge_page_allocator.hpp"
#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"
#include "voxelytics/graph/union_find.hpp"

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

// 32-bit run indices halve the union-find's memory traffic; 2^32 runs would need a volume of
// tens of GB, far beyond the blocks voxelytics processes.
using RunIndex = std::uint32_t;
using Parents = vx::detail::ScratchVector<RunIndex>;

// A run of equal nonzero value along x: voxels [begin, end) of one row (row = y + Y*z).
template <class Label>
struct Run {
    std::int32_t begin, end;
    Label value;  // 1 in binary mode
};

// The runs of one row: `count` runs from `data`, whose global indices start at `first`.
template <class Label>
struct RowRuns {
    const Run<Label>* data;
    RunIndex first, count;
};

// All runs, extracted in parallel: each row range keeps its own array (no concatenation copy),
// while run indices are global, numbered row by row in scan order.
template <class Label>
class RunTable {
public:
    RunTable(View<const Label> labels, Foreground fg, ThreadPool& pool, const std::vector<std::int64_t>& range_start)
        : parts_(range_start.size() - 1),
          row_first_(static_cast<std::size_t>(labels.shape().y * labels.shape().z) + 1),
          row_data_(row_first_.size() - 1) {
        const std::int64_t nx = labels.shape().x;
        const auto num_ranges = static_cast<std::int64_t>(parts_.size());
        // Pass 1: runs of each range, with row starts local to the range.
        parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
            auto& part = parts_[static_cast<std::size_t>(k)];
            // Generous: untouched reserved pages cost nothing, while regrowth copies every run.
            part.reserve(
                static_cast<std::size_t>((range_start[k + 1] - range_start[k]) * std::min<std::int64_t>(nx, 32)));
            RowScratch scratch(nx);
            for (std::int64_t r = range_start[k]; r < range_start[k + 1]; ++r) {
                row_first_[static_cast<std::size_t>(r)] = static_cast<RunIndex>(part.size());
                append_row(labels.data() + r * nx, static_cast<std::int32_t>(nx), fg, scratch, part);
            }
        });
        std::vector<std::uint64_t> offset(parts_.size() + 1, 0);
        for (std::size_t k = 0; k < parts_.size(); ++k) offset[k + 1] = offset[k] + parts_[k].size();
        if (offset.back() >= std::numeric_limits<RunIndex>::max())
            throw InvalidArgument("connected_components: volume too large for one call (" +
                                  std::to_string(offset.back()) + " runs); process it in blocks");
        // Pass 2: make row starts global and remember where each row's runs live.
        parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
            const auto& part = parts_[static_cast<std::size_t>(k)];
            for (std::int64_t r = range_start[k]; r < range_start[k + 1]; ++r) {
                row_data_[static_cast<std::size_t>(r)] = part.data() + row_first_[static_cast<std::size_t>(r)];
                row_first_[static_cast<std::size_t>(r)] += static_cast<RunIndex>(offset[static_cast<std::size_t>(k)]);
            }
        });
        row_first_.back() = static_cast<RunIndex>(offset.back());
    }

    RunIndex size() const { return row_first_.back(); }
    /// Global index of the first run of row r (r may be the number of rows: then size()).
    RunIndex first(std::int64_t r) const { return row_first_[static_cast<std::size_t>(r)]; }
    RowRuns<Label> row(std::int64_t r) const {
        const auto i = static_cast<std::size_t>(r);
        return {row_data_[i], row_first_[i], row_first_[i + 1] - row_first_[i]};
    }

private:
    // Per-thread buffers for one row: its boundary bits and its runs before they are appended.
    struct RowScratch {
        explicit RowScratch(std::int64_t nx)
            : boundaries(static_cast<std::size_t>((nx + 63) / 64)), runs(static_cast<std::size_t>(nx)) {}
        std::vector<std::uint64_t> boundaries;
        std::vector<Run<Label>> runs;
    };

    // Appends the runs of one row. Branches that depend on the data cost most here (one
    // misprediction per run end in a voxel-by-voxel scan), so the scan is branch-free: first a bit
    // per voxel, set where a new segment starts, then one step per segment, which is emitted
    // unconditionally and kept only if it is foreground.
    static void append_row(const Label* row, std::int32_t nx, Foreground fg, RowScratch& scratch,
                           vx::detail::ScratchVector<Run<Label>>& runs) {
        std::uint64_t* bits = scratch.boundaries.data();
        if (fg == Foreground::binary) {
            segment_starts<true>(row, nx, bits);
        } else {
            segment_starts<false>(row, nx, bits);
        }
        Run<Label>* out = scratch.runs.data();
        std::int32_t n = 0, begin = 0;
        auto end_segment = [&](std::int32_t end) {
            const Label v = row[begin];
            out[n] = {begin, end, fg == Foreground::binary ? Label{1} : v};
            n += v != 0;
            begin = end;
        };
        bits[0] &= ~std::uint64_t{1};  // x = 0 starts the first segment
        for (std::int32_t w = 0; w < (nx + 63) / 64; ++w)
            for (std::uint64_t m = bits[w]; m != 0; m &= m - 1) end_segment(w * 64 + __builtin_ctzll(m));
        end_segment(nx);
        runs.insert(runs.end(), out, out + n);
    }

    // Bit x of `bits` (64 voxels a word) tells whether a segment starts at x: x = 0, or voxel x
    // differs from voxel x-1 (binary: one is zero and the other not). 16 bytes of voxels are
    // compared at a time where SSE2 is available (every x86-64 CPU), one voxel at a time else.
    template <bool binary>
    static void segment_starts(const Label* row, std::int32_t nx, std::uint64_t* bits) {
        auto differs = [](Label a, Label b) { return binary ? (a != 0) != (b != 0) : a != b; };
        for (std::int32_t base = 0; base < nx; base += 64) {
            const std::int32_t n = std::min<std::int32_t>(64, nx - base);
            std::uint64_t m = base == 0 ? 1 : static_cast<std::uint64_t>(differs(row[base], row[base - 1]));
            std::int32_t i = 1;
#if defined(__SSE2__)
            constexpr std::int32_t lanes = 16 / static_cast<std::int32_t>(sizeof(Label));
            for (; i + lanes <= n; i += lanes) {
                const Label* at = row + base + i;
                const std::uint64_t d = binary ? nonzero_mask(at) ^ nonzero_mask(at - 1) : differ_mask(at, at - 1);
                m |= d << i;
            }
#endif
            for (; i < n; ++i) m |= static_cast<std::uint64_t>(differs(row[base + i], row[base + i - 1])) << i;
            bits[base / 64] = m;
        }
    }

#if defined(__SSE2__)
    // One bit per voxel of the 16 bytes at `a`, set where a voxel differs from the one at `b`.
    static std::uint64_t differ_mask(const Label* a, const Label* b) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
        const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
        return ~equal_bits(x, y) & lane_mask();
    }
    // ... set where a voxel is not zero.
    static std::uint64_t nonzero_mask(const Label* a) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
        return ~equal_bits(x, _mm_setzero_si128()) & lane_mask();
    }
    static constexpr std::uint64_t lane_mask() { return (std::uint64_t{1} << (16 / sizeof(Label))) - 1; }
    // Bit k set where lane k (a Label) of x equals that of y.
    static std::uint64_t equal_bits(__m128i x, __m128i y) {
        if constexpr (sizeof(Label) == 1) {
            return static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, y)));
        } else if constexpr (sizeof(Label) == 2) {
            const __m128i eq = _mm_cmpeq_epi16(x, y);  // lanes of 0 or -1: packing keeps them
            return static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128()))) & 0xFFu;
        } else if constexpr (sizeof(Label) == 4) {
            return static_cast<std::uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(x, y))));
        } else {
            const __m128i eq = _mm_cmpeq_epi32(x, y);  // a 64-bit lane is equal if both halves are
            const __m128i both = _mm_and_si128(eq, _mm_shuffle_epi32(eq, _MM_SHUFFLE(2, 3, 0, 1)));
            return static_cast<std::uint32_t>(_mm_movemask_pd(_mm_castsi128_pd(both)));
        }
    }
#endif

    std::vector<vx::detail::ScratchVector<Run<Label>>> parts_;
    std::vector<RunIndex> row_first_;
    std::vector<const Run<Label>*> row_data_;
};

// An earlier row that runs of the current row may touch: x ranges overlap once widened by
// `tolerance` (1 lets diagonal neighbours touch). `next` is a cursor: runs before it end too far
// left for the current run and for every later one.
template <class Label>
struct NeighbourRow {
    RowRuns<Label> runs;
    std::int32_t tolerance;
    RunIndex next = 0;
};

// Merges run `i` of the current row with the runs of the same value in `row` that it touches;
// returns whether one of them covers its whole x range.
template <class Label>
[[gnu::always_inline]] inline bool merge_run(const Run<Label>& run, RunIndex i, NeighbourRow<Label>& row,
                                             Parents& parent) {
    const RowRuns<Label>& prev = row.runs;
    RunIndex j = row.next;
    while (j < prev.count && prev.data[j].end <= run.begin - row.tolerance) ++j;
    row.next = j;
    bool covered = false;
    for (; j < prev.count && prev.data[j].begin < run.end + row.tolerance; ++j) {
        const Run<Label>& other = prev.data[j];
        if (other.value != run.value) continue;
        covered |= other.begin <= run.begin && other.end >= run.end;
        const RunIndex k = prev.first + j;
        // The current row is being merged now, so a run of it that is still its own parent has
        // not been merged yet (or only roots later runs): its set joins k's (k < i, so the root
        // stays the smallest run).
        if (parent[i] == i) {
            parent[i] = graph::find_root(parent, k);
        } else if (parent[i] != parent[k]) {  // equal parents: already one set, skip the finds
            graph::merge_sets(parent, i, k);
        }
    }
    return covered;
}

// Merges row r with each neighbour row scanned before it whose index lies in [lo, hi): step 1
// of connected_components passes its own range, step 2 the rows of the ranges before.
//
// With 26-connectivity, most merges are implied by earlier ones and skipped. The neighbour rows
// are, as (dy, dz): A (0, -1), B (-1, 0), C (-1, -1), D (+1, -1). A touches each of B, C and D
// (their rows are neighbours of A's with the same x tolerance of 1), and B touches C. If a run q
// of the same value in A covers run i's x range, every run that touches i in B, C or D touches q
// as well and was joined to q when its own row (or A's) was merged -- so i only needs q. Likewise
// a covering run in B makes C redundant. On real segmentations about half the runs are covered
// from A and another quarter from B, which roughly halves the rows scanned.
template <class Label>
void merge_with_previous_rows(const RunTable<Label>& runs, Parents& parent, Vec3 shape, std::int64_t r, std::int64_t lo,
                              std::int64_t hi, Connectivity conn) {
    const RowRuns<Label> cur = runs.row(r);
    if (cur.count == 0) return;
    const std::int64_t y = r % shape.y;
    const bool has_z = r >= shape.y;
    // Face neighbours (same x) touch for every connectivity; with 18 and 26 their x-diagonals
    // touch too. Rows diagonal in (y, z): edge neighbours for 18 (same x), corners too for 26.
    const std::int32_t face_tol = conn == Connectivity::faces ? 0 : 1;
    const std::int32_t diag_tol = conn == Connectivity::vertices ? 1 : 0;
    const bool diagonals = conn != Connectivity::faces;
    // Rows in the order A, B, C, D (absent ones are empty).
    std::array<NeighbourRow<Label>, 4> rows{};
    auto add = [&](std::size_t slot, bool exists, std::int64_t nr, std::int32_t tolerance) {
        if (exists && nr >= lo && nr < hi) rows[slot] = {runs.row(nr), tolerance};
    };
    add(0, has_z, r - shape.y, face_tol);
    add(1, y > 0, r - 1, face_tol);
    add(2, diagonals && has_z && y > 0, r - shape.y - 1, diag_tol);
    add(3, diagonals && has_z && y + 1 < shape.y, r - shape.y + 1, diag_tol);
    const bool skip_implied = conn == Connectivity::vertices;
    for (RunIndex a = 0; a < cur.count; ++a) {
        const Run<Label>& run = cur.data[a];
        const RunIndex i = cur.first + a;
        if (merge_run(run, i, rows[0], parent) && skip_implied) continue;
        if (!(merge_run(run, i, rows[1], parent) && skip_implied)) merge_run(run, i, rows[2], parent);
        merge_run(run, i, rows[3], parent);
    }
}

// Outputs of at least this size are written with streaming stores, which skip reading each
// cache line before it is overwritten (a quarter faster on a volume far beyond the caches) but
// leave nothing in cache for a consumer of a small output.
constexpr std::uint64_t stream_threshold_bytes = std::uint64_t{32} << 20;

// Copies n values from `from` to `to`, with streaming stores if `stream` (and SSE2).
template <class T>
void copy_row(const T* from, T* to, std::int64_t n, bool stream) {
#if defined(__SSE2__)
    if (stream) {
        auto* bytes = reinterpret_cast<char*>(to);
        auto* end = reinterpret_cast<char*>(to + n);
        const auto* src = reinterpret_cast<const char*>(from);
        char* aligned = bytes + (-reinterpret_cast<std::uintptr_t>(bytes) & 15);
        if (aligned + 16 <= end) {
            std::copy(src, src + (aligned - bytes), bytes);
            src += aligned - bytes;
            for (; aligned + 16 <= end; aligned += 16, src += 16)
                _mm_stream_si128(reinterpret_cast<__m128i*>(aligned),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
            std::copy(src, src + (end - aligned), aligned);
            return;
        }
    }
#endif
    std::copy(from, from + n, to);
}

// Orders the streaming stores of this thread before what follows (the pool's synchronisation).
inline void end_streaming([[maybe_unused]] bool stream) {
#if defined(__SSE2__)
    if (stream) _mm_sfence();
#endif
}

}  // namespace detail

/// The connected components of a label volume, found but not yet written: count() is known
/// before the output exists, so a caller can pick the smallest id type that holds it (what
/// `out_dtype="auto"` does in Python), then write() the ids.
template <class Label>
class Components {
public:
    Components(View<const Label> labels, Connectivity connectivity, ThreadPool& pool,
               Foreground foreground = Foreground::per_label)
        : shape_(labels.shape()),
          range_start_(row_ranges(labels, pool)),
          runs_(labels, foreground, pool, range_start_) {
        using detail::RunIndex;
        const Vec3 shape = shape_;
        const auto num_ranges = static_cast<std::int64_t>(range_start_.size()) - 1;
        const auto& range_start = range_start_;
        const auto& runs = runs_;
        detail::Parents& parent = parent_;
        parent = detail::Parents(runs.size());

        // 1. Merge within each row range, in parallel: every union touches runs of one range only.
        parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
            for (RunIndex i = runs.first(range_start[k]); i < runs.first(range_start[k + 1]); ++i) parent[i] = i;
            for (std::int64_t r = range_start[k]; r < range_start[k + 1]; ++r)
                detail::merge_with_previous_rows(runs, parent, shape, r, range_start[k], r, connectivity);
        });
        // 2. Merge across range borders: only the first y+1 rows of a range reach back before it.
        const std::int64_t num_rows = shape.y * shape.z;
        for (std::int64_t k = 1; k < num_ranges; ++k) {
            const std::int64_t first = range_start[static_cast<std::size_t>(k)];
            for (std::int64_t r = first; r < std::min(first + shape.y + 1, num_rows); ++r)
                detail::merge_with_previous_rows(runs, parent, shape, r, 0, first, connectivity);
        }

        // 3. Give every run its component's id; roots (the smallest run of each component) are
        //    numbered in run order. Run ranges follow the row ranges, balanced like step 1.
        //    a) Per range: flatten the parent links that stay inside the range (each points to its
        //       root or out of the range afterwards, as parents precede children), rank the roots.
        //    b) Per range: look up each non-root's root; its id is the root's rank plus the number
        //       of roots in earlier ranges. Roots keep their rank until write() adds their offset,
        //       so no thread writes an entry that another reads.
        detail::Parents& label = label_;
        label = detail::Parents(runs.size());
        std::vector<RunIndex> range_first_run(static_cast<std::size_t>(num_ranges) + 1);
        for (std::int64_t k = 0; k <= num_ranges; ++k)
            range_first_run[static_cast<std::size_t>(k)] = runs.first(range_start[k]);
        roots_before_.assign(static_cast<std::size_t>(num_ranges) + 1, 0);
        auto& roots_before = roots_before_;
        parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
            const RunIndex lo = range_first_run[static_cast<std::size_t>(k)],
                           hi = range_first_run[static_cast<std::size_t>(k) + 1];
            RunIndex rank = 0;
            for (RunIndex i = lo; i < hi; ++i) {
                const RunIndex p = parent[i];
                if (p == i) {
                    label[i] = ++rank;
                } else if (p >= lo) {
                    parent[i] = parent[p];
                }
            }
            roots_before[static_cast<std::size_t>(k) + 1] = rank;
        });
        for (std::size_t k = 1; k < roots_before.size(); ++k) roots_before[k] += roots_before[k - 1];
        parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
            const RunIndex lo = range_first_run[static_cast<std::size_t>(k)],
                           hi = range_first_run[static_cast<std::size_t>(k) + 1];
            for (RunIndex i = lo; i < hi; ++i) {
                if (parent[i] == i) continue;
                const RunIndex root = graph::find_root_const(parent, parent[i]);
                auto root_range = static_cast<std::size_t>(k);  // ranges are few: walk back to the root's
                while (root < range_first_run[root_range]) --root_range;
                label[i] = roots_before[root_range] + label[root];
            }
        });
    }

    /// The number of components (their ids are 1..count()).
    std::uint64_t count() const { return roots_before_.empty() ? 0 : roots_before_.back(); }

    /// 4. Writes the ids into `out` (the labels' shape; InvalidArgument if count() does not fit
    ///    `Out`), row by row; a run's id is its root's. Each row is assembled in a small buffer,
    ///    gaps and runs in blocks of 16 voxels that may spill past their end into what the next
    ///    block covers (or the buffer's padding): almost all gaps and most runs then take one
    ///    block, without a data-dependent loop branch, which is what costs most per run. The row
    ///    is then copied out, with streaming stores when the output is far larger than the caches.
    template <class Out>
    void write(View<Out> out, ThreadPool& pool) const {
        using detail::RunIndex;
        static_assert(std::is_unsigned_v<Out>, "component ids are unsigned");
        if (!(out.shape() == shape_)) throw InvalidArgument("connected_components: out has another shape than labels");
        if (count() > std::numeric_limits<Out>::max())
            throw InvalidArgument("connected_components: " + std::to_string(count()) +
                                  " components do not fit the output's " + std::to_string(8 * sizeof(Out)) +
                                  "-bit ids");
        const Vec3 shape = shape_;
        const auto num_ranges = static_cast<std::int64_t>(range_start_.size()) - 1;
        const bool stream = static_cast<std::uint64_t>(out.size()) * sizeof(Out) >= detail::stream_threshold_bytes;
        parallel_for(pool, 0, num_ranges, [&](std::int64_t k) {
            constexpr std::int32_t block = 16;
            std::vector<Out> buffer(static_cast<std::size_t>(shape.x + block));
            Out* row = buffer.data();
            auto fill = [row](std::int32_t begin, std::int32_t end, Out value) {
                for (std::int32_t i = 0; i < block; ++i) row[begin + i] = value;
                for (std::int32_t x = begin + block; x < end; x += block)
                    for (std::int32_t i = 0; i < block; ++i) row[x + i] = value;
            };
            const RunIndex root_offset = roots_before_[static_cast<std::size_t>(k)];
            for (std::int64_t r = range_start_[k]; r < range_start_[k + 1]; ++r) {
                const detail::RowRuns<Label> row_runs = runs_.row(r);
                std::int32_t x = 0;
                for (RunIndex a = 0; a < row_runs.count; ++a) {
                    const auto& run = row_runs.data[a];
                    fill(x, run.begin, 0);
                    const RunIndex i = row_runs.first + a;
                    fill(run.begin, run.end, static_cast<Out>(parent_[i] == i ? root_offset + label_[i] : label_[i]));
                    x = run.end;
                }
                if (x < shape.x) fill(x, static_cast<std::int32_t>(shape.x), 0);
                detail::copy_row(row, out.data() + r * shape.x, shape.x, stream);
            }
            detail::end_streaming(stream);
        });
    }

private:
    // Contiguous row ranges, one per thread (none for an empty volume).
    static std::vector<std::int64_t> row_ranges(View<const Label> labels, ThreadPool& pool) {
        const Vec3 shape = labels.shape();
        if (shape.x >= std::numeric_limits<std::int32_t>::max())
            throw InvalidArgument("connected_components: x extent too large (" + std::to_string(shape.x) + ")");
        const std::int64_t num_rows = labels.size() == 0 ? 0 : shape.y * shape.z;
        const std::int64_t num_ranges = std::min<std::int64_t>(static_cast<std::int64_t>(pool.size()), num_rows);
        if (num_ranges == 0) return {0};
        std::vector<std::int64_t> start(static_cast<std::size_t>(num_ranges) + 1, 0);
        for (std::int64_t k = 0; k <= num_ranges; ++k) start[static_cast<std::size_t>(k)] = num_rows * k / num_ranges;
        return start;
    }

    Vec3 shape_;
    std::vector<std::int64_t> range_start_;
    detail::RunTable<Label> runs_;
    detail::Parents parent_, label_;
    std::vector<detail::RunIndex> roots_before_;
};

/// Labels the connected components of `labels` into `out` (same shape; uint16, uint32 or uint64
/// ids) and returns their number.
template <class Label, class Out = std::uint64_t>
std::uint64_t connected_components(View<const Label> labels, View<Out> out, Connectivity connectivity, ThreadPool& pool,
                                   Foreground foreground = Foreground::per_label) {
    require_same_shape(labels, View<const Out>(out), "connected_components(labels, out)");
    const Components<Label> components(labels, connectivity, pool, foreground);
    components.write(out, pool);
    return components.count();
}

}  // namespace vx::segmentation
