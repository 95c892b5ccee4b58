// An std::allocator replacement for large, short-lived scratch arrays (run tables, union-find
// parents). Allocations of 2 MiB and more are 2 MiB-aligned and marked for transparent huge
// pages: first-touch page faults are the dominant cost of fresh scratch memory on many virtual
// machines, and a huge page takes one fault instead of 512. Elsewhere it is plain new/delete.
// Elements are default-initialised (not zeroed): `ScratchVector<int> v(n)` leaves the memory
// untouched, so the threads that fill it first also take its page faults, in parallel.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace vx::detail {

template <class T>
struct HugePageAllocator {
    using value_type = T;
    static constexpr std::size_t huge_page = std::size_t{1} << 21;

    HugePageAllocator() = default;
    template <class U>
    HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        const std::size_t bytes = n * sizeof(T);
        if (bytes < huge_page) return static_cast<T*>(::operator new(bytes));
        const std::size_t rounded = (bytes + huge_page - 1) / huge_page * huge_page;
        void* p = std::aligned_alloc(huge_page, rounded);
        if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
        madvise(p, rounded, MADV_HUGEPAGE);  // a hint: failure only costs speed
#endif
        return static_cast<T*>(p);
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        if constexpr (sizeof...(Args) == 0) {
            ::new (static_cast<void*>(p)) U;  // default-initialise: no write for trivial types
        } else {
            ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
        }
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (n * sizeof(T) < huge_page) {
            ::operator delete(p);
        } else {
            std::free(p);
        }
    }
    template <class U>
    bool operator==(const HugePageAllocator<U>&) const noexcept {
        return true;
    }
    template <class U>
    bool operator!=(const HugePageAllocator<U>&) const noexcept {
        return false;
    }
};

template <class T>
using ScratchVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace vx::detail
