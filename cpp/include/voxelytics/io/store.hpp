// Store: the key-value interface every on-disk format in voxelytics goes through (keys are
// '/'-separated paths relative to the store root), and FileStore, its file-system backend.
// Writes are atomic: the value goes to a temporary file beside the key, which is then renamed
// over it, so a reader (or a crash) never sees a half-written value.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
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

/// One version of one stored value, open for reading byte ranges: every read sees the same
/// bytes, even if a writer replaces the value meanwhile. Safe to read from several threads.
class StoreReader {
public:
    virtual ~StoreReader() = default;
    virtual std::int64_t size() const = 0;
    /// `length` bytes from `offset` (negative: from the end); CorruptData if past the end.
    virtual Bytes read(std::int64_t offset, std::int64_t length) const = 0;
    /// read() into `out` (`length` bytes), e.g. a buffer a thread reuses.
    virtual void read_into(std::int64_t offset, std::int64_t length, std::uint8_t* out) const {
        const Bytes bytes = read(offset, length);
        std::copy(bytes.begin(), bytes.end(), out);
    }
    /// Changes whenever the value is replaced: what caches check before trusting a copy.
    virtual const std::string& version() const = 0;
};

/// A value being written in pieces. Nobody sees it before commit(), which replaces the key's
/// value at once; destroyed uncommitted (an error, an exception), it leaves the old value as it was.
class StoreWriter {
public:
    /// Bytes owned elsewhere, appended in one go with others (one system call for many chunks).
    struct Part {
        const std::uint8_t* data;
        std::size_t size;
    };
    virtual ~StoreWriter() = default;
    virtual void append(const std::vector<Part>& parts) = 0;
    void append(const std::uint8_t* data, std::size_t size) { append({{data, size}}); }
    virtual void commit() = 0;
};

class Store {
public:
    virtual ~Store() = default;
    /// An exclusive lock on `key` across threads and processes, held until the result is
    /// destroyed: read-modify-write of a shard or of metadata happens under it, so concurrent
    /// writers of one key wait for each other instead of losing each other's update.
    virtual std::unique_ptr<StoreLock> lock(const std::string& key) = 0;
    /// The value of `key`, or nothing if it does not exist.
    std::optional<Bytes> get(const std::string& key) const {
        const auto r = open(key);
        if (!r) return std::nullopt;
        return r->read(0, r->size());
    }
    /// `length` bytes from `offset` of `key`'s value; a negative offset counts from the end.
    /// Nothing if the key does not exist; CorruptData if the value is shorter than the range.
    std::optional<Bytes> get_range(const std::string& key, std::int64_t offset, std::int64_t length) const {
        const auto r = open(key);
        if (!r) return std::nullopt;
        return r->read(offset, length);
    }
    /// The current value of `key` for reading, or nullptr if it does not exist.
    virtual std::unique_ptr<StoreReader> open(const std::string& key) const = 0;
    virtual void set(const std::string& key, const Bytes& value) = 0;
    /// A new value of `key`, written piece by piece (a shard chunk by chunk while later chunks
    /// are still being compressed); it replaces the old value only at commit().
    virtual std::unique_ptr<StoreWriter> write(const std::string& key);
    /// Removes `key`; false if it did not exist.
    virtual bool erase(const std::string& key) = 0;
    /// The keys below `prefix` ("" for all), in no particular order.
    virtual std::vector<std::string> list(const std::string& prefix = "") const = 0;
    /// A description for error messages (e.g. the file path of `key`).
    virtual std::string describe(const std::string& key) const = 0;
};

// The fallback writer: collects the pieces and sets the value at commit.
inline std::unique_ptr<StoreWriter> Store::write(const std::string& key) {
    class Buffered : public StoreWriter {
    public:
        Buffered(Store& store, std::string key) : store_(store), key_(std::move(key)) {}
        using StoreWriter::append;
        void append(const std::vector<Part>& parts) override {
            for (const Part& p : parts) value_.insert(value_.end(), p.data, p.data + p.size);
        }
        void commit() override { store_.set(key_, value_); }

    private:
        Store& store_;
        std::string key_;
        Bytes value_;
    };
    return std::make_unique<Buffered>(*this, key);
}

class FileStore : public Store {
public:
    explicit FileStore(std::filesystem::path root) : root_(std::move(root)) {}
    const std::filesystem::path& root() const { return root_; }

    std::unique_ptr<StoreReader> open(const std::string& key) const override {
        const std::string file = describe(key);
        const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT || errno == ENOTDIR) return nullptr;
            throw IOError("cannot open " + file + ": " + std::strerror(errno));
        }
        return std::make_unique<FileReader>(fd, file);
    }

    void set(const std::string& key, const Bytes& value) override {
        const auto writer = write(key);
        writer->append(value.data(), value.size());
        writer->commit();
    }

    /// Writes to a temporary file beside the key (unique per process and call, so concurrent
    /// writers of one key never share one), renamed over the key at commit.
    std::unique_ptr<StoreWriter> write(const std::string& key) override {
        const auto target = path(key);
        std::error_code ec;
        std::filesystem::create_directories(target.parent_path(), ec);
        if (ec) throw IOError("cannot create directory " + target.parent_path().string() + ": " + ec.message());
        return std::make_unique<FileWriter>(target.string(), target.string() + ".tmp-" + unique_suffix());
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
    // pread on one descriptor: the version opened stays readable after a rename replaces it.
    // The version identifies a file's contents without reading them (device, inode, times,
    // size): a replacement by rename gets a new inode, an edit in place new times; the times of
    // files written by FileStore::set are exact to the nanosecond.
    class FileReader : public StoreReader {
    public:
        FileReader(int fd, std::string file) : fd_(fd), file_(std::move(file)) {
            struct stat st{};
            if (::fstat(fd_, &st) != 0) {
                ::close(fd_);
                throw IOError("cannot stat " + file_);
            }
            size_ = static_cast<std::int64_t>(st.st_size);
            version_ = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
                       std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ":" +
                       std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec) + ":" +
                       std::to_string(size_);
        }
        ~FileReader() override { ::close(fd_); }
        FileReader(const FileReader&) = delete;
        FileReader& operator=(const FileReader&) = delete;

        std::int64_t size() const override { return size_; }
        const std::string& version() const override { return version_; }
        Bytes read(std::int64_t offset, std::int64_t length) const override {
            Bytes out(static_cast<std::size_t>(std::max<std::int64_t>(length, 0)));
            read_into(offset, length, out.data());
            return out;
        }
        void read_into(std::int64_t offset, std::int64_t length, std::uint8_t* out) const override {
            const std::int64_t begin = offset < 0 ? size_ + offset : offset;
            if (begin < 0 || length < 0 || length > size_ || begin > size_ - length)
                throw CorruptData(file_ + ": needed bytes [" + std::to_string(begin) + ", " +
                                  std::to_string(begin + length) + ") but the file has " + std::to_string(size_));
            std::size_t done = 0;
            const auto n_total = static_cast<std::size_t>(length);
            while (done < n_total) {
                const ssize_t n = ::pread(fd_, out + done, n_total - done,
                                          static_cast<off_t>(begin + static_cast<std::int64_t>(done)));
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) throw IOError("cannot read " + file_ + ": " + std::strerror(errno));
                if (n == 0) throw CorruptData(file_ + ": file ended early (truncated while reading?)");
                done += static_cast<std::size_t>(n);
            }
        }

    private:
        int fd_;
        std::string file_;
        std::int64_t size_ = 0;
        std::string version_;
    };

    class FileLock : public StoreLock {
    public:
        explicit FileLock(int fd) : fd_(fd) {}
        ~FileLock() override { ::close(fd_); }  // closing releases the flock
    private:
        int fd_;
    };

    std::filesystem::path path(const std::string& key) const { return root_ / key; }

    // Appends to a temporary file; commit stamps it with the current time to the nanosecond (file
    // systems keep coarser clocks, and every value written needs its own StoreReader::version)
    // and renames it over the target.
    class FileWriter : public StoreWriter {
    public:
        FileWriter(std::string target, std::string temp) : target_(std::move(target)), temp_(std::move(temp)) {
            fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd_ < 0) throw IOError("cannot create " + temp_ + ": " + std::strerror(errno));
        }
        ~FileWriter() override {
            if (fd_ >= 0) ::close(fd_);
            if (!committed_) {
                std::error_code ec;
                std::filesystem::remove(temp_, ec);
            }
        }
        FileWriter(const FileWriter&) = delete;
        FileWriter& operator=(const FileWriter&) = delete;
        using StoreWriter::append;

        void append(const std::vector<Part>& parts) override {  // writev, IOV_MAX parts a call
            std::vector<iovec> pending;
            pending.reserve(parts.size());
            for (const Part& p : parts)
                if (p.size > 0) pending.push_back({const_cast<std::uint8_t*>(p.data), p.size});
            for (std::size_t first = 0; first < pending.size();) {
                const int count = static_cast<int>(std::min<std::size_t>(pending.size() - first, IOV_MAX));
                const ssize_t n = ::writev(fd_, pending.data() + first, count);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) throw IOError("cannot write " + temp_ + ": " + std::strerror(n < 0 ? errno : ENOSPC));
                // Skip what was written; a short write leaves part of one part for the next call.
                auto left = static_cast<std::size_t>(n);
                while (first < pending.size() && left >= pending[first].iov_len) left -= pending[first++].iov_len;
                if (left > 0) {
                    pending[first].iov_base = static_cast<std::uint8_t*>(pending[first].iov_base) + left;
                    pending[first].iov_len -= left;
                }
            }
        }
        void commit() override {
            struct timespec now[2];
            ::clock_gettime(CLOCK_REALTIME, &now[0]);
            now[1] = now[0];
            const bool stamped = ::futimens(fd_, now) == 0;
            const int error = errno;
            const int closed = ::close(fd_);
            fd_ = -1;
            if (!stamped || closed != 0)
                throw IOError("cannot write " + temp_ + ": " + std::strerror(stamped ? errno : error));
            std::error_code ec;
            std::filesystem::rename(temp_, target_, ec);
            if (ec) throw IOError("cannot move " + temp_ + " to " + target_ + ": " + ec.message());
            committed_ = true;
        }

    private:
        std::string target_, temp_;
        int fd_ = -1;
        bool committed_ = false;
    };

    static std::string unique_suffix() {
        static std::atomic<std::uint64_t> counter{0};
        thread_local std::mt19937_64 rng{std::random_device{}()};
        return std::to_string(rng()) + "-" + std::to_string(counter++);
    }

    std::filesystem::path root_;
};

}  // namespace vx::io
