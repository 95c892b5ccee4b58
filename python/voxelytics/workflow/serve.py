"""``voxelytics serve DIR``: a folder of datasets over HTTP, with CORS and byte ranges (what
Neuroglancer needs to read sharded Zarr v3 straight from the files)."""

from __future__ import annotations

import functools
import http.server
import os
import re


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Access-Control-Allow-Origin: *`` and single ``Range: bytes=a-b`` requests."""

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Range")
        self.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length")
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def do_OPTIONS(self):
        self.send_response(204)
        self.end_headers()

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        path = self.translate_path(self.path)
        if not match or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        first, last = match.groups()
        if first == "":  # the last N bytes (a shard index)
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(size - 1, int(last)) if last else size - 1
        if start >= size or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        f = open(path, "rb")  # noqa: SIM115  (closed by copyfile's caller, as in the base class)
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        self._remaining = None
        while remaining > 0:
            chunk = source.read(min(remaining, 1 << 20))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)


def make_server(folder: str, port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} is not a folder")
    handler = functools.partial(Handler, directory=os.path.abspath(folder))
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve(folder: str, port: int = 8000, host: str = "127.0.0.1") -> None:
    server = make_server(folder, port, host)
    print(f"serving {os.path.abspath(folder)} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
