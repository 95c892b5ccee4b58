"""Opens a voxelytics run report in headless Chromium: prints how many of its images decoded and
how many tables it shows, and saves a screenshot (the one in docs/ is of `voxelytics demo`'s).

Run: python3 scripts/screenshot_report.py REPORT.html OUT.png [--height 2400]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def open_report(report: str, screenshot: str | None = None, height: int = 2400) -> dict:
    """``{"images", "images_shown", "tables"}`` as the loaded page counts them."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (apt-get install chromium)")
    base = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size=1280,{height}",
    ]
    url = f"file://{report}"
    dom = subprocess.run(
        base + ["--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    body = re.search(r"<body([^>]*)>", dom)
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body.group(1) if body else ""))
    if screenshot:
        subprocess.run(
            base + [f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True
        )
    return {"images": int(attrs.get("images", -1)), "images_shown": int(attrs.get("images-shown", -1)),
            "tables": int(attrs.get("tables", -1))}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report")
    p.add_argument("out")
    p.add_argument("--height", type=int, default=2400)
    args = p.parse_args()
    print(json.dumps(open_report(args.report, args.out, args.height)))


if __name__ == "__main__":
    sys.exit(main())
