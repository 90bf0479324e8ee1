"""README promises two set-up commands; CI must run the test one and nothing a newcomer wouldn't."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^\s*(\./run \w+.*?)\s*$", text, flags=re.M)


def test_readme_gives_the_demo_and_test_commands() -> None:
    commands = readme_commands()
    assert "./run demo" in commands
    assert "./run demo --headless" in commands
    assert "./run test" in commands


def test_ci_calls_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    body = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert body[-1] == "exec ./run test"
    # nothing else that installs or runs things behind the newcomer's back
    assert not any(word in " ".join(body) for word in ("pip ", "apt-get", "pytest"))


def test_run_script_knows_both_commands() -> None:
    out = subprocess.run([str(ROOT / "run"), "help"], capture_output=True, text=True, check=True)
    assert "./run demo" in out.stdout and "./run test" in out.stdout
    bad = subprocess.run([str(ROOT / "run"), "nonsense"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command 'nonsense'" in bad.stderr
