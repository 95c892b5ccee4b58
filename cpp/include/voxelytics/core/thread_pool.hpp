// ThreadPool + parallel_for. The caller decides the number of threads (voxelytics never reads the
// machine's core count behind its back); a pool of size 1 runs everything on the calling thread,
// which keeps single-threaded runs free of synchronisation and easy to debug. The first exception
// thrown by a task is rethrown on the calling thread after all tasks of that call have finished.
// Idle workers and a waiting caller spin for a few microseconds before they sleep: kernels run
// several parallel steps in a row, and waking a sleeping thread can take milliseconds on a busy
// or virtual machine.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

#include "voxelytics/core/errors.hpp"

namespace vx {

namespace detail {
/// Polls `ready()` for up to `budget`; true as soon as it holds.
template <class Ready>
bool spin_until(Ready ready, std::chrono::microseconds budget = std::chrono::microseconds(100)) {
    const auto deadline = std::chrono::steady_clock::now() + budget;
    for (int i = 0;; ++i) {
        if (ready()) return true;
        if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return false;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}
}  // namespace detail

class ThreadPool {
public:
    /// `num_threads` >= 1; 0 means one thread per hardware thread.
    explicit ThreadPool(std::size_t num_threads = 1) {
        if (num_threads == 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
        size_ = num_threads;
        // The calling thread works too (see parallel_for), so size-1 workers suffice.
        for (std::size_t i = 1; i < num_threads; ++i) workers_.emplace_back([this] { work(); });
    }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;
    ~ThreadPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& w : workers_) w.join();
    }

    std::size_t size() const { return size_; }

    /// Queue a task for a worker thread (runs on the caller if the pool has no workers).
    void submit(std::function<void()> task) {
        if (workers_.empty()) {
            task();
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            tasks_.push(std::move(task));
            ++queued_;
        }
        wake_.notify_one();
    }

    /// Run one queued task on the calling thread, if any; lets a waiting caller help.
    bool run_one() {
        std::function<void()> task;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (tasks_.empty()) return false;
            task = std::move(tasks_.front());
            tasks_.pop();
            --queued_;
        }
        task();
        return true;
    }

private:
    void work() {
        for (;;) {
            detail::spin_until([this] { return queued_.load(std::memory_order_relaxed) > 0; });
            std::function<void()> task;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
                if (stopping_ && tasks_.empty()) return;
                task = std::move(tasks_.front());
                tasks_.pop();
                --queued_;
            }
            task();
        }
    }

    std::size_t size_ = 1;
    std::vector<std::thread> workers_;
    std::queue<std::function<void()>> tasks_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<std::size_t> queued_{0};  // tasks_.size(), readable without the lock for spinning
    bool stopping_ = false;
};

/// Calls `fn(i)` for every i in [begin, end), split into `pool.size()` contiguous ranges (or
/// `num_chunks` if given) that run in parallel. `fn(i)` for one i always runs on one thread.
template <class F>
void parallel_for(ThreadPool& pool, std::int64_t begin, std::int64_t end, F&& fn, std::int64_t num_chunks = 0) {
    const std::int64_t n = end - begin;
    if (n <= 0) return;
    if (num_chunks <= 0) num_chunks = static_cast<std::int64_t>(pool.size());
    num_chunks = std::min(num_chunks, n);
    if (num_chunks == 1) {
        for (std::int64_t i = begin; i < end; ++i) fn(i);
        return;
    }

    std::mutex mutex;
    std::condition_variable done;
    std::atomic<std::int64_t> remaining{num_chunks};
    std::exception_ptr error;
    auto run_chunk = [&](std::int64_t c) {
        const std::int64_t lo = begin + n * c / num_chunks;
        const std::int64_t hi = begin + n * (c + 1) / num_chunks;
        try {
            for (std::int64_t i = lo; i < hi; ++i) fn(i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex);
            if (!error) error = std::current_exception();
        }
        std::lock_guard<std::mutex> lock(mutex);  // the waiter must not miss the notification
        if (--remaining == 0) done.notify_all();
    };
    for (std::int64_t c = 1; c < num_chunks; ++c) pool.submit([&run_chunk, c] { run_chunk(c); });
    run_chunk(0);
    // Help with queued work instead of idling, then wait for chunks running elsewhere.
    while (pool.run_one()) {
    }
    if (!detail::spin_until([&] { return remaining.load() == 0; })) {
        std::unique_lock<std::mutex> lock(mutex);
        done.wait(lock, [&] { return remaining.load() == 0; });
    }
    // The last chunk may still hold `mutex` right after its decrement; take it once so that it
    // has let go before `mutex` goes out of scope.
    {
        std::lock_guard<std::mutex> lock(mutex);
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace vx
