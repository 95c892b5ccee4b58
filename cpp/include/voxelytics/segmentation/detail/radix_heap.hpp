// RadixHeap: a monotone priority queue over 32-bit keys (Ahuja, Mehlhorn, Orlin & Tarjan's radix
// heap). Every pushed key must be >= the last popped one; in exchange push is O(1) and each item
// moves between buckets at most 32 times in all, instead of log(n) sift steps per operation.
//
// Equal keys pop first in first out, with no age stored: bucket b holds the keys whose highest
// bit differing from `last` is b - 1 (bucket 0: key == last), pushes append, and a bucket is only
// redistributed into buckets that are empty, in order. Every bucket therefore stays in push
// order, and bucket 0 is read from the front.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vx::segmentation::detail {

/// `Item`: any copyable struct with a `std::uint32_t key` member; the rest of it rides along.
template <class Item>
class RadixHeap {
public:
    bool empty() const { return size_ == 0; }
    /// The last popped key (0 before the first pop): the smallest key push accepts.
    std::uint32_t last() const { return last_; }

    void push(const Item& item) {
        buckets_[bucket(item.key)].push_back(item);
        ++size_;
    }

    /// The item that pop() returns `d` pops from now, if already known (else null): for prefetching.
    const Item* ahead(std::size_t d) const {
        return head_ + d < buckets_[0].size() ? &buckets_[0][head_ + d] : nullptr;
    }

    /// The item with the smallest key, the earliest pushed among equal keys. Not on an empty heap.
    Item pop() {
        if (head_ == buckets_[0].size()) refill();
        --size_;
        return buckets_[0][head_++];
    }

private:
    std::size_t bucket(std::uint32_t key) const {
        return key == last_ ? 0 : 32 - static_cast<std::size_t>(__builtin_clz(key ^ last_));
    }

    // Bucket 0 is spent: the first non-empty bucket's minimum becomes `last`, and its items move
    // down (each to a lower bucket, as they now share more leading bits with `last`).
    void refill() {
        buckets_[0].clear();
        head_ = 0;
        std::size_t b = 1;
        while (buckets_[b].empty()) ++b;
        std::vector<Item>& from = buckets_[b];
        last_ = from[0].key;
        for (const Item& item : from) last_ = item.key < last_ ? item.key : last_;
        for (const Item& item : from) buckets_[bucket(item.key)].push_back(item);
        from.clear();
    }

    std::vector<Item> buckets_[33];
    std::size_t head_ = 0;  // next item of bucket 0
    std::size_t size_ = 0;
    std::uint32_t last_ = 0;
};

}  // namespace vx::segmentation::detail
