// Store: the key-value interface every on-disk format in voxelytics goes through (keys are
// '/'-separated paths relative to the store root), and FileStore, its file-system backend.
// Writes are atomic: the value goes to a temporary file beside the key, which is then renamed
// over it, so a reader (or a crash) never sees a half-written value.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "voxelytics/core/errors.hpp"

namespace vx::io {

using Bytes = std::vector<std::uint8_t>;

/// Held while a process read-modify-writes a value; released when destroyed.
class StoreLock {
public:
    virtual ~StoreLock() = default;
};

class Store {
public:
    virtual ~Store() = default;
    /// An exclusive lock on `key` across threads and processes, held until the result is
    /// destroyed: read-modify-write of a shard or of metadata happens under it, so concurrent
    /// writers of one key wait for each other instead of losing each other's update.
    virtual std::unique_ptr<StoreLock> lock(const std::string& key) = 0;
    /// The value of `key`, or nothing if it does not exist.
    virtual std::optional<Bytes> get(const std::string& key) const = 0;
    /// `length` bytes from `offset` of `key`'s value; a negative offset counts from the end.
    /// Nothing if the key does not exist; CorruptData if the value is shorter than the range.
    virtual std::optional<Bytes> get_range(const std::string& key, std::int64_t offset, std::int64_t length) const = 0;
    virtual void set(const std::string& key, const Bytes& value) = 0;
    /// Removes `key`; false if it did not exist.
    virtual bool erase(const std::string& key) = 0;
    /// The keys below `prefix` ("" for all), in no particular order.
    virtual std::vector<std::string> list(const std::string& prefix = "") const = 0;
    /// A description for error messages (e.g. the file path of `key`).
    virtual std::string describe(const std::string& key) const = 0;
};

class FileStore : public Store {
public:
    explicit FileStore(std::filesystem::path root) : root_(std::move(root)) {}
    const std::filesystem::path& root() const { return root_; }

    std::optional<Bytes> get(const std::string& key) const override {
        std::ifstream f(path(key), std::ios::binary | std::ios::ate);
        if (!f) return std::nullopt;
        const auto size = static_cast<std::int64_t>(f.tellg());
        return read_exactly(f, key, 0, size);
    }

    std::optional<Bytes> get_range(const std::string& key, std::int64_t offset, std::int64_t length) const override {
        std::ifstream f(path(key), std::ios::binary | std::ios::ate);
        if (!f) return std::nullopt;
        const auto size = static_cast<std::int64_t>(f.tellg());
        const std::int64_t begin = offset < 0 ? size + offset : offset;
        if (begin < 0 || length < 0 || begin + length > size)
            throw CorruptData(describe(key) + ": needed bytes [" + std::to_string(begin) + ", " +
                              std::to_string(begin + length) + ") but the file has " + std::to_string(size));
        return read_exactly(f, key, begin, length);
    }

    void set(const std::string& key, const Bytes& value) override {
        const auto target = path(key);
        std::error_code ec;
        std::filesystem::create_directories(target.parent_path(), ec);
        if (ec) throw IOError("cannot create directory " + target.parent_path().string() + ": " + ec.message());
        // Unique per process and call, so concurrent writers of one key never share a temp file.
        const auto temp = target.string() + ".tmp-" + unique_suffix();
        {
            std::ofstream f(temp, std::ios::binary | std::ios::trunc);
            f.write(reinterpret_cast<const char*>(value.data()), static_cast<std::streamsize>(value.size()));
            f.flush();
            if (!f) {
                std::filesystem::remove(temp, ec);
                throw IOError("cannot write " + temp);
            }
        }
        std::filesystem::rename(temp, target, ec);
        if (ec) {
            std::filesystem::remove(temp, ec);
            throw IOError("cannot move " + temp + " to " + target.string() + ": " + ec.message());
        }
    }

    bool erase(const std::string& key) override {
        std::error_code ec;
        const bool removed = std::filesystem::remove(path(key), ec);
        if (ec) throw IOError("cannot remove " + describe(key) + ": " + ec.message());
        return removed;
    }

    std::vector<std::string> list(const std::string& prefix = "") const override {
        std::vector<std::string> keys;
        const auto base = prefix.empty() ? root_ : path(prefix);
        std::error_code ec;
        if (!std::filesystem::is_directory(base, ec)) return keys;
        for (auto it = std::filesystem::recursive_directory_iterator(base, ec);
             it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
            if (ec) throw IOError("cannot list " + base.string() + ": " + ec.message());
            if (!it->is_regular_file()) continue;
            const auto name = it->path().filename().string();
            if (name.find(".tmp-") != std::string::npos) continue;  // another writer's unfinished value
            if (it->path().parent_path().filename() == ".voxelytics-locks") continue;
            keys.push_back(std::filesystem::relative(it->path(), root_).generic_string());
        }
        return keys;
    }

    std::string describe(const std::string& key) const override { return path(key).string(); }

    /// flock(2) on a file under `<root>/.voxelytics-locks/`, one per key. Lock files stay (removing
    /// them would race with the next locker); they are empty and outside every array's keys.
    std::unique_ptr<StoreLock> lock(const std::string& key) override {
        std::string name = key;
        for (char& c : name)
            if (c == '/') c = '%';
        const auto dir = root_ / ".voxelytics-locks";
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        const auto file = (dir / (name + ".lock")).string();
        const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) throw IOError("cannot open lock file " + file);
        while (::flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                ::close(fd);
                throw IOError("cannot lock " + file);
            }
        }
        return std::make_unique<FileLock>(fd);
    }

private:
    class FileLock : public StoreLock {
    public:
        explicit FileLock(int fd) : fd_(fd) {}
        ~FileLock() override { ::close(fd_); }  // closing releases the flock
    private:
        int fd_;
    };

    std::filesystem::path path(const std::string& key) const { return root_ / key; }

    Bytes read_exactly(std::ifstream& f, const std::string& key, std::int64_t offset, std::int64_t length) const {
        Bytes out(static_cast<std::size_t>(length));
        f.seekg(offset);
        f.read(reinterpret_cast<char*>(out.data()), length);
        if (!f) throw IOError("cannot read " + describe(key));
        return out;
    }

    static std::string unique_suffix() {
        static std::atomic<std::uint64_t> counter{0};
        thread_local std::mt19937_64 rng{std::random_device{}()};
        return std::to_string(rng()) + "-" + std::to_string(counter++);
    }

    std::filesystem::path root_;
};

}  // namespace vx::io
