// The byte-level compressors of Zarr v3: zstd (with optional content checksum) and gzip (RFC 1952,
// not bare zlib). Errors name `what` (a file and chunk), since that is all a user can act on.
#pragma once

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "voxelytics/core/errors.hpp"

namespace vx::io {

using Bytes = std::vector<std::uint8_t>;

namespace detail {
// One zstd context per thread, reused: setting one up costs more than compressing a 32^3 chunk.
struct ZstdContexts {
    ZSTD_CCtx* compress = ZSTD_createCCtx();
    ZSTD_DCtx* decompress = ZSTD_createDCtx();
    ~ZstdContexts() {
        ZSTD_freeCCtx(compress);
        ZSTD_freeDCtx(decompress);
    }
};
inline ZstdContexts& zstd_contexts() {
    thread_local ZstdContexts contexts;
    return contexts;
}
}  // namespace detail

inline Bytes zstd_compress(const std::uint8_t* in, std::size_t n, int level, bool checksum) {
    ZSTD_CCtx* ctx = detail::zstd_contexts().compress;
    ZSTD_CCtx_reset(ctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, checksum ? 1 : 0);
    // Compress into per-thread scratch and return an exact-size copy: a result that kept the
    // worst-case capacity would hold as much memory as the uncompressed data.
    thread_local Bytes scratch;
    scratch.resize(ZSTD_compressBound(n));
    const std::size_t size = ZSTD_compress2(ctx, scratch.data(), scratch.size(), in, n);
    if (ZSTD_isError(size)) throw Error(std::string("zstd compression failed: ") + ZSTD_getErrorName(size));
    return Bytes(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(size));
}

/// Decompresses into `out` (resized; its capacity is reused, so callers keep it per thread).
inline void zstd_decompress(const std::uint8_t* in, std::size_t n, Bytes& out, const std::string& what) {
    const unsigned long long known = ZSTD_getFrameContentSize(in, n);
    if (known == ZSTD_CONTENTSIZE_ERROR) throw CorruptData(what + ": not a zstd frame");
    ZSTD_DCtx* ctx = detail::zstd_contexts().decompress;
    ZSTD_DCtx_reset(ctx, ZSTD_reset_session_only);
    if (known != ZSTD_CONTENTSIZE_UNKNOWN) {  // one call straight into the output
        out.resize(static_cast<std::size_t>(known));
        const std::size_t rc = ZSTD_decompressDCtx(ctx, out.data(), out.size(), in, n);
        if (ZSTD_isError(rc)) throw CorruptData(what + ": zstd: " + ZSTD_getErrorName(rc));
        if (rc != out.size()) throw CorruptData(what + ": zstd frame shorter than its declared size");
        return;
    }
    out.resize(n * 4 + 1024);
    ZSTD_inBuffer src{in, n, 0};
    std::size_t produced = 0;
    for (;;) {
        ZSTD_outBuffer dst{out.data() + produced, out.size() - produced, 0};
        const std::size_t rc = ZSTD_decompressStream(ctx, &dst, &src);
        produced += dst.pos;
        if (ZSTD_isError(rc)) throw CorruptData(what + ": zstd: " + ZSTD_getErrorName(rc));
        if (rc == 0) break;  // frame complete
        if (src.pos == src.size && dst.pos < dst.size) throw CorruptData(what + ": truncated zstd frame");
        if (produced == out.size()) out.resize(out.size() * 2);
    }
    out.resize(produced);
}

/// Decompresses a frame straight into `out` if it declares exactly `size` bytes of content
/// (false, nothing done, if it declares another size or none: use zstd_decompress then).
inline bool zstd_decompress_exact(const std::uint8_t* in, std::size_t n, std::uint8_t* out, std::size_t size,
                                  const std::string& what) {
    if (ZSTD_getFrameContentSize(in, n) != size) return false;
    ZSTD_DCtx* ctx = detail::zstd_contexts().decompress;
    ZSTD_DCtx_reset(ctx, ZSTD_reset_session_only);
    const std::size_t rc = ZSTD_decompressDCtx(ctx, out, size, in, n);
    if (ZSTD_isError(rc)) throw CorruptData(what + ": zstd: " + ZSTD_getErrorName(rc));
    if (rc != size) throw CorruptData(what + ": zstd frame shorter than its declared size");
    return true;
}

inline Bytes gzip_compress(const std::uint8_t* in, std::size_t n, int level) {
    z_stream s{};
    if (deflateInit2(&s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw Error("gzip: cannot initialise the compressor");
    Bytes out(deflateBound(&s, static_cast<uLong>(n)) + 32);
    s.next_in = const_cast<Bytef*>(in);
    s.avail_in = static_cast<uInt>(n);
    s.next_out = out.data();
    s.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&s, Z_FINISH);
    deflateEnd(&s);
    if (rc != Z_STREAM_END) throw Error("gzip compression failed");
    return Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(s.total_out));  // exact size, see zstd
}

/// Decompresses into `out` (resized, capacity reused) like zstd_decompress.
inline void gzip_decompress(const std::uint8_t* in, std::size_t n, Bytes& out, const std::string& what) {
    z_stream s{};
    if (inflateInit2(&s, 15 + 32) != Z_OK) throw Error("gzip: cannot initialise the decompressor");
    out.resize(std::max(out.capacity(), n * 4 + 1024));
    s.next_in = const_cast<Bytef*>(in);
    s.avail_in = static_cast<uInt>(n);
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        if (s.total_out == out.size()) out.resize(out.size() * 2);
        s.next_out = out.data() + s.total_out;
        s.avail_out = static_cast<uInt>(out.size() - s.total_out);
        rc = inflate(&s, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&s);
            throw CorruptData(what + ": gzip: " + (s.msg ? s.msg : "corrupt or truncated stream"));
        }
        if (rc == Z_OK && s.avail_in == 0 && s.avail_out != 0) {
            inflateEnd(&s);
            throw CorruptData(what + ": truncated gzip stream");
        }
    }
    out.resize(s.total_out);
    inflateEnd(&s);
}

}  // namespace vx::io
