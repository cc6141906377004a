"""Storage URLs: bad ones fail in one line with exit code 2, and a password is never shown."""

from __future__ import annotations

import pytest
from conftest import ROOT, run_cli, write_toml

SECRET = "hunter2-s3cret"

TINY = """
[study]
name = "tiny"
sampler = "grid"
pruner = "none"
[dataset]
name = "xor"
n_points = 200
[params]
epochs = 2
units = [2, 4]
"""


def with_password(url: str, password: str = SECRET) -> str:
    """``postgresql+psycopg2://postgres@host/db`` -> ``...://postgres:PASSWORD@host/db``."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:{password}@{host}"


def assert_one_line_error(done, *expected: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr


@pytest.mark.parametrize("url,masked", [
    ("postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
    ("postgresql+psycopg2://u:p@ss:w/rd@host:5432/db", "postgresql+psycopg2://u:***@host:5432/db"),
    ("mysql+pymysql://:only@host/db", "mysql+pymysql://:***@host/db"),
    ("postgresql://host/db?user=u&password=pw&sslmode=require",
     "postgresql://host/db?user=u&password=***&sslmode=require"),
    ("error at 'postgresql://u:pw@h/db': refused", "error at 'postgresql://u:***@h/db': refused"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
    ("sqlite:///studies/fcnn_opt.db", "sqlite:///studies/fcnn_opt.db"),
])
def test_mask_url(url, masked):
    from fcnn_opt.store.storages import mask_url

    assert mask_url(url) == masked


def test_urls_get_an_installed_driver():
    from fcnn_opt.store.storages import with_driver

    assert with_driver("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_driver("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_driver("mysql://root@h/test") == "mysql+pymysql://root@h/test"
    assert with_driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("name,safe", [("tpe", "tpe"), ("../../etc/passwd", "_.._etc_passwd"),
                                       ("a b/c\\d", "a_b_c_d"), (".hidden", "hidden"), ("", "study"),
                                       ("small.seed=4", "small.seed=4")])
def test_study_names_in_file_paths_are_sanitised(name, safe):
    from fcnn_opt.store.storages import safe_filename

    assert safe_filename(name) == safe
    assert "/" not in safe_filename(name) and not safe_filename(name).startswith(".")


def test_worker_processes_never_carry_the_url_on_their_command_line():
    from fcnn_opt.search.workers import worker_command

    command = worker_command("-odd name", 3, 5.0)
    assert "--study-name=-odd name" in command and "--worker-id=3" in command
    assert not any("://" in part or "journal:" in part for part in command)
    assert {"--batch-trials=64", "--device=cuda"} <= set(worker_command("x", 0, None, 64, "cuda"))


@pytest.mark.parametrize("command", [["studies"], ["trials", "--study-name", "x"],
                                     ["worker", "--study-name", "x"], ["study", "--create-only"]])
def test_unreachable_server(tmp_path, command):
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/nowhere"
    done = run_cli(*command, "--storage", url, cwd=tmp_path, timeout=60)
    assert_one_line_error(done, "Cannot open storage postgresql+psycopg2://postgres:***@127.0.0.1:1/nowhere")
    assert SECRET not in done.stdout + done.stderr


def test_malformed_urls(tmp_path):
    for url, expected in (("nonsense", "is malformed"), ("postgresql://u:pw@host:notaport/db", "Cannot open storage"),
                          ("journal:", "names no file"), ("oracle+nodriver://u:pw@h/db", "Cannot open storage")):
        done = run_cli("studies", "--storage", url, cwd=tmp_path)
        assert_one_line_error(done, expected)
        assert ":pw@" not in done.stderr


@pytest.mark.postgres
def test_missing_database_and_unknown_role(tmp_path, pg_url):
    base = pg_url.rsplit("/", 1)[0]
    done = run_cli("studies", "--storage", with_password(f"{base}/no_such_database_here"), cwd=tmp_path)
    assert_one_line_error(done, 'database "no_such_database_here" does not exist')
    assert SECRET not in done.stderr
    host = base.split("@", 1)[1]
    done = run_cli("studies", "--storage", f"postgresql://nobody_fcnn:{SECRET}@{host}/postgres", cwd=tmp_path)
    assert_one_line_error(done, 'role "nobody_fcnn" does not exist')
    assert SECRET not in done.stderr


def test_wrong_password(tmp_path, mysql_url):
    done = run_cli("studies", "--storage", with_password(mysql_url), cwd=tmp_path)
    assert_one_line_error(done, "Access denied")
    assert SECRET not in done.stderr and ":***@" in done.stderr


@pytest.mark.postgres
def test_missing_study(tmp_path, pg_url):
    url = with_password(pg_url)  # the server trusts local users, so any password is accepted
    config = write_toml(tmp_path / "tiny.toml", TINY)
    assert run_cli("study", "--config", config, "--storage", url, "--create-only", cwd=tmp_path).returncode == 0
    for command in (["worker", "--study-name", "ghost"], ["trials", "--study-name", "ghost"],
                    ["best", "--study-name", "ghost"]):
        done = run_cli(*command, "--storage", url, cwd=tmp_path)
        assert_one_line_error(done, "No study named 'ghost'", "Studies there: tiny")
        assert SECRET not in done.stderr


@pytest.mark.postgres
def test_a_password_is_never_printed(tmp_path, pg_url):
    url = with_password(pg_url)
    config = write_toml(tmp_path / "tiny.toml", TINY)
    runs = [
        run_cli("study", "--config", config, "--storage", url, "--create-only", cwd=tmp_path),
        run_cli("worker", "--storage", url, "--study-name", "tiny", cwd=tmp_path),
        run_cli("study", "--config", config, "--storage", url, "--study-name", "tiny2", "--workers", 2, cwd=tmp_path),
        run_cli("studies", "--storage", url, cwd=tmp_path),
        run_cli("trials", "--study-name", "tiny", "--storage", url, cwd=tmp_path),
        run_cli("best", "--study-name", "tiny2", cwd=tmp_path, OPTUNA_STORAGE=url),
    ]
    for done in runs:
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout + done.stderr
    assert ":***@" in runs[0].stdout and ":***@" in runs[2].stdout
    assert "2 complete" in runs[1].stdout + runs[2].stdout


def test_study_without_a_stored_definition_is_refused_by_worker(tmp_path, sqlite_url):
    import optuna

    optuna.create_study(study_name="plain", storage=sqlite_url)
    done = run_cli("worker", "--study-name", "plain", "--storage", sqlite_url, cwd=tmp_path)
    assert_one_line_error(done, "has no stored definition", "--create-only")


def test_bad_heartbeat_settings(tmp_path, sqlite_url):
    config = write_toml(tmp_path / "tiny.toml", TINY)
    done = run_cli("study", "--config", config, "--storage", sqlite_url, cwd=tmp_path,
                   FCNN_OPT_HEARTBEAT="5", FCNN_OPT_GRACE="2")
    assert_one_line_error(done, "$FCNN_OPT_GRACE (2 s) must be longer than the heartbeat interval")
    done = run_cli("study", "--config", config, "--storage", sqlite_url, cwd=tmp_path, FCNN_OPT_HEARTBEAT="often")
    assert_one_line_error(done, "$FCNN_OPT_HEARTBEAT must be a whole number of seconds")


@pytest.mark.parametrize("option,value,expected", [("--workers", "0", "--workers must be >= 1")])
def test_bad_worker_options(tmp_path, option, value, expected):
    assert_one_line_error(run_cli("study", option, value, cwd=tmp_path), expected)
    done = run_cli("study", "--workers", "2", "--create-only", cwd=tmp_path)
    assert_one_line_error(done, "--create-only runs nothing")


def test_foreign_journal_file_is_refused_and_left_untouched(tmp_path):
    log = tmp_path / "notes.txt"
    log.write_text("my notes, not a journal\n")
    done = run_cli("studies", "--storage", f"journal:{log}", cwd=tmp_path)
    assert_one_line_error(done, "is not an Optuna journal file")
    assert log.read_text() == "my notes, not a journal\n"


def test_journal_file_study_and_worker(tmp_path):
    url = f"journal:{tmp_path / 'studies' / 'tiny.log'}"
    config = write_toml(tmp_path / "tiny.toml", TINY)
    assert run_cli("study", "--config", config, "--storage", url, "--create-only", cwd=tmp_path).returncode == 0
    done = run_cli("worker", "--storage", url, "--study-name", "tiny", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 complete, 0 pruned, 0 failed" in done.stdout


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_heartbeats_start_after_one_interval_and_beat_for_every_trial(tmp_path, monkeypatch, kind):
    """A trial shorter than the heartbeat interval writes no heartbeat; a longer one beats,
    every trial of a batch in the same write."""
    import time

    import optuna

    from fcnn_opt.search import ledger
    from fcnn_opt.store.storages import open_storage

    monkeypatch.setenv("FCNN_OPT_HEARTBEAT", "1")
    monkeypatch.setenv("FCNN_OPT_GRACE", "3")
    url = f"sqlite:///{tmp_path / 'beat.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'beat.log'}"
    study = optuna.create_study(storage=open_storage(url), study_name="beat")
    trials = [study.ask() for _ in range(3)]
    ids = [t._trial_id for t in trials]

    def beats():
        return [r.beat for r in ledger.rows(study)]

    started = time.monotonic()
    with ledger.heartbeat(study, ids[:1]):
        time.sleep(0.3)
    if time.monotonic() - started < 1:  # a block shorter than the interval (unless the machine stalled)
        assert beats() == [None, None, None]
    with ledger.heartbeat(study, ids):
        deadline = time.monotonic() + 120  # beats are awaited, not timed: this only bounds a broken run
        while not all(beat is not None for beat in beats()) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert all(beat is not None for beat in beats()), beats()


def test_bulk_journal_writes_to_a_trial_failed_meanwhile_raise_once_and_leave_no_trap(tmp_path):
    """Another worker failed the trial as stale while this one ran it: the bulk write is
    refused once, the trial stays failed, and later readers of the journal see no error."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from fcnn_opt.store.optuna_internals import write_trial_records

    path = str(tmp_path / "j.log")
    ours = JournalStorage(JournalFileBackend(path))
    study = optuna.create_study(storage=ours, study_name="s")
    trial = study.ask()
    theirs = JournalStorage(JournalFileBackend(path))
    theirs.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    records = [(trial._trial_id, {step: 1.0 / step for step in range(1, 6)}, {"a": 1, "b": 2}, {"c": 3})]
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        write_trial_records(ours, records, [(trial._trial_id, TrialState.COMPLETE, 0.2)])
    assert [t.state for t in ours.get_all_trials(study._study_id)] == [TrialState.FAIL]
    assert study.trials[0].intermediate_values == {} and study.trials[0].user_attrs == {}


@pytest.mark.parametrize("url_fixture", ["sqlite_url", pytest.param("pg_url", marks=pytest.mark.postgres), "mysql_url"])
def test_a_bulk_write_repeated_after_its_commit_replaces_its_rows(request, url_fixture, monkeypatch):
    """A write retried after a commit whose answer was lost finds its rows already there: the
    first try fails on them and is rolled back, the second replaces them; a write of new rows
    takes one try. Every value reads back as last written, through Optuna's own API."""
    import optuna
    from optuna.trial import TrialState

    from fcnn_opt.store import optuna_internals as internals
    from fcnn_opt.store.storages import open_storage

    url = request.getfixturevalue(url_fixture)
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="w")
    trial = study.ask()
    storage, trial_id = internals.storage_of(study), trial._trial_id
    tries, write = [], internals._write_rdb  # each try's replace argument

    def counted(*args, replace):
        tries.append(replace)
        return write(*args, replace=replace)

    monkeypatch.setattr(internals, "_write_rdb", counted)
    first = [(trial_id, {0: 1.0, 1: 0.5}, {"a": 1}, {"s": "x"})]
    internals.write_trial_records(storage, first)
    assert tries == [False]  # new rows: one try
    again = [(trial_id, {0: 1.0, 1: 0.25, 2: 0.125}, {"a": 2, "b": [3]}, {"s": "y"})]
    internals.write_trial_records(storage, again, [(trial_id, TrialState.COMPLETE, 0.125)])
    assert tries == [False, False, True]  # the repeat: a failed try, then one that replaces
    stored = optuna.load_study(study_name="w", storage=url).trials[0]
    assert stored.state == TrialState.COMPLETE and stored.value == 0.125
    assert stored.intermediate_values == {0: 1.0, 1: 0.25, 2: 0.125}
    assert stored.user_attrs == {"a": 2, "b": [3]} and stored.system_attrs["s"] == "y"


def test_a_database_that_refuses_writes_ends_the_study_with_one_line(tmp_path):
    """A storage that opens but cannot be written (a SQLite file opened read-only): creating
    the study is retried for $FCNN_OPT_DB_RETRY seconds, then one line and exit code 1, never
    a traceback; the file keeps the study it held."""
    import optuna

    config = tmp_path / "s.toml"
    config.write_text((ROOT / "studies" / "seed_grid.toml").read_text())
    made = run_cli("study", "--config", config, "--storage", f"sqlite:///{tmp_path / 's.db'}", "--create-only",
                   cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    read_only = f"sqlite:///file:{tmp_path / 's.db'}?mode=ro&uri=true"
    done = run_cli("study", "--config", ROOT / "studies" / "minute.toml", "--storage", read_only,
                   "--n-trials", "2", "--no-progress", cwd=tmp_path, FCNN_OPT_DB_RETRY="1")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("fcnn_opt study: error: the database kept failing and retrying gave up ($FCNN_OPT_DB_RETRY = 1 s): "
                    "(sqlite3.OperationalError) attempt to write a readonly database")
    names = [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 's.db'}")]
    assert names == ["seed_grid"]
