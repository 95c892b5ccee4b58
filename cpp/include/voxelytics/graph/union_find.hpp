// UnionFind over elements 0..n-1 whose root is always the smallest element of its set. Smallest-
// index roots make results independent of the order of merges (hence of thread count and block
// size) and let a scan in index order number sets by first appearance.
#pragma once

#include <cstdint>
#include <numeric>
#include <vector>

namespace vx::graph {

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
    Index find(Index a) {
        while (parent_[a] != a) {
            parent_[a] = parent_[parent_[a]];
            a = parent_[a];
        }
        return a;
    }
    /// Merges the sets of `a` and `b`; returns the root of the merged set.
    Index merge(Index a, Index b) {
        a = find(a);
        b = find(b);
        if (a < b) {
            parent_[b] = a;
            return a;
        }
        parent_[a] = b;
        return b;
    }
    bool same(Index a, Index b) { return find(a) == find(b); }

    /// Raw parent array, for algorithms that manage it in parallel (see connected_components).
    std::vector<Index>& parents() { return parent_; }

private:
    std::vector<Index> parent_;
};

}  // namespace vx::graph
