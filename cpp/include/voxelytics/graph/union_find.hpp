// UnionFind over elements 0..n-1 whose root is always the smallest element of its set. Smallest-
// index roots make results independent of the order of merges (hence of thread count and block
// size) and let a scan in index order number sets by first appearance.
#pragma once

#include <cstdint>
#include <numeric>
#include <vector>

namespace vx::graph {

// The operations on a bare parent array (parent[a] == a for a root), for algorithms that manage
// the array themselves, e.g. to initialise and merge parts of it on different threads.

/// The root of `a`'s set, halving the path on the way.
template <class Parents, class Index>
Index find_root(Parents& parent, Index a) {
    while (parent[a] != a) {
        parent[a] = parent[parent[a]];
        a = parent[a];
    }
    return a;
}

/// The root of `a`'s set without changing the array: safe while other threads read it too.
template <class Parents, class Index>
Index find_root_const(const Parents& parent, Index a) {
    while (parent[a] != a) a = parent[a];
    return a;
}

/// Merges the sets of `a` and `b`, the smaller root becoming the root of both; returns it.
template <class Parents, class Index>
Index merge_sets(Parents& parent, Index a, Index b) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a < b) {
        parent[b] = a;
        return a;
    }
    parent[a] = b;
    return b;
}

template <class Index = std::uint64_t>
class UnionFind {
public:
    explicit UnionFind(std::size_t n = 0) : parent_(n) { std::iota(parent_.begin(), parent_.end(), Index{0}); }

    std::size_t size() const { return parent_.size(); }
    /// Adds a singleton set and returns its element.
    Index add() {
        parent_.push_back(static_cast<Index>(parent_.size()));
        return parent_.back();
    }

    /// The root of `a`'s set, halving the path on the way.
    Index find(Index a) { return find_root(parent_, a); }
    /// Merges the sets of `a` and `b`; returns the root of the merged set.
    Index merge(Index a, Index b) { return merge_sets(parent_, a, b); }
    bool same(Index a, Index b) { return find(a) == find(b); }

private:
    std::vector<Index> parent_;
};

}  // namespace vx::graph
