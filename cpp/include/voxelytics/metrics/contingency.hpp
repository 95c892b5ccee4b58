// The contingency table of two labelings of the same voxels: how many voxels carry truth label
// a and test label b, for every pair (a, b) that occurs. Every segmentation score (VOI, Rand,
// adapted Rand, CREMI) and the truth <-> test matching of neurons derive from it.
//
// Built in one pass over the voxels, in parallel: each thread counts its share of the voxels
// into a flat hash table, adding runs of equal pairs at once (labels come in long runs along x),
// and the tables are merged by sorting. Tables of blocks join the same way.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/metrics/detail/pair_counter.hpp"

namespace vx::metrics {

struct ContingencyTable {
    // One entry per (truth, test) pair that occurs, sorted by truth label, then test label.
    std::vector<std::uint64_t> truth, test, count;
    std::uint64_t total = 0;  // voxels counted

    std::size_t size() const { return count.size(); }
};

/// Which voxels count: not those whose truth label is in `ignore_truth` (0, "unlabelled", by
/// convention), nor those where `mask` (if given, one byte per voxel) is 0.
struct Counted {
    std::vector<std::uint64_t> ignore_truth{0};
    const std::uint8_t* mask = nullptr;
};

/// The table of (truth, test, count) entries in any order, counts of a repeated pair added: the
/// tables of blocks joined, or a table whose test labels were renamed (fragments -> segments).
inline ContingencyTable contingency_of_pairs(std::vector<detail::PairCount> pairs) {
    std::sort(pairs.begin(), pairs.end(), [](const detail::PairCount& x, const detail::PairCount& y) {
        return x.a != y.a ? x.a < y.a : x.b < y.b;
    });
    ContingencyTable t;
    for (const auto& e : pairs) {
        t.total += e.count;
        if (!t.count.empty() && t.truth.back() == e.a && t.test.back() == e.b) {
            t.count.back() += e.count;
        } else {
            t.truth.push_back(e.a);
            t.test.push_back(e.b);
            t.count.push_back(e.count);
        }
    }
    return t;
}

/// The table of `n` voxels of `truth` and `test` (same memory order). Labels of any integer
/// type are taken as their uint64 bit patterns.
template <class A, class B>
ContingencyTable contingency_table(const A* truth, const B* test, std::int64_t n, const Counted& counted,
                                   ThreadPool& pool) {
    const auto parts = static_cast<std::int64_t>(pool.size());
    std::vector<detail::PairCounter> counters(static_cast<std::size_t>(parts));
    const auto& ignore = counted.ignore_truth;
    auto ignored = [&](std::uint64_t a) { return std::find(ignore.begin(), ignore.end(), a) != ignore.end(); };
    parallel_for(
        pool, 0, parts,
        [&](std::int64_t p) {
            detail::PairCounter& counter = counters[static_cast<std::size_t>(p)];
            const std::int64_t begin = n * p / parts, end = n * (p + 1) / parts;
            std::int64_t i = begin;
            while (i < end) {
                if (counted.mask && !counted.mask[i]) {
                    ++i;
                    continue;
                }
                const A a = truth[i];
                const B b = test[i];
                const std::int64_t start = i;
                for (++i; i < end && truth[i] == a && test[i] == b && (!counted.mask || counted.mask[i]);) ++i;
                const auto ua = static_cast<std::uint64_t>(a);
                if (!ignored(ua)) counter.add(ua, static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(i - start));
            }
        },
        parts);

    std::vector<detail::PairCount> all;
    for (const auto& c : counters) {
        const auto pairs = c.pairs();
        all.insert(all.end(), pairs.begin(), pairs.end());
    }
    return contingency_of_pairs(std::move(all));
}

/// Each test label with the truth label it overlaps most (ties: the smaller truth label), sorted
/// by test label: how predicted neurons are matched to true ones.
inline std::vector<std::pair<std::uint64_t, std::uint64_t>> match_by_overlap(const ContingencyTable& t) {
    std::vector<std::size_t> order(t.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
        if (t.test[x] != t.test[y]) return t.test[x] < t.test[y];
        if (t.count[x] != t.count[y]) return t.count[x] > t.count[y];
        return t.truth[x] < t.truth[y];
    });
    std::vector<std::pair<std::uint64_t, std::uint64_t>> matches;
    for (std::size_t i : order)
        if (matches.empty() || matches.back().first != t.test[i]) matches.emplace_back(t.test[i], t.truth[i]);
    return matches;
}

}  // namespace vx::metrics
