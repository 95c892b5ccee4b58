// The byte-level compressors of Zarr v3: zstd (with optional content checksum) and gzip (RFC 1952,
// not bare zlib). Errors name `what` (a file and chunk), since that is all a user can act on.
#pragma once

#include <zlib.h>
#include <zstd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "voxelytics/core/errors.hpp"

namespace vx::io {

using Bytes = std::vector<std::uint8_t>;

inline Bytes zstd_compress(const Bytes& in, int level, bool checksum) {
    ZSTD_CCtx* ctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, checksum ? 1 : 0);
    Bytes out(ZSTD_compressBound(in.size()));
    const std::size_t n = ZSTD_compress2(ctx, out.data(), out.size(), in.data(), in.size());
    ZSTD_freeCCtx(ctx);
    if (ZSTD_isError(n)) throw Error(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
    out.resize(n);
    return out;
}

inline Bytes zstd_decompress(const Bytes& in, const std::string& what) {
    const unsigned long long known = ZSTD_getFrameContentSize(in.data(), in.size());
    if (known == ZSTD_CONTENTSIZE_ERROR) throw CorruptData(what + ": not a zstd frame");
    ZSTD_DCtx* ctx = ZSTD_createDCtx();
    Bytes out(known != ZSTD_CONTENTSIZE_UNKNOWN ? static_cast<std::size_t>(known) : in.size() * 4 + 1024);
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    std::size_t produced = 0;
    for (;;) {
        ZSTD_outBuffer dst{out.data() + produced, out.size() - produced, 0};
        const std::size_t rc = ZSTD_decompressStream(ctx, &dst, &src);
        produced += dst.pos;
        if (ZSTD_isError(rc)) {
            ZSTD_freeDCtx(ctx);
            throw CorruptData(what + ": zstd: " + ZSTD_getErrorName(rc));
        }
        if (rc == 0) break;  // frame complete
        if (src.pos == src.size && dst.pos < dst.size) {
            ZSTD_freeDCtx(ctx);
            throw CorruptData(what + ": truncated zstd frame");
        }
        if (produced == out.size()) out.resize(out.size() * 2);
    }
    ZSTD_freeDCtx(ctx);
    out.resize(produced);
    return out;
}

inline Bytes gzip_compress(const Bytes& in, int level) {
    z_stream s{};
    if (deflateInit2(&s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw Error("gzip: cannot initialise the compressor");
    Bytes out(deflateBound(&s, static_cast<uLong>(in.size())) + 32);
    s.next_in = const_cast<Bytef*>(in.data());
    s.avail_in = static_cast<uInt>(in.size());
    s.next_out = out.data();
    s.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&s, Z_FINISH);
    out.resize(s.total_out);
    deflateEnd(&s);
    if (rc != Z_STREAM_END) throw Error("gzip compression failed");
    return out;
}

inline Bytes gzip_decompress(const Bytes& in, const std::string& what) {
    z_stream s{};
    if (inflateInit2(&s, 15 + 32) != Z_OK) throw Error("gzip: cannot initialise the decompressor");
    Bytes out(in.size() * 4 + 1024);
    s.next_in = const_cast<Bytef*>(in.data());
    s.avail_in = static_cast<uInt>(in.size());
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
    return out;
}

}  // namespace vx::io
