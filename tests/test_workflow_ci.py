"""CI runs what the README tells a new user to run (issue 7 item 3).

`.ci/run` must contain README Quickstart command 2 verbatim, and command 1's
install and snakemake commands in a venv of its own without the test extra
(so a runtime dependency missing from pyproject.toml fails CI).
"""

import re

from test_workflow_helpers import REPO


def _quickstart_commands():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [line for block in blocks for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, commands
    return commands


def _ci_sections():
    text = (REPO / ".ci" / "run").read_text()
    return text, {m.group(1): m.group(2) for m in re.finditer(r"# --- (\d)\. (.*?)(?=\n# --- \d\. |\Z)", text, flags=re.S)}


def test_ci_runs_readme_command_2_verbatim():
    command2 = _quickstart_commands()[1]
    text, _ = _ci_sections()
    assert "pip install -e '.[test]'" in command2
    assert any(line.startswith(command2) for line in text.splitlines()), command2


def test_ci_runs_readme_command_1_without_the_test_extra():
    command1 = _quickstart_commands()[0]
    steps = [s.strip() for s in command1.split("&&")]
    assert steps[2] == "pip install -e ." and steps[3].startswith("snakemake --cores 2"), steps
    _, sections = _ci_sections()
    main = next((body for body in sections.values() if "README Quickstart command 1" in body), None)
    assert main is not None, "no section '# --- N. README Quickstart command 1 ...' in .ci/run"
    lines = [line.strip() for line in main.splitlines()]
    assert "python3 -m venv .venv-main" in lines and ". .venv-main/bin/activate" in lines
    assert "pip install -e ." in lines and not any("[test]" in line for line in lines)
    assert any(line.startswith("snakemake ") and line.endswith("--cores 2") for line in lines)
    assert any(line.startswith("snakemake ") and "--report results/report.html" in line for line in lines)
    assert ".venv-main/" in (REPO / ".gitignore").read_text().split()
