"""Every fault scenario of tests/faults, on both stacks where it applies, including the 60 s
trunk outage the test suite leaves out; prints one row per scenario and one summary line:

    faults: scenarios=N passed=N invariants_broken=0

Run: .venv/bin/python bench/faults.py   (after scripts/setup; ~7 minutes on 2 cores)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        report = Path(tmp) / "junit.xml"
        env = {**os.environ, "FAULTS_LONG": "1"}
        subprocess.run([sys.executable, "-m", "pytest", "tests/faults", "-q", "-p",
                        "no:cacheprovider", f"--junitxml={report}", "--timeout=180"],
                       cwd=ROOT, env=env, check=False)
        cases = ET.parse(report).getroot().iter("testcase")
        rows = []
        for c in cases:
            status = "passed"
            detail = ""
            for child in c:
                if child.tag in ("failure", "error"):
                    status, detail = "failed", child.get("message", "")
                elif child.tag == "skipped":
                    msg = child.get("message", "")
                    status = "xfail" if child.get("type") == "pytest.xfail" else "skipped"
                    detail = msg
            rows.append((c.get("name", "?"), status, float(c.get("time", "0")), detail))
    print(f"{'scenario':60} {'status':8} {'seconds':>8}")
    for name, status, secs, detail in rows:
        print(f"{name:60} {status:8} {secs:8.1f}  {detail[:80]}")
    ran = [r for r in rows if r[1] != "skipped"]
    broken = sum(1 for r in rows if "invariant(s) broken" in r[3])
    print(f"faults: scenarios={len(ran)} passed={sum(1 for r in ran if r[1] == 'passed')} "
          f"invariants_broken={broken}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
