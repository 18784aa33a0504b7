"""The README's report pictures, taken from the real thing: a month of simulated readings (the
report benchmark's generator, 12 devices) -> `gateway-agent report KIND -o FILE.html` (the
real CLI, daemon stopped) -> Debian's headless chromium -> docs/report-KIND.png.

`python scripts/report_pictures.py [--out docs]`; needs chromium (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hil.bench.reports import MONTH, build  # noqa: E402

KINDS = ("legionella", "co2", "bins", "gullies")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--hide-scrollbars"]  # fmt: skip


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("chromium is needed: apt-get install chromium")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--devices", type=int, default=12)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ga-report-pictures-"))
    state = tmp / "state"
    state.mkdir()
    build(state / "agent.db", a.devices, 15)
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f'[agent]\ngateway_id = "fife-ps-017"\nstate_dir = "{state}"\n'
        '[[sources]]\ntype = "gwmp"\nlisten = "127.0.0.1:1700"\n[upstream]\nenabled = false\n'
    )
    for kind in KINDS:
        html = tmp / f"{kind}.html"
        subprocess.run(
            [sys.executable, "-m", "gateway_agent", "-c", str(cfg), "report", kind,
             "--month", MONTH, "-o", str(html)],
            check=True, cwd=REPO,
        )  # fmt: skip
        png = a.out / f"report-{kind}.png"
        subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium'}",
             "--window-size=900,1400", f"--screenshot={png}", html.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        print(f"{kind}: {png}")  # noqa: T201 (a script: its output is for the user)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
