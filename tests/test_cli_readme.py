"""README's "Running it for real" works as written (issue #12: it imported leads before any
command had created the campaign, so `leads import` failed with "no campaign").

The shell block is parsed from README.md and each step is run in a scratch directory, in
order, through the installed `dialer` command: `cp` copies the example config, every
`dialer` step but `run` (which needs SIP trunks) must exit 0. The example config's database
(sqlite:///var/dialer.db) is relative, so it lands in the scratch directory.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def _section_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Running it for real", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README 'Running it for real' has no ```bash block"
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _dialer() -> list[str]:
    script = Path(sys.executable).parent / "dialer"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dialer.cli"]


def test_readme_running_it_for_real_steps_run_in_order(tmp_path: Path) -> None:
    commands = _section_commands()
    names = [c[1] if c[0].endswith("dialer") else c[0] for c in commands]
    assert names[-1] == "run", "the README block should end with `dialer run`"
    (tmp_path / "leads.csv").write_text("phone,name\n+14155550123,Ada\n+14155550124,Bob\n",
                                        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env["COLUMNS"] = "200"
    ran = []
    for cmd in commands:
        if cmd[0] == "cp":
            shutil.copy(REPO / cmd[1], tmp_path / cmd[2])
            continue
        assert cmd[0] == ".venv/bin/dialer", f"unexpected step {cmd}"
        if cmd[1] == "run":
            continue
        res = subprocess.run([*_dialer(), *cmd[1:]], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120, check=False)
        assert res.returncode == 0, f"{shlex.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
        ran.append(cmd[1:3])
    assert ["leads", "import"] in ran
    assert ran.index(["db", "upgrade"]) < ran.index(["leads", "import"])
    res = subprocess.run([*_dialer(), "campaigns", "show", "spring-offer", "--config",
                          "dialer.toml"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert re.search(r"\b2\b", res.stdout), res.stdout  # both leads are in the campaign
