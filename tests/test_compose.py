"""docker-compose.yml, checked without Docker: every command is one Sagaboard really has, every
variable it sets is one Sagaboard reads, the settings those variables make point at the compose
file's own Kafka and PostgreSQL (nothing embedded), the images are pinned, each saga service runs
two or more processes, and the start order (depends_on, health checks) holds together."""
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands, load_command_class

from sagaboard import supervision

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# What an operator puts in .env: the two secrets the compose file refuses to start without.
SECRETS = {"DJANGO_SECRET_KEY": "test-secret-key-" + "x" * 40, "POSTGRES_PASSWORD": "0123456789abcdef"}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
ONE_SHOT = "service_completed_successfully"


def interpolate(node, given: dict):
    """Fill in ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error} as
    `docker compose` does with .env (the forms docker-compose.yml uses)."""
    if isinstance(node, dict):
        return {key: interpolate(value, given) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, given) for value in node]
    if not isinstance(node, str):
        return node

    def one(m):
        name, op, arg = m["name"], m["op"] or "", m["arg"]
        if name in given and not (op.startswith(":") and given[name] == ""):
            return given[name]
        if op.endswith("?"):
            raise KeyError(f"{name} is required: {arg}")
        return arg if op else ""

    return VARIABLE.sub(one, node)


COMPOSE = interpolate(yaml.safe_load(COMPOSE_TEXT), SECRETS)
SERVICES = COMPOSE["services"]


def image_of(name: str) -> str:
    return SERVICES[name].get("image", "")


def services_of(image_name: str) -> list[str]:
    return [name for name in SERVICES if image_of(name).split(":")[0] == image_name]


APP = services_of("sagaboard")  # everything built from this checkout's Dockerfile
BROKERS = [n for n in services_of("apache/kafka") if SERVICES[n].get("restart") != "no"]
[KAFKA] = BROKERS
[TOPIC] = [n for n in services_of("apache/kafka") if n not in BROKERS]  # the one-shot topic creation
[POSTGRES] = services_of("postgres")


def environment(name: str) -> dict[str, str]:
    env = SERVICES[name].get("environment", {})
    assert isinstance(env, dict), f"{name}: environment as a mapping"
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(name: str) -> list[str]:
    cmd = SERVICES[name]["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """'PLAINTEXT://kafka:9092,CONTROLLER://:9093' → {'PLAINTEXT': ('kafka', 9092), …}"""
    found = {}
    for item in value.split(","):
        name, address = item.split("://")
        host, port = address.rsplit(":", 1)
        found[name] = (host, int(port))
    return found


def environment_names_read() -> set[str]:
    """Every variable Sagaboard reads: the settings' own list, and what code reads from os.environ."""
    names = set(settings.ENVIRONMENT_VARIABLES)
    direct = re.compile(r"""os\.(?:environ\.get\(|environ\[|getenv\()\s*["'](\w+)["']""")
    for folder in ("sagaboard", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(direct.findall(path.read_text()))
    return names


def test_the_secrets_are_required_and_never_written_down():
    for secret in SECRETS:
        uses = re.findall(rf"[^\n]*\b{secret}\b[^\n]*", COMPOSE_TEXT)
        assert uses, secret
        for use in uses:
            if use.lstrip().startswith("#"):
                continue
            references = [m for m in VARIABLE.finditer(use) if m["name"] == secret]
            assert references and all(m["op"] == ":?" for m in references), f"{secret} must come from .env: {use}"
        missing = {k: v for k, v in SECRETS.items() if k != secret}
        with pytest.raises(KeyError, match=secret):
            interpolate(yaml.safe_load(COMPOSE_TEXT), missing)
    example = (ROOT / "deploy" / "env.example").read_text()
    for secret in SECRETS:
        assert re.search(rf"^{secret}=$", example, re.M), f"deploy/env.example leaves {secret} empty"
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_every_saga_service_runs_two_or_more_processes_of_its_own_command():
    assert set(settings.SERVICES) <= set(APP)
    for name in settings.SERVICES:
        assert command(name) == ["python", "manage.py", "runservice", name]
        assert SERVICES[name]["deploy"]["replicas"] >= 2, name
    assert set(APP) == {*settings.SERVICES, "web", "migrate"}


def test_every_command_is_a_real_management_command_with_valid_arguments():
    commands = get_commands()
    for name in APP:
        cmd = command(name)
        if cmd[:2] != ["python", "manage.py"]:
            continue
        assert cmd[2] in commands, f"{name}: no management command {cmd[2]!r}"
        parser = load_command_class(commands[cmd[2]], cmd[2]).create_parser("manage.py", cmd[2])
        parser.parse_args(cmd[3:])  # an unknown service or option raises CommandError
    assert command("migrate") == ["python", "manage.py", "setupdb"]


def test_processes_run_as_make_run_runs_them(settings):
    """The web server and the services start exactly as sagaboard/supervision.py starts them,
    bound where the web service's SAGA_BIND and PORT say; the image's default is the web server."""
    web = environment("web")
    settings.SAGA_BIND, settings.PORT, settings.SAGA_EMBEDDED_BROKER = web["SAGA_BIND"], int(web["PORT"]), False
    blocks = {name: shlex.split(cmd.replace(sys.executable, "python")) for name, cmd, _ in supervision.program_blocks(2)}
    assert set(blocks) == {*settings.SERVICES, "web"}, "nothing embedded to start"
    # one web process per container binds the port itself; under supervisord it is handed the port
    blocks["web"] = shlex.split(supervision.web_command("python", f"-b {web['SAGA_BIND']} -p {web['PORT']}"))
    assert supervision.program_blocks(2)[-1][1] == supervision.web_command(sys.executable, "--fd 0")
    for name, cmd in blocks.items():
        assert command(name) == cmd, name
    assert web["SAGA_BIND"] == "0.0.0.0"
    assert [p.split(":")[-1] for p in SERVICES["web"]["ports"]] == [web["PORT"]]
    [default] = re.findall(r"^CMD (\[.*\])$", DOCKERFILE, re.M)
    assert json.loads(default) == command("web")


def test_every_variable_set_is_one_sagaboard_reads():
    known = environment_names_read()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "DJANGO_SECRET_KEY"} <= known
    for name in APP:
        unknown = set(environment(name)) - known
        assert not unknown, f"{name} sets variables Sagaboard never reads: {sorted(unknown)}"
    image_env = set(re.findall(r"^\s*(?:ENV\s+)?([A-Z][A-Z0-9_]*)=", DOCKERFILE, re.M))
    ours = {n for n in image_env if not n.startswith(("PYTHON", "PIP_"))}
    assert ours and ours <= known, sorted(ours - known)


def in_container_environment(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run Python here with only the environment a container of the compose file gets."""
    clean = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "sagaboard.settings", **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_django_deployment_checks_pass_for_the_web_server():
    out = in_container_environment(["manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
                                   environment("web"))
    assert out.returncode == 0, out.stdout + out.stderr


def settings_made_by(env: dict[str, str]) -> dict:
    """The settings a container with this environment gets (a fresh interpreter, nothing inherited)."""
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({"
        "'DEBUG': s.DEBUG, 'EMBEDDED': s.SAGA_EMBEDDED_BROKER, 'KAFKA': s.KAFKA_BOOTSTRAP_SERVERS,"
        "'TOPIC': s.SAGA_TOPIC, 'PARTITIONS': s.SAGA_TOPIC_PARTITIONS, 'HOSTS': s.ALLOWED_HOSTS,"
        "'DATABASES': {a: [d['ENGINE'], d.get('HOST'), d.get('PORT'), d['NAME'], d.get('USER'), d.get('PASSWORD')]"
        " for a, d in s.DATABASES.items()}}))"
    )
    out = in_container_environment(["-c", script], env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_settings_point_at_the_compose_kafka_and_postgres_and_nothing_is_embedded():
    kafka_env, pg_env = environment(KAFKA), environment(POSTGRES)
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    bound = listeners(kafka_env["KAFKA_LISTENERS"])
    assert "broker" in kafka_env["KAFKA_PROCESS_ROLES"] and "controller" in kafka_env["KAFKA_PROCESS_ROLES"], "KRaft"
    assert not [k for k in kafka_env if "ZOOKEEPER" in k]
    distinct = {json.dumps(environment(name), sort_keys=True) for name in APP}
    for env in map(json.loads, distinct):
        made = settings_made_by(env)
        assert made["DEBUG"] is False and made["HOSTS"]
        assert made["EMBEDDED"] is False
        host, port = made["KAFKA"].rsplit(":", 1)
        assert host == KAFKA and (host, int(port)) in advertised.values(), made["KAFKA"]
        [listener] = [n for n, address in advertised.items() if address == (host, int(port))]
        assert bound[listener][1] == int(port) and listener != kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        for alias, (engine, db_host, db_port, db_name, user, password) in made["DATABASES"].items():
            assert engine == "django.db.backends.postgresql", alias
            assert (db_host, int(db_port), user, password) == (POSTGRES, 5432, pg_env["POSTGRES_USER"], SECRETS["POSTGRES_PASSWORD"])
            want = pg_env["POSTGRES_DB"] if alias == "default" else f"{pg_env['POSTGRES_DB']}_{alias}"
            assert db_name == want, alias
        assert urlsplit(env["DATABASE_URL"]).hostname == POSTGRES
    defined = json.dumps(COMPOSE).lower()  # what the file defines, its comments aside
    assert not any(word in defined for word in ("tansu", "runbroker", "calfkit", "saga_broker_port"))


def test_the_topic_is_created_with_the_partitions_the_services_expect():
    cmd = command(TOPIC)
    assert cmd[0].endswith("kafka-topics.sh") and "--create" in cmd and "--if-not-exists" in cmd

    def option(flag):
        return cmd[cmd.index(flag) + 1]

    for name in APP:
        env = environment(name)
        assert option("--bootstrap-server") == env["KAFKA_BOOTSTRAP_SERVERS"]
        assert option("--topic") == env["SAGA_TOPIC"]
        assert option("--partitions") == env["SAGA_TOPIC_PARTITIONS"]
    partitions = int(option("--partitions"))
    assert partitions >= max(SERVICES[n]["deploy"]["replicas"] for n in settings.SERVICES), "a partition for every process"
    assert int(option("--replication-factor")) <= len(BROKERS), "no more replicas than brokers"


def test_images_are_pinned():
    for name in SERVICES:
        image = image_of(name)
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+(\.\d+)?([-\w.]*)", image), f"{name}: {image!r} is not pinned"
    assert {image_of(n) for n in APP} == {f"sagaboard:{PROJECT['version']}"}
    assert all(SERVICES[n].get("build") == "." for n in APP)
    [base] = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim[-\w]*", base), base
    assert ">=3.11" in PROJECT["requires-python"]
    [user] = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user not in ("root", "0"), "the image runs as a user of its own"


def test_start_order_and_health_checks_hold_together():
    for name, service in SERVICES.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy, which it never says"
                assert isinstance(SERVICES[target]["healthcheck"]["test"], list)
            else:
                assert condition == ONE_SHOT, (name, target, condition)
                assert SERVICES[target].get("restart") == "no" and "deploy" not in SERVICES[target], f"{target} is a one-shot"
    for name in (KAFKA, POSTGRES, "web"):
        assert SERVICES[name]["healthcheck"]["test"][0] == "CMD", name
        assert SERVICES[name].get("restart") == "unless-stopped", name

    def waits_for(name, seen=()):
        assert name not in seen, f"depends_on cycle through {name}"
        found = {}
        for target, spec in SERVICES[name].get("depends_on", {}).items():
            found[target] = spec["condition"]
            found.update(waits_for(target, (*seen, name)))
        return found

    for name in (*settings.SERVICES, "web"):
        before = waits_for(name)
        assert before.get("migrate") == ONE_SHOT, f"{name} starts after every database is migrated"
        assert before.get(KAFKA) == "service_healthy" and before.get(POSTGRES) == "service_healthy", name
        assert before.get(TOPIC) == ONE_SHOT, f"{name} starts once the topic exists"
        assert SERVICES[name].get("restart") == "unless-stopped" and SERVICES[name].get("init") is True, name
