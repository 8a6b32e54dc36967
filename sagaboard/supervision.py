"""Process supervision through supervisord (a well-kept supervisor): `manage.py run` writes its
configuration and becomes it; the web process and tests stop and start services through its
XML-RPC interface on a Unix socket."""
from __future__ import annotations

import errno
import os
import socket
import sys
import xmlrpc.client
from pathlib import Path

from django.conf import settings

PROGRAMS = ("order", "exchange", "point", "deadline", "monitor")


def program_blocks(replicas: int) -> list[tuple[str, str, int]]:
    """(program name, command, priority) of everything `make run` starts."""
    python = sys.executable
    blocks = []
    if settings.SAGA_EMBEDDED_BROKER:
        blocks.append(("broker", f"{python} manage.py runbroker", 10))
    for name in PROGRAMS:
        blocks.append((name, f"{python} manage.py runservice {name}", 20))
    # supervisord opens the web port itself and hands it to each Daphne process as fd 0
    # ([fcgi-program]), so SAGA_WEB_PROCESSES processes accept from one socket
    blocks.append(("web", web_command(python, "--fd 0"), 30))
    return blocks


def web_command(python: str, listen: str) -> str:
    """Daphne serving Sagaboard, listening as `listen` says: "--fd 0" under supervisord (which holds
    the port for all the web processes), "-b HOST -p PORT" for one process alone (docker-compose.yml)."""
    return f"{python} -m daphne -v 0 {listen} sagaboard.asgi:application"


def config(replicas: int = 1, service_env: dict[str, str] | None = None) -> str:
    """supervisord's configuration; `service_env` goes to the service processes only (the fault
    injection options of `manage.py run`)."""
    data = settings.SAGA_DATA_DIR
    lines = [
        "[supervisord]",
        "nodaemon=true",
        f"logfile={data / 'supervisord.log'}",
        f"pidfile={data / 'supervisord.pid'}",
        f"childlogdir={data}",
        "loglevel=warn",
        "",
        "[unix_http_server]",
        f"file={settings.SAGA_SUPERVISOR_SOCKET}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{settings.SAGA_SUPERVISOR_SOCKET}",
    ]
    for name, command, priority in program_blocks(replicas):
        count = replicas if name in PROGRAMS else settings.SAGA_WEB_PROCESSES if name == "web" else 1
        process_name = "%(program_name)s-%(process_num)d" if count > 1 else "%(program_name)s"
        section = [f"[program:{name}]"] if name != "web" else [
            f"[fcgi-program:{name}]", f"socket=tcp://{settings.SAGA_BIND}:{settings.PORT}", "socket_backlog=1024"]
        lines += [
            "",
            *section,
            f"command={command}",
            f"directory={settings.BASE_DIR}",
            f"priority={priority}",
            f"numprocs={count}",
            f"process_name={process_name}",
            f"environment=SAGA_PROCESS_NAME=\"{process_name}\"" + (_environment(service_env) if name in PROGRAMS else ""),
            "autostart=true",
            "autorestart=unexpected",
            "exitcodes=0",
            "startsecs=1",
            "startretries=100",
            "stopsignal=TERM",
            "stopwaitsecs=15",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            "stdout_logfile=/dev/fd/1",
            "stdout_logfile_maxbytes=0",
        ]
    return "\n".join(lines) + "\n"


def _environment(values: dict[str, str] | None) -> str:
    """More `,KEY="value"` pairs for supervisord's environment= line (it interpolates %, so double it)."""
    return "".join(f',{key}="{str(value).replace("%", "%%")}"' for key, value in (values or {}).items())


def control():
    """An XML-RPC proxy to the running supervisord."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{settings.SAGA_SUPERVISOR_SOCKET}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def processes() -> list[dict]:
    """Every supervised process with its state (RUNNING, STOPPED, ...); empty when not supervised."""
    if not Path(settings.SAGA_SUPERVISOR_SOCKET).exists():
        return []
    try:
        return control().supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error):
        return []


def stop(name: str) -> None:
    """Stop every process of a program (e.g. 'exchange'), waiting until it has exited."""
    control().supervisor.stopProcessGroup(name, True)


def start(name: str) -> None:
    control().supervisor.startProcessGroup(name, True)


def config_path() -> Path:
    """Where `manage.py run` writes supervisord's configuration (supervisorctl reads it too)."""
    return settings.SAGA_DATA_DIR / "supervisord.conf"


def supervisorctl_command() -> list[str]:
    """The supervisorctl that controls this system, as a command a person can type in the current
    directory: the one beside this interpreter (`.venv/bin/supervisorctl`; a bare `supervisorctl`
    is on nobody's PATH unless the venv is active) with this system's configuration; paths under
    the current directory are relative (`-c var/supervisord.conf`)."""
    return [_typed(Path(sys.executable).with_name("supervisorctl")), "-c", _typed(config_path())]


def _typed(path: Path) -> str:
    """`path` relative to the current directory when it is inside it, else absolute. The venv's
    bin/ is not resolved: its python is a symlink to the interpreter it was made from."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def control_hint() -> str:
    """The banner's line: how to control the running system by hand."""
    return " ".join(supervisorctl_command()) + " status|stop NAME|start NAME"


# --- one instance per data directory, ports of its own (README, "Two commands") ---------------------
def port_in_use(host: str, port: int) -> bool:
    """Whether a TCP listener cannot bind `host`:`port` (something listens there already)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as supervisord and Tansu bind
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def running_here() -> bool:
    """Whether a supervisord of this data directory answers on its socket (a stale socket file of
    one that was killed does not count, and is removed)."""
    path = Path(settings.SAGA_SUPERVISOR_SOCKET)
    if not path.exists():
        return False
    try:
        control().supervisor.getState()
        return True
    except (OSError, xmlrpc.client.Error):
        path.unlink(missing_ok=True)
        return False
