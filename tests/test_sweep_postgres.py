"""deeprnn sweep on a real PostgreSQL server: two sweep processes (two "machines", each with its own folder) join
one study through the database and share its trials. The server is Debian's postgresql-15 (any installed
version), started in a temporary folder, listening on 127.0.0.1 only, and stopped at the end."""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed (pip install -e '.[sweep]')")
psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[sweep]')")

from optuna.trial import TrialState  # noqa: E402


def postgres_programs():
    """(initdb, pg_ctl) of the newest installed PostgreSQL (Debian: /usr/lib/postgresql/VERSION/bin), or None."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name),
                         reverse=True):
        initdb, pg_ctl = Path(folder) / "initdb", Path(folder) / "pg_ctl"
        if initdb.is_file() and pg_ctl.is_file():
            return initdb, pg_ctl
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return (Path(initdb), Path(pg_ctl)) if initdb and pg_ctl else None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A fresh server and database ``sweeps``; its URL. PostgreSQL refuses to run as root: as root, the server
    runs as the ``postgres`` user in a folder that user owns."""
    programs = postgres_programs()
    if programs is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt install postgresql-15): no initdb and pg_ctl")
    initdb, pg_ctl = programs
    folder = Path(tempfile.mkdtemp(prefix="deeprnn-pg-"))
    prefix = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the PostgreSQL server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run(prefix + [str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}"
    subprocess.run(prefix + [str(pg_ctl), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w",
                             "start"], check=True, capture_output=True)
    try:
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as db:
            db.execute("CREATE DATABASE sweeps")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run(prefix + [str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_sweep_processes_share_one_study_through_postgresql(groove, tmp_path, postgres_url):
    space = tmp_path / "space.toml"
    space.write_text(f'data = "{groove}"\nmax_files = 3\nunits = 8\nembedding_dim = 4\nseq_len = 16\n'
                     'epochs = 15\nlr = {float = [1e-3, 3e-2], log = true}\n', encoding="utf-8")
    machines = [tmp_path / "machine-a" / "sweeps" / "shared", tmp_path / "machine-b" / "sweeps" / "shared"]
    sweeps = [subprocess.Popen([sys.executable, "-m", "deeprnn", "sweep", "--out", str(out), "--space", str(space),
                                "--trials", "6", "--workers", "1", "--storage", postgres_url, "--pruner", "none"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for out in machines]
    results = [sweep.communicate(timeout=120) for sweep in sweeps]
    for sweep, (stdout, stderr) in zip(sweeps, results):
        assert sweep.returncode == 0, stderr

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    finished = [trial for trial in study.trials if trial.state == TrialState.COMPLETE]
    assert 6 <= len(finished) <= 7  # two processes asking at the same instant may each start the last one
    folders = [Path(trial.user_attrs["folder"]) for trial in finished]
    assert len(set(folders)) == len(folders)  # one folder per trial: none ran twice
    for machine in machines:  # both took trials, each into its own folder, each a run folder
        mine = [folder for folder in folders if folder.parent.parent == machine]
        assert mine, f"{machine} ran no trial"
        assert all((folder / "best.npz").is_file() for folder in mine)
    assert all(f"{len(finished)} done" in stdout for stdout, _ in results)  # each saw the whole study at the end

    shown = subprocess.run([sys.executable, "-m", "deeprnn", "sweep", "show", str(machines[0]), "--storage",
                            postgres_url], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("| no |") == len(finished)
    assert (machines[0] / "history.png").is_file() and (machines[0] / "parallel.png").is_file()
