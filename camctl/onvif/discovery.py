"""WS-Discovery: which ONVIF cameras answer a Probe, unicast to given addresses (a host, or every
host of a subnet) or multicast on the LAN (239.255.255.250:3702). Answers are read leniently:
cameras differ in how they wrap a ProbeMatch."""

from __future__ import annotations

import ipaddress
import select
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from camctl.errors import UsageError

PORT = 3702
MULTICAST = "239.255.255.250"
MAX_HOSTS = 1024  # a /22 at most: a probe per address

PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
 <s:Header>
  <a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>
  <a:MessageID>urn:uuid:{message_id}</a:MessageID>
  <a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>
  <a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
 </s:Header>
 <s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>
</s:Envelope>"""


@dataclass(frozen=True)
class Found:
    """A device that answered: where its ONVIF service is and what its scopes say."""

    address: str  # the host its service is at (that it answered from)
    port: int  # of its ONVIF service
    xaddrs: list[str]
    maker: str | None
    model: str | None
    name: str | None
    location: str | None
    endpoint: str | None  # its WS-Discovery identity (urn:uuid:...)
    scopes: list[str] = field(default_factory=list)

    @property
    def onvif_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"onvif://{host}" if self.port == 80 else f"onvif://{host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"onvif_url": self.onvif_url}


def targets(hosts: list[str]) -> list[str]:
    """Each --host: an address, a name, or a subnet (192.168.1.0/24: each of its hosts)."""
    out: list[str] = []
    for host in hosts:
        if "/" in host:
            try:
                network = ipaddress.ip_network(host, strict=False)
            except ValueError:
                raise UsageError(f"{host!r} is not a subnet (e.g. 192.168.1.0/24)") from None
            if network.num_addresses > MAX_HOSTS + 2:
                raise UsageError(f"{host} has {network.num_addresses} addresses; probe at most a /22")
            out += [str(a) for a in (network.hosts() if network.num_addresses > 2 else network)]
        else:
            out.append(host)
    return list(dict.fromkeys(out))


def probe(hosts: list[str], port: int = PORT, wait: float = 3.0,
          progress: Callable[[int], None] | None = None) -> list[Found]:  # fmt: skip
    """Probes each host by unicast, or (no hosts) the LAN by multicast, and collects the answers
    for `wait` seconds; one entry per device (by service address)."""
    message_id = str(uuid.uuid4())
    message = PROBE.format(message_id=message_id).encode()
    found: dict[str, Found] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        if hosts:
            for host in targets(hosts):
                try:
                    sock.sendto(message, (host, port))
                except OSError as exc:
                    if len(hosts) == 1 and "/" not in hosts[0]:
                        raise UsageError(f"cannot send a probe to {host}: {exc.strerror or exc}") from None
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
            sock.sendto(message, (MULTICAST, port))
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], min(left, 0.25))
            if progress is not None:
                progress(len(found))
            if not ready:
                continue
            try:
                data, (sender, _port) = sock.recvfrom(65536)
            except OSError:
                continue
            for match in parse_matches(data, sender, message_id):
                found.setdefault(f"{match.address}:{match.port}", match)
    return sorted(found.values(), key=lambda f: (f.address, f.port))


def parse_matches(data: bytes, sender: str, message_id: str | None = None) -> list[Found]:
    """The ProbeMatch elements of an answer, wherever they sit (some cameras leave out the
    ProbeMatches wrapper or name the action differently); an answer to another probe is ignored."""
    from lxml import etree  # type: ignore[import-untyped]  # zeep's: entities and the network off

    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    except etree.XMLSyntaxError:
        return []
    relates = [e.text or "" for e in root.iter() if _local(str(e.tag)) == "RelatesTo"]
    if message_id and relates and not any(message_id in r for r in relates):
        return []
    out = []
    for match in (e for e in root.iter() if _local(str(e.tag)) == "ProbeMatch"):
        xaddrs = (_child_text(match, "XAddrs") or "").split()
        scopes = (_child_text(match, "Scopes") or "").split()
        endpoint = next((e.text for e in match.iter() if _local(str(e.tag)) == "Address" and e.text), None)
        service = next((urlsplit(x) for x in xaddrs if x.startswith(("http://", "https://"))), None)
        port = service.port or (443 if service.scheme == "https" else 80) if service else 80
        out.append(Found(sender, port, xaddrs, _scope(scopes, "mfr", "manufacturer"),
                         _scope(scopes, "hardware", "model"), _scope(scopes, "name"), _scope(scopes, "location"),
                         endpoint, scopes))  # fmt: skip
    return out


def _scope(scopes: list[str], *kinds: str) -> str | None:
    for scope in scopes:
        path = urlsplit(scope).path.strip("/").split("/") if scope.startswith("onvif://") else []
        if len(path) >= 2 and path[0].lower() in kinds:
            return unquote("/".join(path[1:]))
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: Any, name: str) -> str | None:
    return next((e.text for e in element.iter() if _local(str(e.tag)) == name), None)
