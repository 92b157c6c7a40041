"""Throwaway PostgreSQL servers for tests: `initdb` + `pg_ctl` in a temporary directory.

`PgCluster.start(base)` creates a fresh cluster (superuser `maillist`, UTF8, C locale so text
sorts bytewise as in SQLite), starts it listening on 127.0.0.1 only, on a free port, with no
Unix socket, and `trust` authentication for loopback TCP (the only `pg_hba.conf` line).
`new_database()` creates a database on it (from template0, UTF8, C collation) and returns its
`postgresql://` URL; the superuser can `CREATE EXTENSION citext` in it. `stop()` shuts it down
(`pg_ctl stop -m immediate`, then SIGKILL by PID if anything is still alive). Every wait has a
timeout.

PostgreSQL refuses to run as root. When the tests run as root (CI does), every PostgreSQL
command runs as an unprivileged user, `postgres` (made by Debian's package) or else `nobody`,
through `runuser -u USER --` (or `setpriv`). Its files must then be reachable by that user:

* If every parent of `base` is searchable by that user, the cluster lives in a new directory
  under `base` (a `chmod o+x` is added to `base` itself, nothing else), owned by that user.
* Otherwise (pytest's `/tmp/pytest-of-root` is mode 0700, so as root this is the usual case)
  it lives in `tempfile.mkdtemp(prefix="maillist-pg-")` in the system temporary directory, and
  `stop()` copies the server log into `base` and deletes that directory.

The server log is `postgres.log` in the data directory. initdb runs with `--no-sync` (only
its own final flush is skipped; the server keeps `fsync` and `synchronous_commit` on). The
server is detached from the test process (pg_ctl's way): whoever starts a cluster must stop
it, e.g. in a fixture's teardown, or it outlives the test run. `unavailable_reason()` says, without
starting anything, why a cluster cannot be started here (for `pytest.skip`), or None.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from psycopg import sql

SUPERUSER = "maillist"
HOST = "127.0.0.1"
ADMIN_DB = "postgres"
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
UNPRIVILEGED_USERS = ("postgres", "nobody")
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
TEMP_PREFIX = "maillist-pg-"
LOG_NAME = "postgres.log"
# Appended to postgresql.conf. fsync and synchronous_commit keep their defaults (on).
SERVER_SETTINGS = f"""
# Added by maillist's tests/pgserver.py
listen_addresses = '{HOST}'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
"""
HBA = f"host all all {HOST}/32 trust\n"
COMMAND_TIMEOUT = 60.0  # a single initdb, pg_ctl, pg_config when no overall deadline is shorter
STOP_TIMEOUT = 20.0  # pg_ctl stop, then waiting for the processes to be gone
KILL_TIMEOUT = 10.0  # after SIGKILL
CONNECT_TIMEOUT = 10  # seconds, libpq's connect_timeout
STATEMENT_TIMEOUT_MS = 60_000  # CREATE / DROP DATABASE on the admin connection
PORT_CLASH = re.compile(r"could not bind|Address already in use|could not create any TCP/IP")


class PgError(RuntimeError):
    """PostgreSQL could not be set up, started or used."""


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/VERSION/bin holding initdb (Debian's layout); failing
    that, the directory `initdb` on PATH really lives in. None if PostgreSQL is not installed."""
    found: list[tuple[tuple[int, ...], Path]] = []
    if DEBIAN_PG_ROOT.is_dir():
        for version_dir in DEBIAN_PG_ROOT.iterdir():
            bin_dir = version_dir / "bin"
            if not (bin_dir / "initdb").is_file():
                continue
            try:
                version = tuple(int(part) for part in version_dir.name.split("."))
            except ValueError:
                continue
            found.append((version, bin_dir))
    if found:
        return max(found)[1]
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    return None


def unavailable_reason() -> str | None:
    """None if a cluster can be started here, else a one-line reason. Starts nothing."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return "PostgreSQL is not installed: apt-get install postgresql"
    for name in REQUIRED_BINARIES:
        if not os.access(bin_dir / name, os.X_OK):
            return f"PostgreSQL in {bin_dir} has no runnable {name}"
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg (3) is not installed: pip install 'psycopg[binary]'"
    if os.geteuid() == 0:
        if _unprivileged_user() is None:
            names = " or ".join(UNPRIVILEGED_USERS)
            return f"running as root and there is no {names} user to run PostgreSQL as"
        if _switch_user_tool() is None:
            return "running as root and neither runuser nor setpriv is installed"
    share = _share_dir(bin_dir)
    if share is not None and not (share / "extension" / "citext.control").is_file():
        return f"PostgreSQL's citext extension is missing from {share}: install contrib"
    return None


class PgCluster:
    """A throwaway PostgreSQL cluster: initdb + pg_ctl in a temporary directory, listening on
    127.0.0.1 only on a free port, run as an unprivileged user. Use `start()` to make one;
    it is also a context manager that stops it."""

    def __init__(
        self, bin_dir: Path, base: Path, root: Path, owns_root: bool, user: pwd.struct_passwd | None
    ) -> None:
        self.bin_dir = bin_dir
        self.base = base
        self.root = root  # the cluster's directory, owned by `user`; holds data/
        self.owns_root = owns_root  # outside base: deleted by stop()
        self.user = user  # who PostgreSQL runs as; None: the current user
        self.data_dir = root / "data"
        self.log_path = self.data_dir / LOG_NAME
        self.port = 0
        self.pid: int | None = None  # the postmaster's
        self._stopped = False

    @property
    def url(self) -> str:
        """The admin database's URL."""
        return self._db_url(ADMIN_DB)

    @classmethod
    def start(cls, base: Path, timeout: float = 60.0) -> PgCluster:
        """initdb a new cluster for `base` (a test's tmp_path, say) and start it. Raises PgError
        (with initdb's output or the server log's tail) if that fails within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PgError("PostgreSQL is not installed: apt-get install postgresql")
        base = base.resolve()
        base.mkdir(parents=True, exist_ok=True)
        user = None
        if os.geteuid() == 0:
            user = _unprivileged_user()
            if user is None:
                raise PgError("running as root and there is no unprivileged user for PostgreSQL")
        root, owns_root = _make_root(base, user)
        cluster = cls(bin_dir, base, root, owns_root, user)
        try:
            cluster._initdb(deadline)
            cluster._start_server(deadline)
        except BaseException:
            with contextlib.suppress(Exception):
                cluster.stop()
            raise
        return cluster

    def new_database(self, name: str | None = None) -> str:
        """CREATE DATABASE (by default a fresh name, `t_` + 12 hex digits): UTF8, C collation,
        from template0. Returns its postgresql:// URL."""
        from psycopg import sql

        if name is None:
            name = "t_" + uuid.uuid4().hex[:12]
        query = sql.SQL(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        ).format(sql.Identifier(name))
        self._admin(query)
        return self._db_url(name)

    def drop_database(self, url: str) -> None:
        """DROP DATABASE IF EXISTS, disconnecting whoever is still connected to it."""
        from psycopg import sql

        parts = urlsplit(url)
        if (parts.hostname, parts.port) != (HOST, self.port):
            raise ValueError(f"{url} is not a database of the cluster at {self.url}")
        name = unquote(parts.path.lstrip("/"))
        if name in ("", ADMIN_DB, "template0", "template1"):
            raise ValueError(f"refusing to drop {name!r}")
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:
        """Stop the server (pg_ctl stop -m immediate, bounded), then SIGKILL the postmaster and
        its children by PID if they are still there. Idempotent; never raises for a server that
        is already gone."""
        if self._stopped:
            return
        self._stopped = True
        try:
            pid = self.pid if self.pid is not None else self._read_pid()
            stopped = True
            if (self.data_dir / "postmaster.pid").exists():
                cmd = [self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate"]
                cmd += ["-w", "-t", str(int(STOP_TIMEOUT))]
                try:
                    stopped = self._run(cmd, timeout=STOP_TIMEOUT + 5).returncode == 0
                except (subprocess.TimeoutExpired, OSError):
                    stopped = False
            if pid is not None:
                # pg_ctl returns once postmaster.pid is gone, just before the process exits.
                self._make_gone(pid, grace=STOP_TIMEOUT if stopped else 0.0)
        finally:
            if self.owns_root:
                self._keep_log()
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<PgCluster {self.url} data={self.data_dir} pid={self.pid}>"

    # Internals

    def _db_url(self, name: str) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{quote(name, safe='')}"

    def _admin(self, query: sql.Composed) -> None:
        import psycopg

        with psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        ) as conn:
            conn.execute(query)

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _run(self, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL command as the cluster's user, stdout and stderr together."""
        if self.user is not None:
            cmd = _as_user(self.user) + cmd
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            cmd,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _initdb(self, deadline: float) -> None:
        cmd = [self._bin("initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust"]
        cmd += ["--encoding=UTF8", "--locale=C", "--no-sync"]
        try:
            proc = self._run(cmd, timeout=_remaining(deadline))
        except subprocess.TimeoutExpired as e:
            raise PgError(f"initdb did not finish in time: {cmd}") from e
        if proc.returncode != 0:
            raise PgError(f"initdb failed ({proc.returncode}):\n{proc.stdout}")
        # Written by us as root or as the cluster's user: either way the server can read them.
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(SERVER_SETTINGS)
        (self.data_dir / "pg_hba.conf").write_text(HBA)

    def _start_server(self, deadline: float) -> None:
        for attempt in range(2):
            self.port = _free_port()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            wait = max(1, math.ceil(_remaining(deadline)))
            cmd = [self._bin("pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_path)]
            cmd += ["-o", f"-p {self.port}", "-w", "-t", str(wait)]
            try:
                proc = self._run(cmd, timeout=wait + 10)
            except subprocess.TimeoutExpired as e:
                raise PgError(f"pg_ctl start hung:\n{self._log_tail()}") from e
            if proc.returncode == 0:
                self.pid = self._read_pid()
                return
            new_log = self._log_text()[log_offset:]
            if attempt == 0 and PORT_CLASH.search(new_log) and self._read_pid() is None:
                continue  # someone took the port between _free_port() and the bind: again
            raise PgError(
                f"pg_ctl start failed ({proc.returncode}): {proc.stdout.strip()}\n"
                f"{self.log_path}:\n{self._log_tail()}"
            )

    def _read_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first.strip())
        except (OSError, ValueError):
            return None

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _log_tail(self, lines: int = 30) -> str:
        return "\n".join(self._log_text().splitlines()[-lines:])

    def _make_gone(self, pid: int, grace: float) -> None:
        """Wait up to `grace` seconds for the postmaster to exit, then SIGKILL it and its
        children."""
        if _wait_gone([pid], grace) or not self._is_our_postmaster(pid):
            return
        victims = [pid, *_children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        if not _wait_gone(victims, KILL_TIMEOUT):
            raise PgError(f"PostgreSQL processes {victims} survived SIGKILL")

    def _is_our_postmaster(self, pid: int) -> bool:
        """Not some later process that was given the same PID."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return _alive(pid)  # no /proc (or already gone): trust the PID
        except OSError:
            return False
        return os.fsencode(str(self.data_dir)) in cmdline

    def _keep_log(self) -> None:
        """Copy the server log into base before the directory holding it is deleted."""
        if self.log_path.exists():
            with contextlib.suppress(OSError):
                shutil.copyfile(self.log_path, self.base / f"postgres-{self.port}.log")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise PgError("timed out starting PostgreSQL")
    return left


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _unprivileged_user() -> pwd.struct_passwd | None:
    for name in UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return entry
    return None


def _switch_user_tool() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
    for name in ("runuser", "setpriv"):
        found = shutil.which(name, path=path)
        if found is not None:
            return found
    return None


def _as_user(user: pwd.struct_passwd) -> list[str]:
    """The command prefix that runs what follows as `user` (we are root)."""
    tool = _switch_user_tool()
    if tool is None:
        raise PgError("running as root and neither runuser nor setpriv is installed")
    if Path(tool).name == "runuser":
        return [tool, "-u", user.pw_name, "--"]
    return [tool, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]


def _searchable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` can reach into `path` and all its parents (by mode bits; ACLs ignored)."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in (path, *path.parents):
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _make_root(base: Path, user: pwd.struct_passwd | None) -> tuple[Path, bool]:
    """A new directory for the cluster, owned by `user`; whether it is outside base."""
    if user is None:
        return Path(tempfile.mkdtemp(prefix="pg-", dir=base)), False
    if _searchable_by(base.parent, user):
        if not _searchable_by(base, user):
            base.chmod(base.stat().st_mode | stat.S_IXOTH)
        root, owns_root = Path(tempfile.mkdtemp(prefix="pg-", dir=base)), False
    else:
        tmp = Path(tempfile.gettempdir()).resolve()
        if not _searchable_by(tmp, user):
            raise PgError(f"neither {base} nor {tmp} is reachable by the user {user.pw_name}")
        root, owns_root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=tmp)), True
        with contextlib.suppress(OSError):
            (base / "postgres-cluster.txt").write_text(f"{root}\n")
    os.chown(root, user.pw_uid, user.pw_gid)
    return root, owns_root


def _share_dir(bin_dir: Path) -> Path | None:
    """PostgreSQL's share directory (where extensions live), from pg_config; None if unknown."""
    pg_config = bin_dir / "pg_config"
    if not os.access(pg_config, os.X_OK):
        return None
    try:
        proc = subprocess.run(
            [str(pg_config), "--sharedir"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return Path(out) if proc.returncode == 0 and out else None


def _proc_state(pid: int) -> str | None:
    """The process's state letter from /proc (Z: a zombie), None if there is no such process,
    "?" if /proc cannot tell."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        return "?"
    except OSError:
        return "?"
    return raw.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    """Running (a zombie is not: the postmaster is not our child, so we cannot reap it)."""
    state = _proc_state(pid)
    if state == "?":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state is not None and state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    """The PIDs whose parent is `pid` (PostgreSQL's backends put themselves in their own
    sessions, so a process-group kill would miss them)."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(_alive(pid) for pid in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


__all__ = ["PgCluster", "PgError", "find_bin_dir", "unavailable_reason"]
