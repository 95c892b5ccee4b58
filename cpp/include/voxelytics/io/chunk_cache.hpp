// ChunkCache: decoded chunks (and shard indices) kept in memory between reads, least recently
// used first out, bounded in bytes. Each entry carries the version of the stored value it came
// from (StoreReader::version); a lookup with another version drops it, so a value rewritten by
// any process is never served stale. One cache is shared by all arrays of a process unless an
// array is given its own.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace vx::io {

class ChunkCache {
public:
    using Value = std::shared_ptr<const void>;

    struct Stats {
        std::size_t capacity = 0, size = 0, entries = 0;
        std::uint64_t hits = 0, misses = 0;
    };

    explicit ChunkCache(std::size_t capacity_bytes) : capacity_(capacity_bytes) {}

    /// The process-wide cache arrays use by default: 256 MiB.
    static const std::shared_ptr<ChunkCache>& shared() {
        static const auto cache = std::make_shared<ChunkCache>(std::size_t{256} << 20);
        return cache;
    }

    /// The entry for `key` if it was stored from `version`; nullptr (and the entry dropped) if not.
    /// Each key always holds one type T (a decoded chunk, an index), so the cast is safe.
    template <class T>
    std::shared_ptr<const std::vector<T>> get(const std::string& key, const std::string& version) {
        return std::static_pointer_cast<const std::vector<T>>(get_value(key, version));
    }
    template <class T>
    void put(const std::string& key, const std::string& version, std::shared_ptr<const std::vector<T>> value) {
        const std::size_t bytes = value->size() * sizeof(T);
        put_value(key, version, std::move(value), bytes);
    }

    Value get_value(const std::string& key, const std::string& version) {
        const std::lock_guard<std::mutex> lock(mutex_);
        const auto it = map_.find(key);
        if (it == map_.end() || it->second->version != version) {
            if (it != map_.end()) drop(it);
            ++misses_;
            return nullptr;
        }
        lru_.splice(lru_.begin(), lru_, it->second);
        ++hits_;
        return it->second->value;
    }

    void put_value(const std::string& key, const std::string& version, Value value, std::size_t bytes) {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (const auto it = map_.find(key); it != map_.end()) drop(it);
        if (bytes > capacity_) return;
        size_ += bytes;
        lru_.push_front({key, version, std::move(value), bytes});
        map_[key] = lru_.begin();
        while (size_ > capacity_) drop(map_.find(lru_.back().key));
    }

    /// Drops every entry whose key starts with `prefix` (a chunk's entries after it is written).
    void erase_prefix(const std::string& prefix) {
        const std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = map_.begin(); it != map_.end();)
            it = it->first.compare(0, prefix.size(), prefix) == 0 ? drop(it) : std::next(it);
    }

    void set_capacity(std::size_t capacity_bytes) {
        const std::lock_guard<std::mutex> lock(mutex_);
        capacity_ = capacity_bytes;
        while (size_ > capacity_) drop(map_.find(lru_.back().key));
    }

    void clear() {
        const std::lock_guard<std::mutex> lock(mutex_);
        lru_.clear();
        map_.clear();
        size_ = 0;
    }

    Stats stats() const {
        const std::lock_guard<std::mutex> lock(mutex_);
        return {capacity_, size_, map_.size(), hits_, misses_};
    }

private:
    struct Entry {
        std::string key, version;
        Value value;
        std::size_t bytes;
    };
    using Map = std::unordered_map<std::string, std::list<Entry>::iterator>;

    Map::iterator drop(Map::iterator it) {
        size_ -= it->second->bytes;
        lru_.erase(it->second);
        return map_.erase(it);
    }

    mutable std::mutex mutex_;
    std::size_t capacity_, size_ = 0;
    std::uint64_t hits_ = 0, misses_ = 0;
    std::list<Entry> lru_;  // most recently used first
    Map map_;
};

}  // namespace vx::io
