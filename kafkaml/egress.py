"""The only way out of a local job's sandbox: a TCP forwarder per allowed endpoint.

A local job runs in a network namespace of its own (`kafkaml.sandbox`), where nothing but its
own loopback exists. The endpoints it may reach (the Kafka brokers, the backend's job API) are
carried in by two small steps of this module:

- `netns`, run with the sandbox's host uid just before the unprivileged `bwrap`: it makes a user
  namespace (its own uid mapped to itself) with a new network namespace, and, still holding
  that namespace's capabilities (no exec yet), brings its loopback up, adds to it the
  non-loopback IP literals among the endpoints, and opens for each route a listening TCP socket
  at the address the job will dial (a literal as is, e.g. `127.0.0.1:29092` or
  `10.0.0.5:9092`; a host name on an address of 127.77.0.0/16 that the sandbox's own
  /etc/hosts gives that name; any port, 443 too). It hands the listening sockets to the host
  side over an inherited unix socket (SCM_RIGHTS), closes everything and execs `bwrap
  --share-net`, which keeps that namespace; the exec drops every capability, and bwrap's own
  user namespace lies below, so user code can change nothing of it;
- `host`, the launch's own process outside the sandbox (the job's process group leader): it
  starts the sandbox, takes the listening sockets, and for every connection accepted on route
  i opens a connection to route i's one fixed destination and splices bytes both ways
  (`os.splice` through a pipe: the data never enters Python). It exits with the sandbox's
  status; SIGTERM is left to the job (it keeps forwarding while the job stops gracefully).

The destination belongs to the host side's argv, not to anything the sandbox says: whatever
user code does inside, a connection leaves the sandbox only towards one of the allowed
endpoints. No socket file exists anywhere, so nothing is left behind when the group is
SIGKILLed: the listening sockets belong to the sandbox's namespace and die with their holder.
Host names are kept (the job dials `broker-1.example:9093` and the host side resolves and dials
the same), so TLS certificate verification passes through unchanged.

Only the standard library is imported at module level: both steps run as `python -I -c`
before anything else of the job.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafkaml.kafka import KafkaSettings

log = logging.getLogger(__name__)

# Host names get addresses of this block inside the sandbox (never used on a host otherwise).
NAMED_BLOCK = ipaddress.ip_network("127.77.0.0/16")
# Per direction of a connection: the pipe between the two splices, and the largest single move.
PIPE_BYTES = 1 << 18
# Connections one job may hold open through the host side at once.
MAX_CONNECTIONS = 512
CONNECT_TIMEOUT_S = 30.0
# A `netns` step that cannot set the namespace up exits with this status (EX_SOFTWARE).
NETNS_FAILED = 70
_HELLO = b"kafkaml-egress"
_F_SETPIPE_SZ = 1031
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _SIOCSIFADDR, _SIOCSIFNETMASK = 0x8913, 0x8914, 0x8916, 0x891C
_IFF_UP = 0x1


class EgressError(OSError):
    """An endpoint that cannot be read (no host, a port that is not a number). An OSError, as a
    missing interpreter would be: the job could not start."""


@dataclass(frozen=True, order=True)
class Endpoint:
    """A TCP destination a job may reach: a host name or IP literal and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Route:
    """Connections to `listen`:`to.port` inside the sandbox go to `to` outside it."""

    listen: str
    to: Endpoint


@dataclass(frozen=True)
class Plan:
    """The routes of one sandbox and the /etc/hosts text that names their addresses."""

    routes: tuple[Route, ...]
    hosts: str
    # IP literals off the loopback, added to the sandbox's loopback so that it can listen there.
    aliases: tuple[str, ...] = ()


def parse_endpoints(servers: str, default_port: int = 9092) -> list[Endpoint]:
    """Endpoints of a comma-separated `host[:port]` list (a Kafka bootstrap list, as librdkafka
    reads it: a `PROTOCOL://` prefix and `[v6]:port` accepted, port 9092 when none is given).
    Raises EgressError on an entry with no host or a port that is not a number."""
    endpoints = []
    for entry in servers.split(","):
        entry = entry.strip().rsplit("://", 1)[-1].rstrip("/")
        if not entry:
            continue
        if entry.startswith("["):  # [v6] or [v6]:port
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":")
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        else:  # a name, or a bare v6 address: no port
            host, port = entry, ""
        port = port or str(default_port)
        if not host or not port.isdigit():
            raise EgressError(f"{entry!r} is not host:port")
        endpoints.append(Endpoint(host, int(port)))
    return endpoints


def url_endpoint(url: str) -> Endpoint:
    """The endpoint an http(s) URL connects to (its port, or 80/443)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname is None:
        raise EgressError(f"{url!r} names no host")
    return Endpoint(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


def plan(endpoints: Iterable[Endpoint]) -> Plan:
    """The routes that carry `endpoints` into a sandbox.

    An IP literal listens at itself inside (the sandbox has all of 127.0.0.0/8 and ::1 on its
    own loopback; any other literal is added to it as an alias); `localhost` at 127.0.0.1; any
    other host name at an address of NAMED_BLOCK that /etc/hosts gives it.
    """
    named: dict[str, str] = {}
    routes: dict[tuple[str, int], Route] = {}
    aliases: dict[str, None] = {}
    spare = (str(address) for address in NAMED_BLOCK.hosts())
    for endpoint in sorted(set(endpoints)):
        listen = _listen_address(endpoint.host, named, spare)
        routes.setdefault((listen, endpoint.port), Route(listen, endpoint))
        if not ipaddress.ip_address(listen).is_loopback:
            aliases[listen] = None
    # localhost on 127.0.0.1 alone: a client that tried ::1 first would find no route there.
    lines = ["127.0.0.1\tlocalhost", "::1\tip6-localhost ip6-loopback"]
    lines += [f"{address}\t{name}" for name, address in named.items()]
    return Plan(tuple(routes.values()), "\n".join(lines) + "\n", tuple(aliases))


def _listen_address(host: str, named: dict[str, str], spare: Iterator[str]) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.lower() == "localhost":
        return "127.0.0.1"
    if host.lower() not in named:
        named[host.lower()] = next(spare)
    return named[host.lower()]


# --- where a job may go ---------------------------------------------------------------------

_cluster_cache: dict[str, tuple[float, list[Endpoint]]] = {}
_cache_lock = threading.Lock()
CLUSTER_CACHE_S = 60.0


def cluster_endpoints(kafka: KafkaSettings, *, timeout_s: float = 5.0) -> list[Endpoint]:
    """The bootstrap entries of `kafka` and every broker as the cluster's metadata advertises
    it (what a Kafka client dials after bootstrapping). Looked up now, or taken from a lookup
    of the last CLUSTER_CACHE_S; when the cluster does not answer, the last lookup ever made
    (or the bootstrap entries alone) is used and a warning logged. A broker added later is
    not reachable by a job started before it (docs/security.md).
    """
    from confluent_kafka import KafkaException

    from kafkaml.kafka import KafkaSecurityError, make_admin

    bootstrap = parse_endpoints(kafka.bootstrap_servers)
    key = kafka.bootstrap_servers
    with _cache_lock:
        cached = _cluster_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < CLUSTER_CACHE_S:
        return cached[1]
    try:
        metadata = make_admin(kafka).list_topics(timeout=timeout_s)
    except (KafkaException, KafkaSecurityError) as error:
        log.warning("Kafka at %s did not answer a metadata request (%s): jobs may reach %s",
                    key, error, "its brokers of the last lookup" if cached else "the bootstrap "
                    "entries only")  # fmt: skip
        return cached[1] if cached is not None else bootstrap
    brokers = [Endpoint(str(b.host), b.port) for b in metadata.brokers.values() if b.host]
    found = sorted(set(bootstrap + brokers))
    with _cache_lock:
        _cluster_cache[key] = (time.monotonic(), found)
    return found


def off_host(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """`endpoints` without those on this machine (a name or literal that resolves to a loopback
    address; one that does not resolve is kept, it leads nowhere). For brokers a user names
    (an inference's per-direction brokers): they must not open a way to this machine's ports."""
    kept = []
    for endpoint in endpoints:
        try:
            infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        except OSError:
            infos = []
        if any(ipaddress.ip_address(info[4][0]).is_loopback for info in infos):
            log.warning("%s is on this machine: a job may not reach it as a user-named broker",
                        endpoint)  # fmt: skip
            continue
        kept.append(endpoint)
    return kept


# --- the two steps ----------------------------------------------------------------------------


def host_command(
    plan: Plan, command: Sequence[str], *, channel: int, inner: int, passed: Sequence[int]
) -> list[str]:
    """The command line of the host side: runs `command` (which runs `netns_command`), with
    `passed` fds handed on to it and the `channel` end kept to itself."""
    spec = {"channel": channel, "inner": inner, "pass": list(passed)}
    spec["to"] = [[route.to.host, route.to.port] for route in plan.routes]
    return [*_step("host"), json.dumps(spec), "--", *command]


def netns_command(plan: Plan, command: Sequence[str], *, channel: int) -> list[str]:
    """The command line of the step that makes the network namespace, opens the listeners in
    it and execs `command` (the unprivileged bwrap, with `--share-net`)."""
    spec = {"channel": channel, "listen": [[r.listen, r.to.port] for r in plan.routes]}
    spec["aliases"] = list(plan.aliases)
    return [*_step("netns"), json.dumps(spec), "--", *command]


def _step(name: str) -> list[str]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"import sys; sys.path.insert(0, {root!r}); from kafkaml.egress import main; main()"
    return [sys.executable, "-I", "-c", code, name]


def main() -> None:
    """`python -c ... host|netns SPEC -- COMMAND...` (see `host_command`, `netns_command`)."""
    name, spec, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        raise SystemExit(f"usage: {name} SPEC -- COMMAND")
    if name == "netns":
        _netns(json.loads(spec), command)
    elif name == "host":
        logging.basicConfig(format="kafkaml egress: %(message)s", level=logging.WARNING)
        sys.exit(_host(json.loads(spec), command))
    raise SystemExit(f"unknown step {name!r}")


def _netns(spec: dict[str, Any], command: list[str]) -> None:
    channel = socket.socket(fileno=spec["channel"])
    listeners = []
    try:
        _unshare_network()
        for index, address in enumerate(spec["aliases"]):
            _add_to_loopback(address, index)
        for address, port in spec["listen"]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.bind((address, port))
            listener.listen(1024)
            listeners.append(listener)
        # Fails (EPIPE) when the host side is gone, which may have died before the root bwrap
        # armed its death signal: then no sandbox starts, that nothing would tie to the job.
        socket.send_fds(channel, [_HELLO], [listener.fileno() for listener in listeners])
    except OSError as error:
        print(f"kafkaml egress: cannot open the job's routes: {error}", file=sys.stderr)
        sys.exit(NETNS_FAILED)
    for sock in [channel, *listeners]:
        sock.close()
    os.execvp(command[0], command)


def _unshare_network() -> None:
    """Enter a new user namespace (this uid and gid mapped to themselves) and a new network
    namespace that it owns, and bring its loopback up. Until the next exec this process holds
    every capability there, which is what adding addresses and binding ports below 1024 need."""
    import ctypes

    uid, gid = os.getuid(), os.getgid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare(CLONE_NEWUSER | CLONE_NEWNET): {os.strerror(code)}")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):  # fmt: skip
        with open(f"/proc/self/{name}", "w") as file:
            file.write(text)
    with socket.socket() as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b""))


def _add_to_loopback(address: str, index: int) -> None:
    """Give the namespace's loopback `address` too (a host route: /32 or /128), IPv4 under the
    label lo:`index`."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        request = struct.pack("16sIi", ip.packed, 128, socket.if_nametoindex("lo"))
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock, _SIOCSIFADDR, request)
        return
    label = f"lo:{index}".encode()

    def sockaddr(value: str) -> bytes:
        return struct.pack("HH4s8s", socket.AF_INET, 0, socket.inet_aton(value), b"")

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, _SIOCSIFADDR, struct.pack("16s16s", label, sockaddr(address)))
        mask = struct.pack("16s16s", label, sockaddr("255.255.255.255"))
        fcntl.ioctl(sock, _SIOCSIFNETMASK, mask)


def _host(spec: dict[str, Any], command: list[str]) -> int:
    # The job's process group gets SIGTERM on a stop: the job handles it, and its last commits
    # still need the way out, so this process keeps forwarding until the sandbox exits.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    channel = socket.socket(fileno=spec["channel"])
    destinations = [Endpoint(host, port) for host, port in spec["to"]]
    child = subprocess.Popen(command, pass_fds=[spec["inner"], *spec["pass"]])
    for fd in [spec["inner"], *spec["pass"]]:
        os.close(fd)
    # The listeners arrive when the netns step is done; the sandbox may end before that (the
    # step failed, and said why), and whoever else holds the other end then keeps it open.
    threading.Thread(target=_open_routes, args=(channel, destinations), daemon=True).start()
    status = child.wait()
    return status if status >= 0 else 128 - status


def _open_routes(channel: socket.socket, destinations: Sequence[Endpoint]) -> None:
    """Serve each listener the netns step sends with its destination, in threads of its own."""
    with channel:
        listeners = _receive(channel, len(destinations))
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    for listener, destination in zip(listeners, destinations, strict=False):
        threading.Thread(target=_serve, args=(listener, destination, slots), daemon=True).start()


def _receive(channel: socket.socket, count: int) -> list[socket.socket]:
    """The listening sockets the netns step sent; none when it failed or sent anything else."""
    try:
        message, fds, _, _ = socket.recv_fds(channel, len(_HELLO), count + 1)
    except OSError:
        return []
    sockets = [socket.socket(fileno=fd) for fd in fds]
    if message != _HELLO or len(sockets) != count or not all(map(_listening, sockets)):
        for sock in sockets:
            sock.close()
        return []
    return sockets


def _listening(sock: socket.socket) -> bool:
    try:
        return sock.type == socket.SOCK_STREAM and bool(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        )
    except OSError:  # not a socket at all
        return False


def _serve(listener: socket.socket, to: Endpoint, slots: threading.BoundedSemaphore) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.1)  # out of descriptors for now: let connections end
                continue
            return
        if not slots.acquire(blocking=False):
            conn.close()  # the job holds MAX_CONNECTIONS already
            continue
        threading.Thread(target=_connect, args=(conn, to, slots), daemon=True).start()


def _connect(conn: socket.socket, to: Endpoint, slots: threading.BoundedSemaphore) -> None:
    try:
        with conn:
            try:
                out = socket.create_connection((to.host, to.port), timeout=CONNECT_TIMEOUT_S)
            except OSError as error:
                log.warning("cannot reach %s: %s", to, error)
                return
            with out:
                out.settimeout(None)
                for sock in (conn, out):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                back = threading.Thread(target=_pump, args=(out, conn), daemon=True)
                back.start()
                _pump(conn, out)
                back.join()
    finally:
        slots.release()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Move bytes from `source` to `sink` until EOF (then half-close `sink`) or an error (then
    shut both down, so that the other direction ends too)."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_BYTES)
    try:
        while moved := os.splice(source.fileno(), write_end, PIPE_BYTES):
            while moved:
                moved -= os.splice(read_end, sink.fileno(), moved)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    finally:
        os.close(read_end)
        os.close(write_end)


if __name__ == "__main__":
    main()
