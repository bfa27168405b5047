#!/usr/bin/env python3
"""Consistency check for exwatch's port signatures.

Usage: python3 signatures/check.py ../shared/exchange-ports.md [-v]

Loads services.toml and ports.toml (next to this script) and checks:
  * schema: exact key sets, types, vocabularies (protocol, transport, role, version,
    section), port syntax and bounds (1-65535, lo < hi for ranges);
  * every service used by ports.toml exists, and every service is used by a port entry
    unless it is one of the payload-level services of section 11;
  * each service has one tls value, and the well-known implicit-TLS ports carry tls = true;
  * every role used is documented in the "Roles" comment block of ports.toml;
  * outside_seeds = true only in sections where the reference marks facts
    "*(outside the seeds)*";
  * cross-check against the reference given as argv[1]: every port range (N-M), every
    number written as N/tcp or N/udp (and comma lists ending in /tcp), every number in a
    "Port"/"Ports" table column, and in fact every other integer in the document, is
    covered by an entry -- except the explicit NOT_PORTS allow-list below; and every
    N/udp, N/tcp is covered by an entry with a matching transport. "Covered" is strict:
    a reference range needs an entry with exactly that range, a single number needs a
    single-port entry or a narrow range entry (a written-out list such as 5075-5077);
    the wide dynamic ranges never count, as they contain almost every port;
  * the precedence rule (single port beats range, narrower range beats wider, then first
    in file) resolves the shared ports to the intended services (EXPECTED_WINNERS).

Prints what is wrong and exits 1 if anything is; stdlib only (Python >= 3.11).
"""

from __future__ import annotations

import os
import re
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICES_PATH = os.path.join(HERE, "services.toml")
PORTS_PATH = os.path.join(HERE, "ports.toml")
DEFAULT_REFERENCE = os.path.join(HERE, "..", "..", "shared", "exchange-ports.md")

# ---------------------------------------------------------------------------------------
# Vocabularies
# ---------------------------------------------------------------------------------------

PROTOCOLS = {
    "smtp", "imap", "pop3", "http", "tls", "dns", "kerberos", "ldap", "dcerpc", "smb",
    "netbios", "sip", "rtp", "rtcp", "nntp", "irc", "x400", "h323", "t120", "rdp", "ssh",
    "ntp", "snmp", "syslog", "quic", "stun", "socks", "telnet", "ftp", "mgcp", "unknown",
}
TRANSPORTS = {"tcp", "udp", "both"}
ROLES = {
    "clients", "internet", "mailbox", "cas", "hub", "mailbox2010", "edge", "um", "ipgw",
    "dc", "dns", "ocs", "eop", "adrms", "admin", "davmail", "any",
}
VERSIONS = {"2000", "2003", "2007", "2010", "2013", "2016", "2019", "o365"}
SECTIONS = {str(n) for n in range(1, 12)} | {"general"}

SERVICE_KEYS = {"name": str, "protocol": str, "description": str}
# Keys a service may carry besides those: announced_only (the port names the service only when
# another flow announced it, issue 15: UM media).
SERVICE_OPTIONAL_KEYS = {"announced_only": bool}
PORT_KEYS = {
    "ports": str, "transport": str, "service": str, "tls": bool, "from": str, "to": str,
    "versions": list, "section": str, "note": str, "outside_seeds": bool,
}

# Services recognised from payload markers (section 11) rather than from a port of their
# own; they must NOT appear in ports.toml, every other service must.
PAYLOAD_ONLY_SERVICES = {
    "autodiscover", "activesync", "ews", "oab", "owa", "ecp", "remote-powershell",
    "mapi-http", "rpc-http", "emsmdb", "async-emsmdb", "nspi", "rfr",
    # recognised from the TLS server name (signatures/sni.toml)
    "o365-outlook", "o365-smtp", "eop",
}

# Ports on which TLS is implicit: any entry on these (port, transport) must have tls = true.
IMPLICIT_TLS = {
    (443, "tcp"), (563, "tcp"), (636, "tcp"), (993, "tcp"), (994, "tcp"), (995, "tcp"),
    (3269, "tcp"), (5061, "tcp"), (5066, "tcp"), (5068, "tcp"), (50636, "tcp"),
}

# Numbers in exchange-ports.md that are NOT ports. Anything else numeric in the reference
# must be covered by a port entry. Each value is listed with where it comes from.
NOT_PORTS = {
    # section numbers in "## N." headings and "see section N" / "(section N)" cross-references
    1: "section 1",
    2: "section 2; also the 2 of the SMTP verb X-LSA-2",
    3: "section 3",
    4: "section 4",
    5: "section 5; also Exchange 5.5 and SOCKS4/5",
    6: "section 6 (and 'see section 6')",
    7: "section 7",
    8: "section 8",
    9: "section 9",
    10: "section 10",
    11: "section 11",
    # (T.120, H.323, X.400, Exchange 5.5: the number after a dot is never read as an integer)
    # document / product numbers
    365: "Office 365",
    1006: "RFC 1006",
    1024: "RVP 'ephemeral port above 1024': a bound, the ports are 1025-65535",
    # Exchange / Windows versions and years
    2000: "Exchange 2000, Windows 2000",
    2003: "Exchange 2003",
    2008: "Windows Server 2008 / 2008 R2",
    2010: "Exchange 2010",
    2013: "Exchange 2013",
    2016: "Exchange 2016",
}

# Shared ports and the service that must win the classifier's tie-break for them.
EXPECTED_WINNERS = {
    (25, "tcp"): "smtp",
    (53, "udp"): "dns",
    (53, "tcp"): "dns",
    (80, "tcp"): "http",
    (135, "tcp"): "msrpc-epm",
    (135, "udp"): "msrpc-epm",
    (443, "tcp"): "https",
    (443, "udp"): "quic",
    (465, "tcp"): "smtp-client-proxy",
    (587, "tcp"): "smtp-submission",
    (993, "tcp"): "imap4s",
    (995, "tcp"): "pop3s",
    (1025, "tcp"): "davmail-smtp",
    (1080, "tcp"): "proxy-probe-socks",
    (3000, "tcp"): "msrpc-dynamic",      # only the wide 1025-65535 ranges: RPC before RVP
    (5060, "tcp"): "um-sip",
    (5061, "tcp"): "um-sips",
    (5065, "tcp"): "um-sip",
    (5066, "tcp"): "um-sips",
    (5067, "tcp"): "um-sip",
    (5068, "tcp"): "um-sips",
    (5076, "tcp"): "owa-ocs",
    (6002, "tcp"): "rpc-http-referral",
    (6004, "tcp"): "rpc-http-nspi",
    (16500, "tcp"): "um-control",
    (30000, "tcp"): "msrpc-dynamic",
    (40000, "udp"): "um-rtp",
    (50000, "tcp"): "msrpc-dynamic",
    (59532, "tcp"): "rpc-client-access",
    (59533, "tcp"): "address-book",
    (60000, "tcp"): "msrpc-static",
    (62000, "tcp"): "msrpc-dynamic",
}

# ---------------------------------------------------------------------------------------

errors: list[str] = []
verbose = False


def err(msg: str) -> None:
    errors.append(msg)


def parse_ports(spec: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", spec)
    if not m:
        return None
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    return lo, hi


def transport_ok(entry_transport: str, wanted: str) -> bool:
    return entry_transport == "both" or entry_transport == wanted


# ---------------------------------------------------------------------------------------
# services.toml / ports.toml
# ---------------------------------------------------------------------------------------

def check_services(doc: dict) -> dict[str, dict]:
    services: dict[str, dict] = {}
    extra = set(doc) - {"service"}
    if extra:
        err(f"services.toml: unexpected top-level keys {sorted(extra)}")
    for i, s in enumerate(doc.get("service", [])):
        where = f"services.toml service #{i + 1} ({s.get('name', '?')})"
        if not set(SERVICE_KEYS) <= set(s) <= set(SERVICE_KEYS) | set(SERVICE_OPTIONAL_KEYS):
            err(f"{where}: keys {sorted(s)} != {sorted(SERVICE_KEYS)} "
                f"(optional: {sorted(SERVICE_OPTIONAL_KEYS)})")
        for k, t in (SERVICE_KEYS | SERVICE_OPTIONAL_KEYS).items():
            if k in s and not isinstance(s[k], t):
                err(f"{where}: {k} must be {t.__name__}")
        name = s.get("name", "")
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", str(name)):
            err(f"{where}: bad name {name!r} (lowercase, hyphenated)")
        if name in services:
            err(f"{where}: duplicate service name {name!r}")
        if s.get("protocol") not in PROTOCOLS:
            err(f"{where}: protocol {s.get('protocol')!r} not in vocabulary")
        if not str(s.get("description", "")).strip():
            err(f"{where}: empty description")
        services[name] = s
    return services


def documented_roles(raw: str) -> set[str]:
    """Roles listed in the '# Roles' comment block at the top of ports.toml."""
    roles: set[str] = set()
    in_block = False
    for line in raw.splitlines():
        if not line.startswith("#"):
            if in_block:
                break
            continue
        if re.match(r"#\s*Roles\b", line):
            in_block = True
            continue
        if in_block:
            if line.strip() == "#":
                break
            m = re.match(r"#\s{2,}([a-z0-9]+)\s{2,}\S", line)
            if m:
                roles.add(m.group(1))
    return roles


def check_ports(doc: dict, raw: str, services: dict[str, dict],
                outside_sections: set[str]) -> list[dict]:
    entries: list[dict] = []
    extra = set(doc) - {"port"}
    if extra:
        err(f"ports.toml: unexpected top-level keys {sorted(extra)}")
    documented = documented_roles(raw)
    if not documented:
        err("ports.toml: no '# Roles' comment block found")
    for r in sorted(documented - ROLES):
        err(f"ports.toml: documented role {r!r} is not in the role vocabulary")
    seen: set[tuple] = set()
    used_roles: set[str] = set()
    for i, p in enumerate(doc.get("port", [])):
        where = f"ports.toml entry #{i + 1} (ports={p.get('ports')!r}, service={p.get('service')!r}, section={p.get('section')!r})"
        if set(p) != set(PORT_KEYS):
            err(f"{where}: keys {sorted(p)} != {sorted(PORT_KEYS)}")
        bad_type = False
        for k, t in PORT_KEYS.items():
            if k in p and not isinstance(p[k], t):
                err(f"{where}: {k} must be {t.__name__}")
                bad_type = True
        if bad_type:
            continue
        rng = parse_ports(p.get("ports", ""))
        if rng is None:
            err(f"{where}: ports must be 'N' or 'N-M'")
            continue
        lo, hi = rng
        if not (1 <= lo <= 65535 and 1 <= hi <= 65535):
            err(f"{where}: port out of 1-65535")
        if lo > hi:
            err(f"{where}: range lo > hi")
        if "-" in p["ports"] and lo == hi:
            err(f"{where}: degenerate range, write a single port")
        if p["transport"] not in TRANSPORTS:
            err(f"{where}: transport {p['transport']!r} not in {sorted(TRANSPORTS)}")
        if p["service"] not in services:
            err(f"{where}: service {p['service']!r} not defined in services.toml")
        for role_key in ("from", "to"):
            role = p[role_key]
            used_roles.add(role)
            if role not in ROLES:
                err(f"{where}: {role_key} role {role!r} not in vocabulary")
            elif role not in documented:
                err(f"{where}: {role_key} role {role!r} not documented in the Roles comment block")
        vers = p["versions"]
        if any(v not in VERSIONS for v in vers):
            err(f"{where}: versions {vers} not all in {sorted(VERSIONS)}")
        if len(set(vers)) != len(vers):
            err(f"{where}: duplicate versions {vers}")
        if p["section"] not in SECTIONS:
            err(f"{where}: section {p['section']!r} not in 1-11/general")
        if p["section"] == "general":
            if vers:
                err(f"{where}: general entries must have versions = []")
            if p["outside_seeds"]:
                err(f"{where}: general entries are not reference facts; outside_seeds must be false")
        elif not vers:
            err(f"{where}: reference entries need at least one version")
        if p["outside_seeds"] and p["section"] not in outside_sections:
            err(f"{where}: outside_seeds = true but the reference marks nothing "
                f"'(outside the seeds)' in section {p['section']}")
        if not p["note"].strip():
            err(f"{where}: empty note")
        if p["service"] in PAYLOAD_ONLY_SERVICES:
            err(f"{where}: {p['service']!r} is a payload-level service and must not have a port entry")
        # single ports only: a range may mix plain and TLS ports (5065-5068), and the
        # single-port entries win over it anyway
        for t in ("tcp", "udp"):
            if lo == hi and transport_ok(p["transport"], t):
                if (lo, t) in IMPLICIT_TLS and not p["tls"]:
                    err(f"{where}: {lo}/{t} is an implicit-TLS port but tls = false")
        key = tuple((k, str(p[k])) for k in sorted(PORT_KEYS))
        if key in seen:
            err(f"{where}: exact duplicate of an earlier entry")
        seen.add(key)
        e = dict(p)
        e["lo"], e["hi"], e["index"] = lo, hi, i
        entries.append(e)
    for r in sorted(documented - used_roles):
        err(f"ports.toml: role {r!r} documented but never used")

    # one tls value per service
    by_service: dict[str, set[bool]] = {}
    for e in entries:
        by_service.setdefault(e["service"], set()).add(e["tls"])
    for name, vals in sorted(by_service.items()):
        if len(vals) > 1:
            err(f"service {name!r}: entries disagree on tls")
    # every non-payload service is used
    for name in sorted(services):
        if name in PAYLOAD_ONLY_SERVICES:
            continue
        if name not in by_service:
            err(f"services.toml: service {name!r} is never used in ports.toml")
    for name in sorted(PAYLOAD_ONLY_SERVICES - set(services)):
        err(f"check.py: payload-only service {name!r} is not defined in services.toml")
    return entries


# ---------------------------------------------------------------------------------------
# Reference cross-check
# ---------------------------------------------------------------------------------------

UUID_RE = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
RANGE_RE = re.compile(r"(?<![\w.-])(\d+)-(\d+)(?![\w-])")
# "389/tcp", "53/udp", "389/tcp+udp", "135/tcp (+udp)", "1024-65535/udp"
PROTO_RE = re.compile(r"(?<![\w.-])(\d+(?:-\d+)?)/(tcp|udp)(?:\s*\(?\+(tcp|udp)\)?)?")
# "5075, 5076, 5077/tcp": the numbers before the last one inherit its transport
LIST_RE = re.compile(r"((?:(?<![\w.-])\d+,\s*)+)(\d+)/(tcp|udp)")
INT_RE = re.compile(r"(?<![\w.])\d+(?![\w])")


def reference_facts(text: str):
    """Return (ranges, port_context, transports, all_ints, outside_sections)."""
    clean = UUID_RE.sub(" ", text)

    outside_sections: set[str] = set()
    section = None
    for line in clean.splitlines():
        m = re.match(r"##\s+(\d+)\.", line)
        if m:
            section = m.group(1)
        if section and "outside the seeds" in line:
            outside_sections.add(section)

    ranges: set[tuple[int, int]] = set()
    for m in RANGE_RE.finditer(clean):
        lo, hi = int(m.group(1)), int(m.group(2))
        ranges.add((lo, hi))

    transports: set[tuple[int, int, str]] = set()   # (lo, hi, transport)
    port_context: set[int] = set()                  # single numbers used as ports
    for m in PROTO_RE.finditer(clean):
        lo, hi = parse_ports(m.group(1))
        for t in {m.group(2), m.group(3)} - {None}:
            transports.add((lo, hi, t))
        if lo == hi:
            port_context.add(lo)
    for m in LIST_RE.finditer(clean):
        t = m.group(3)
        for n in re.findall(r"\d+", m.group(1)):
            transports.add((int(n), int(n), t))
            port_context.add(int(n))

    # "port 717", "example 59532", "on 1080", "IMAP 1143", "(135 RPC)", "(445 SMB)", and
    # comma lists of three or more numbers ("1080, 1081, 3128, ...")
    for m in re.finditer(r"\b(?:[Pp]orts?|on|example|IMAP4?|POP3?|SMTP|LDAP|HTTP|EWS)\s+(\d+)\b", clean):
        port_context.add(int(m.group(1)))
    for m in re.finditer(r"\((\d+)\s+(?:RPC|SMB)\)", clean):
        port_context.add(int(m.group(1)))
    for m in re.finditer(r"(?<![\w.-])\d+(?:,\s*\d+){2,}", clean):
        port_context.update(int(n) for n in re.findall(r"\d+", m.group(0)))

    # "Port" / "Ports" columns of markdown tables
    header: list[str] | None = None
    for line in clean.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        for idx, name in enumerate(header):
            if re.fullmatch(r"Ports?", name) and idx < len(cells):
                cell = RANGE_RE.sub(" ", cells[idx])
                for n in INT_RE.findall(cell):
                    port_context.add(int(n))

    # every other integer in the document (ranges removed so their bounds are not
    # double-counted as single ports)
    all_ints: set[int] = set()
    for n in INT_RE.findall(RANGE_RE.sub(" ", clean)):
        all_ints.add(int(n))
    return ranges, port_context, transports, all_ints, outside_sections


# A range entry counts as covering a single port number of the reference only when it is
# narrow, i.e. a written-out list such as "5075, 5076, 5077/tcp" stored as "5075-5077".
# Wide dynamic ranges (1024-65535/udp, 1025-65535/tcp, 6005-59530 ...) never do: they
# contain nearly every port and would make the check meaningless.
MAX_LIST_RANGE = 16


def covered(entries: list[dict], lo: int, hi: int, transport: str | None = None) -> bool:
    """A reference port (lo == hi) or range (lo < hi) has a matching entry.

    Ranges need an entry with exactly that range; single ports need a single-port entry
    or a narrow range entry containing them.
    """
    for e in entries:
        if transport is not None and not transport_ok(e["transport"], transport):
            continue
        if lo < hi:
            if e["lo"] == lo and e["hi"] == hi:
                return True
        elif e["lo"] <= lo <= e["hi"] and e["hi"] - e["lo"] < MAX_LIST_RANGE:
            return True
    return False


def cross_check(entries: list[dict], text: str) -> None:
    ranges, port_context, transports, all_ints, _ = reference_facts(text)

    for n in sorted(port_context & set(NOT_PORTS)):
        err(f"reference: {n} is used as a port in the reference but is allow-listed in NOT_PORTS")

    for lo, hi in sorted(ranges):
        if not covered(entries, lo, hi):
            err(f"reference: range {lo}-{hi} has no entry with exactly that range")

    for n in sorted(port_context):
        if not (1 <= n <= 65535) or not covered(entries, n, n):
            err(f"reference: port {n} (written as a port in the reference) has no entry")

    for lo, hi, t in sorted(transports):
        if not covered(entries, lo, hi, t):
            what = f"{lo}" if lo == hi else f"{lo}-{hi}"
            err(f"reference: {what}/{t} has no entry with transport {t} or both")

    for n in sorted(all_ints - port_context - set(NOT_PORTS)):
        if not (1 <= n <= 65535) or not covered(entries, n, n):
            err(f"reference: number {n} is neither covered by an entry nor allow-listed in NOT_PORTS")

    unused = sorted(set(NOT_PORTS) - all_ints)
    if unused:
        print(f"note: NOT_PORTS values not found in the reference: {unused}")
    if verbose:
        print(f"reference: {len(ranges)} ranges, {len(port_context)} numbers in port context, "
              f"{len(all_ints)} distinct integers, {len(NOT_PORTS)} allow-listed non-ports")


# ---------------------------------------------------------------------------------------
# Precedence
# ---------------------------------------------------------------------------------------

def winner(entries: list[dict], port: int, transport: str) -> dict | None:
    cands = [e for e in entries
             if e["lo"] <= port <= e["hi"] and transport_ok(e["transport"], transport)]
    if not cands:
        return None
    return min(cands, key=lambda e: (e["hi"] - e["lo"], e["index"]))


def check_precedence(entries: list[dict]) -> None:
    for (port, t), want in sorted(EXPECTED_WINNERS.items()):
        w = winner(entries, port, t)
        got = w["service"] if w else None
        if got != want:
            err(f"precedence: {port}/{t} resolves to {got!r}, expected {want!r}")
    if verbose:
        singles: dict[tuple[int, str], set[str]] = {}
        for e in entries:
            if e["lo"] == e["hi"]:
                for t in ("tcp", "udp"):
                    if transport_ok(e["transport"], t):
                        singles.setdefault((e["lo"], t), set()).add(e["service"])
        print("shared single ports (winner first):")
        for (port, t), svcs in sorted(singles.items()):
            if len(svcs) > 1:
                w = winner(entries, port, t)["service"]
                others = sorted(svcs - {w})
                print(f"  {port}/{t}: {w}  (also {', '.join(others)})")


# ---------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    global verbose
    args = [a for a in argv[1:] if not a.startswith("-")]
    verbose = "-v" in argv[1:] or "--verbose" in argv[1:]
    ref_path = args[0] if args else DEFAULT_REFERENCE
    if not os.path.exists(ref_path):
        print(f"usage: {argv[0]} /path/to/exchange-ports.md [-v]", file=sys.stderr)
        return 2

    with open(ref_path, encoding="utf-8") as f:
        ref_text = f.read()
    with open(SERVICES_PATH, "rb") as f:
        services_doc = tomllib.load(f)
    with open(PORTS_PATH, "rb") as f:
        ports_raw = f.read()
    ports_doc = tomllib.loads(ports_raw.decode("utf-8"))

    outside_sections = reference_facts(ref_text)[4]
    services = check_services(services_doc)
    entries = check_ports(ports_doc, ports_raw.decode("utf-8"), services, outside_sections)
    cross_check(entries, ref_text)
    check_precedence(entries)

    sections = {}
    for e in entries:
        sections[e["section"]] = sections.get(e["section"], 0) + 1
    print(f"{len(services)} services, {len(entries)} port entries "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(sections.items(), key=lambda kv: (kv[0] == 'general', int(kv[0]) if kv[0].isdigit() else 0)))})")
    missing_sections = {str(n) for n in range(1, 11)} - set(sections)
    if missing_sections:
        # section 11 holds payload markers only; its ports (6001/6002/6004) are in section 5
        err(f"no entries for reference sections {sorted(missing_sections, key=int)}")

    if errors:
        print(f"\n{len(errors)} problem(s):")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
