// PairCounter: counts (a, b) label pairs in an open-addressing hash table (linear probing,
// power-of-two capacity, grown at half load). std::unordered_map would allocate one node per
// pair; this keeps them in one flat array, which matters when counting billions of voxels.
#pragma once

#include <cstdint>
#include <vector>

namespace vx::metrics::detail {

struct PairCount {
    std::uint64_t a, b, count;
};

class PairCounter {
public:
    PairCounter() : slots_(1024) {}

    void add(std::uint64_t a, std::uint64_t b, std::uint64_t n) {
        if (2 * (used_ + 1) > slots_.size()) grow();
        Slot& s = find(a, b);
        if (s.count == 0) {
            s.a = a;
            s.b = b;
            ++used_;
        }
        s.count += n;
    }

    /// The pairs counted so far, in no particular order.
    std::vector<PairCount> pairs() const {
        std::vector<PairCount> out;
        out.reserve(used_);
        for (const Slot& s : slots_)
            if (s.count) out.push_back({s.a, s.b, s.count});
        return out;
    }

private:
    struct Slot {
        std::uint64_t a = 0, b = 0, count = 0;  // count 0: empty
    };

    static std::uint64_t hash(std::uint64_t a, std::uint64_t b) {
        std::uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
        h ^= h >> 31;  // splitmix64's finaliser: labels are often small consecutive integers
        h *= 0xBF58476D1CE4E5B9ull;
        return h ^ (h >> 29);
    }

    Slot& find(std::uint64_t a, std::uint64_t b) {
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = hash(a, b) & mask;; i = (i + 1) & mask) {
            Slot& s = slots_[i];
            if (s.count == 0 || (s.a == a && s.b == b)) return s;
        }
    }

    void grow() {
        std::vector<Slot> old(slots_.size() * 2);
        old.swap(slots_);
        for (const Slot& s : old)
            if (s.count) find(s.a, s.b) = s;
    }

    std::vector<Slot> slots_;
    std::size_t used_ = 0;
};

}  // namespace vx::metrics::detail
