"""``iotrate agent``, ``iotrate collector`` and ``iotrate agent-command``: fleet mode.

Registered in :mod:`iotrate.cli.main` by :func:`register`. Exit codes as everywhere: 2 for a usage
error or a refused target (found before the broker is contacted), 3 for a runtime failure,
130 when stopped by Ctrl-C or SIGTERM during a scan. The agent and the collector log to stderr,
at INFO unless ``-v`` asks for more.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from iotrate.cli.console import fail, say
from iotrate.errors import IotrateError, RuntimeFailure, UsageError

# Heavy modules (paho-mqtt, the spool, the collector, PostgreSQL) are imported inside the commands
# that use them, so that ``iotrate --help`` and the other commands start fast.

log = logging.getLogger("iotrate.fleet")

_BROKER_HELP = "mqtt://[user:pass@]HOST[:PORT], mqtts://… (TLS) or unix:///PATH."
BrokerOption = Annotated[str, typer.Option("--broker", metavar="URL", help=_BROKER_HELP)]
CaOption = Annotated[
    Path | None, typer.Option("--ca", help="CA certificate(s) to verify an mqtts:// broker.")
]
CertOption = Annotated[
    Path | None, typer.Option("--cert", help="Client certificate for mqtts:// (with --key).")
]
KeyOption = Annotated[Path | None, typer.Option("--key", help="Client certificate's key.")]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option("--password-file", help="Broker password from this file (keeps it out of `ps`)."),
]


def _secrets(*files: tuple[Path | None, str]) -> None:
    """Refuse, in one line, a secret file that other local users can read: the broker password,
    the client key and the command key each let their reader speak for the site."""
    from iotrate.privatefiles import refuse_if_shared

    for path, what in files:
        if path is not None:
            refuse_if_shared(path, what)


def _info_logging() -> None:
    """Daemons say what they do; ``-v`` already lowered the level further if asked."""
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)


def _stop_on_signals(stop: threading.Event, raise_interrupt: bool) -> None:
    """SIGTERM (and SIGINT) stop the loop; during a scan they interrupt it like Ctrl-C."""

    def handler(_sig: int, _frame: Any) -> None:
        stop.set()
        if raise_interrupt:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml
    from pydantic import BaseModel, ConfigDict, ValidationError

    class FileConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        site: str | None = None
        broker: str | None = None
        targets: list[str] | None = None
        exclude: list[str] | None = None
        ports: str | None = None
        policy: str | None = None
        every: str | None = None
        allow_public: bool | None = None
        max_hosts: int | None = None
        timeout: float | None = None
        concurrency: int | None = None

    from iotrate.yamlfiles import excerpt, load_error, load_file

    try:
        data = load_file(path) or {}
        return FileConfig.model_validate(data).model_dump(exclude_none=True)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: {load_error(exc)}") from None
    except ValidationError as exc:
        raise UsageError(f"{path}: {excerpt(str(exc).splitlines()[0])}") from None


def agent_cmd(
    broker: Annotated[
        str | None, typer.Option("--broker", metavar="URL", help=_BROKER_HELP)
    ] = None,
    site: Annotated[
        str | None, typer.Option("--site", help="This network's name, e.g. store-12.")
    ] = None,
    targets: Annotated[
        list[str] | None,
        typer.Option(
            "--targets",
            help="What to scan (repeatable or comma-separated). None: the default interface's "
            "subnet.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML file with these options; the command line wins."),
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Scan interval, e.g. 30m, 1h (default), 1d.")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Scan once, wait until the broker has it all, exit.")
    ] = False,
    spool: Annotated[
        Path | None,
        typer.Option("--spool", help="Spool database (default: agent-spool.db in the data dir)."),
    ] = None,
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    password_file: PasswordFileOption = None,
    command_key: Annotated[
        Path | None,
        typer.Option(
            "--command-key",
            help="Shared secret that signs commands (scan-now); without it none are taken.",
        ),
    ] = None,
    agent_id: Annotated[
        str | None, typer.Option("--agent-id", help="This agent's id (default: made once).")
    ] = None,
    ports: Annotated[str | None, typer.Option(help="As for iotrate scan (default iot).")] = None,
    safe: Annotated[
        bool, typer.Option("--safe", help="Passive probes only: no login attempts.")
    ] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Address or CIDR never to contact.", show_default=False),
    ] = None,
    allow_public: Annotated[
        bool, typer.Option("--allow-public", help="Allow globally routable targets.")
    ] = False,
    max_hosts: Annotated[
        int | None, typer.Option("--max-hosts", min=1, help="Allow more than 1024 addresses.")
    ] = None,
    drain_timeout: Annotated[
        float,
        typer.Option("--drain-timeout", min=0, help="With --once: seconds to wait for the broker."),
    ] = 300.0,
) -> None:
    """Scan this network on a schedule and publish each result to an MQTT broker.

    Same safety rules as 'iotrate scan'. Results wait in a local spool until the broker has
    acknowledged them, across broker outages and restarts."""
    from iotrate.fleet.agent import Agent, AgentSettings, agent_id_for, parse_duration
    from iotrate.fleet.broker import parse_broker
    from iotrate.fleet.commands import load_key
    from iotrate.fleet.spool import Spool, default_spool_path

    _info_logging()
    stop = threading.Event()
    try:
        file = _config(config)
        url = broker or file.get("broker")
        name = site or file.get("site")
        if not url or not name:
            raise UsageError("--broker and --site are required (or in --config)")
        specs = _split(targets) or list(file.get("targets", []))
        if not specs:
            from iotrate.netinfo import local_subnet

            dev, net = local_subnet()
            log.info("no targets given: scanning %s on %s", net, dev)
            specs = [str(net)]
        settings = AgentSettings(
            site=name,
            targets=specs,
            exclude=_split(exclude) or list(file.get("exclude", [])),
            allow_public=allow_public or bool(file.get("allow_public", False)),
            max_hosts=max_hosts or file.get("max_hosts"),
            ports=ports or file.get("ports", "iot"),
            policy="safe" if safe else file.get("policy", "default"),
            timeout=float(file.get("timeout", 1.0)),
            concurrency=int(file.get("concurrency", 512)),
            every=parse_duration(every or file.get("every", "1h")),
        )
        settings.check()  # refusals before any connection
        _secrets(
            (password_file, "the broker password file"),
            (key, "the client key"),
            (command_key, "the command key"),
        )
        mqtt = parse_broker(url, ca=ca, cert=cert, key=key, password_file=password_file)
        secret = load_key(command_key) if command_key is not None else None
        box = Spool(spool or default_spool_path())
        try:
            agent = Agent(
                settings, mqtt, box, agent_id=agent_id_for(box, agent_id), command_key=secret
            )
            log.info(
                "agent %s of site %s: publishing to %s, spool %s",
                agent.agent_id,
                settings.site,
                mqtt,
                box.path,
            )
            _stop_on_signals(stop, raise_interrupt=True)
            try:
                delivered = agent.run(once=once, drain_timeout=drain_timeout, stop=stop)
            except KeyboardInterrupt:
                left = box.count()
                log.warning("stopped; %d message(s) wait in the spool %s", left, box.path)
                raise typer.Exit(130) from None
            if not delivered:
                raise RuntimeFailure(
                    f"the broker did not take everything within {drain_timeout:.0f}s; "
                    f"{box.count()} message(s) wait in {box.path} for the next run"
                )
        finally:
            box.close()
    except IotrateError as exc:
        fail(exc)
    except OSError as exc:
        fail(RuntimeFailure(str(exc)))


def collector_cmd(
    broker: BrokerOption = "",
    db: Annotated[
        str,
        typer.Option(
            "--db",
            metavar="URL",
            help="postgresql://USER@HOST/DB, sqlite:///PATH or a plain path.",
        ),
    ] = "",
    client_id: Annotated[
        str,
        typer.Option(
            "--client-id", help="The broker session's name; keep it fixed across restarts."
        ),
    ] = "iotrate-collector",
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    password_file: PasswordFileOption = None,
    max_message_bytes: Annotated[
        int, typer.Option("--max-message-bytes", min=1024, help="Larger messages are dropped.")
    ] = 8 * 1024 * 1024,
    session_expiry: Annotated[
        int,
        typer.Option(
            "--session-expiry",
            min=60,
            help="Seconds the broker keeps queueing for a stopped collector.",
        ),
    ] = 7 * 24 * 3600,
    writers: Annotated[
        int,
        typer.Option(
            "--writers",
            min=1,
            max=64,
            help="Processes that check and store messages (PostgreSQL; SQLite uses one).",
        ),
    ] = 2,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the messages' JSON Schema and exit.")
    ] = False,
) -> None:
    """Store the agents' results from the broker in a database (PostgreSQL or SQLite).

    Persistent session; each message is acknowledged after its database commit, and stored
    idempotently, so a redelivery never duplicates anything."""
    from iotrate.fleet.broker import parse_broker
    from iotrate.fleet.collector import Collector, tune_gc
    from iotrate.fleet.messages import json_schema
    from iotrate.storage import Store

    if schema:
        sys.stdout.write(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
        return
    _info_logging()
    stop = threading.Event()
    try:
        if not broker or not db:
            raise UsageError("--broker and --db are required")
        _secrets((password_file, "the broker password file"), (key, "the client key"))
        mqtt = parse_broker(broker, ca=ca, cert=cert, key=key, password_file=password_file)
        with Store(db) as store:
            collector = Collector(
                mqtt,
                store,
                client_id=client_id,
                max_bytes=max_message_bytes,
                session_expiry=session_expiry,
                writers=writers,
            )
            log.info(
                "collecting from %s into %s as %s, %d writer process(es)",
                mqtt,
                store.path,
                client_id,
                collector.writers,
            )
            tune_gc()
            _stop_on_signals(stop, raise_interrupt=False)
            stats = collector.run(stop)
        log.info(
            "stopped: %d message(s) received, %d stored, %d superseded, %d rejected",
            stats.received,
            stats.stored,
            stats.ignored,
            stats.rejected,
        )
    except IotrateError as exc:
        fail(exc)
    except OSError as exc:
        fail(RuntimeFailure(str(exc)))


def agent_command_cmd(
    command: Annotated[str, typer.Argument(help="The command: scan-now.")],
    broker: BrokerOption,
    site: Annotated[str, typer.Option("--site", help="The agent's site.")],
    command_key: Annotated[
        Path, typer.Option("--command-key", help="The site's shared command secret.")
    ],
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    password_file: PasswordFileOption = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the broker.")] = 10,
) -> None:
    """Send a signed command (scan-now) to a site's agent through the broker."""
    import time

    from iotrate.fleet import commands
    from iotrate.fleet.broker import connect_async, make_client, parse_broker
    from iotrate.fleet.messages import check_name, command_topic

    try:
        try:
            check_name(site)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        _secrets(
            (password_file, "the broker password file"),
            (key, "the client key"),
            (command_key, "the command key"),
        )
        payload = commands.sign(commands.load_key(command_key), site, command)
        mqtt = parse_broker(broker, ca=ca, cert=cert, key=key, password_file=password_file)
        client = make_client(mqtt, f"iotrate-command-{int(time.time() * 1000) % 10**9}")
        connected = threading.Event()
        client.on_connect = lambda _c, _u, _f, reason, _p: (
            None if reason.is_failure else connected.set()
        )
        connect_async(client, mqtt)
        client.loop_start()
        late = RuntimeFailure(f"the broker {mqtt} did not take the command in time")
        try:
            # paho refuses a publish before the connection is up: wait for it first.
            deadline = time.monotonic() + timeout
            if not connected.wait(timeout):
                raise late
            info = client.publish(command_topic(site), payload, qos=1)
            try:
                while not info.is_published():
                    if time.monotonic() > deadline:
                        raise late
                    time.sleep(0.05)
            except RuntimeError as exc:  # paho: the connection dropped before the PUBACK
                raise RuntimeFailure(f"the broker {mqtt} did not take the command: {exc}") from None
        finally:
            client.disconnect()
            client.loop_stop()
    except IotrateError as exc:
        fail(exc)
    say(f"sent {command} to site {site}")


def register(app: typer.Typer) -> None:
    """Add the fleet commands to the ``iotrate`` application."""
    app.command("agent")(agent_cmd)
    app.command("collector")(collector_cmd)
    app.command("agent-command")(agent_command_cmd)
