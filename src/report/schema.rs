//! The record schema: every field a record can carry, with its Elastic Common Schema type and
//! shape. The writer reads it to emit detection fields as numbers, booleans and arrays; the
//! Elasticsearch index template (`exwatch schema --format elasticsearch`) and the README's
//! field table (`--format markdown`) are printed from it, so the three cannot drift apart.
//! Names outside `exwatch.` are ECS fields of ECS 9.5 (`tests/ecs.rs` checks every record of
//! every capture against `../shared/ecs/ecs-fields.tsv`), except `tls.client.ja4` and
//! `tls.server.ja4s`, kept beside ECS's JA3 names.

/// The ECS version the names and types follow (`ecs.version` of every record).
pub const ECS_VERSION: &str = "9.5.0";

/// A field's Elasticsearch type (the ECS names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Keyword,
    /// ECS's type of `url.path` and `url.original`: a keyword for substring search.
    Wildcard,
    Long,
    Float,
    Boolean,
    /// RFC 3339 text.
    Date,
    Ip,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Keyword => "keyword",
            Type::Wildcard => "wildcard",
            Type::Long => "long",
            Type::Float => "float",
            Type::Boolean => "boolean",
            Type::Date => "date",
            Type::Ip => "ip",
        }
    }
}

/// One field of the records.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub path: &'static str,
    pub ty: Type,
    /// An array of values (ECS shape "array"); detectors give one entry per element.
    pub array: bool,
    pub doc: &'static str,
}

const fn f(path: &'static str, ty: Type, doc: &'static str) -> Field {
    Field {
        path,
        ty,
        array: false,
        doc,
    }
}

const fn list(path: &'static str, ty: Type, doc: &'static str) -> Field {
    Field {
        path,
        ty,
        array: true,
        doc,
    }
}

use Type::{Boolean as B, Date as D, Float as F, Ip as I, Keyword as K, Long as L, Wildcard as W};

/// Every field, in path order (binary-searched by [`lookup`]).
pub const FIELDS: &[Field] = &[
    f("@timestamp", D, "flow start (RFC 3339, nanoseconds)"),
    f("destination.bytes", L, "IP-level bytes sent by the responder (headers included)"),
    f("destination.ip", I, "the responder"),
    f("destination.mac", K, "the responder's MAC address (Ethernet captures), as in ECS: `00-11-22-33-44-55`"),
    f("destination.packets", L, "packets sent by the responder"),
    f("destination.port", L, "the responder's port (absent for protocols without ports)"),
    f("dns.question.name", K, "DNS: the first question's name"),
    f("dns.question.type", K, "DNS: the first question's type (`A`, `SRV`, `MX`...)"),
    f("dns.response_code", K, "DNS: the response code (`NOERROR`, `NXDOMAIN`...)"),
    f("ecs.version", K, "the ECS version the record follows"),
    list("event.category", K, "`[network]`"),
    f("event.dataset", K, "`exwatch.flow`"),
    f("event.duration", L, "nanoseconds from first to last packet"),
    f("event.end", D, "last packet"),
    f("event.kind", K, "`event`; `alert` on alert records (live, `--policy`)"),
    f("event.module", K, "`exwatch`"),
    f("event.start", D, "first packet"),
    list("event.type", K, "`connection`, and `end` on the final record, `info` on interim and alert records; `allowed` or `denied` when a policy or rule set judged the flow"),
    f("exwatch.activesync.protocol_version", K, "ActiveSync: `MS-ASProtocolVersion`"),
    f("exwatch.client_application", K, "the Outlook or client application an HTTP request names"),
    f("exwatch.confidence", K, "`payload` (the flow's bytes said so), `expectation` (announced by another flow), `endpoint` (server confirmed by payload elsewhere), `port` (the port alone), `none`"),
    f("exwatch.conn_state", K, "Zeek-style: `S0`, `S1`, `SF`, `REJ`, `S2`, `S3`, `RSTO`, `RSTR`, `RSTOS0`, `RSTRH`, `SH`, `SHR`, `OTH`; UDP `S0` (one way) or `SF`"),
    f("exwatch.dcerpc.auth_level", K, "DCE/RPC: authentication level of the bind"),
    f("exwatch.dcerpc.auth_type", K, "DCE/RPC: authentication type of the bind (`ntlm`, `spnego`, `kerberos`...)"),
    f("exwatch.dcerpc.bind_result", K, "DCE/RPC: `accepted`, or `rejected: REASON`"),
    f("exwatch.dcerpc.epm_map_interface", K, "DCE/RPC: the interface an endpoint-mapper request asked for"),
    f("exwatch.dcerpc.epm_port", L, "DCE/RPC: the dynamic port the endpoint mapper answered"),
    f("exwatch.dcerpc.interface", K, "DCE/RPC: the bound interface (`emsmdb`, `nspi`, `rfr`, `samr`... from `signatures/dcerpc.toml`)"),
    f("exwatch.dcerpc.interface_uuid", K, "DCE/RPC: the bound interface's UUID"),
    f("exwatch.dcerpc.interface_version", K, "DCE/RPC: the bound interface's version (`major.minor`)"),
    list("exwatch.dcerpc.interfaces", K, "DCE/RPC: every interface of a bind that offers several"),
    f("exwatch.dcerpc.opnum", L, "DCE/RPC: the operation number of the first request"),
    f("exwatch.end_reason", K, "`idle`, `closed`, `eviction`, `end-of-input`; `shutdown` (live capture stopped); `active-timeout` on interim records; `alert` on alert records"),
    f("exwatch.evidence", K, "short text: what decided"),
    list("exwatch.exchange_markers", K, "Exchange fingerprints seen (SMTP banner and EHLO keywords X-ANONYMOUSTLS, X-EXPS, XEXCH50, XRDST, X-LSA-2...; IMAP and POP3 greetings)"),
    f("exwatch.firewall.action", K, "`allow` or `deny` (`validate`)"),
    f("exwatch.firewall.reversed", B, "decided with source and destination swapped (mid-stream flow)"),
    f("exwatch.h323.message", K, "H.323: the first Q.931 message"),
    f("exwatch.http.tunnel_target", K, "HTTP: the target of a `CONNECT` tunnel (`host:port`, never userinfo)"),
    f("exwatch.icmp.code", L, "ICMP code of the flow's first message"),
    f("exwatch.icmp.type", L, "ICMP type of the flow's first message"),
    f("exwatch.inner_protocol", K, "the protocol inside an HTTP `CONNECT` tunnel, from the payload detectors run on the bytes after the proxy's 2xx (`unknown` when none claims them); TLS to a port whose TLS is implicit is named as `network.protocol` would name it there (443: `http`, 636: `ldap`), its `tls.*` fields kept"),
    f("exwatch.interim", B, "`true` on an interim record (`--active-timeout`) or an alert record, absent on the final one"),
    f("exwatch.kerberos.error_code", K, "Kerberos: the KRB-ERROR code name"),
    f("exwatch.kerberos.msg_type", K, "Kerberos: the request (`AS-REQ`, `TGS-REQ`...)"),
    f("exwatch.kerberos.realm", K, "Kerberos: the realm"),
    f("exwatch.kerberos.reply_msg_type", K, "Kerberos: the reply (`AS-REP`, `TGS-REP`, `KRB-ERROR`)"),
    f("exwatch.ldap.bind_auth", K, "LDAP: `simple` or `sasl` (never the credentials)"),
    f("exwatch.ldap.operation", K, "LDAP: the first operation"),
    f("exwatch.mapi.endpoint", K, "MAPI over HTTP: `emsmdb` or `nspi`"),
    f("exwatch.mapi.request_type", K, "MAPI over HTTP: `X-RequestType`"),
    f("exwatch.mgcp.verb", K, "MGCP: the first command"),
    f("exwatch.mid_stream", B, "the originator was guessed (no SYN or SYN-ACK seen first)"),
    f("exwatch.netbios.calling_name", K, "NetBIOS session: the calling name"),
    f("exwatch.netbios.destination_name", K, "NetBIOS datagram: the destination name"),
    f("exwatch.netbios.name", K, "NetBIOS name service: the name asked for"),
    f("exwatch.netbios.operation", K, "NetBIOS name service: the operation"),
    f("exwatch.netbios.service", K, "NetBIOS: `name`, `datagram` or `session`"),
    f("exwatch.ntp.mode", K, "NTP: the mode"),
    f("exwatch.parent", K, "Community ID of the flow that announced this one (expectation, endpoint)"),
    f("exwatch.payload_bytes.destination", L, "transport payload bytes sent by the responder"),
    f("exwatch.payload_bytes.source", L, "transport payload bytes sent by the originator"),
    f("exwatch.policy.destination_group", K, "the policy groups of the destination as judged, joined by `+` when it is in several (`dns+dc`)"),
    f("exwatch.policy.reason", K, "why, e.g. `no rule allows edge -> mailbox tcp/50636`, `payload is http (owa), the port means um-sip (sip)`"),
    f("exwatch.policy.reversed", B, "judged with source and destination swapped (mid-stream flow)"),
    f("exwatch.policy.rule", K, "the allowing rule, or the rule whose payload test failed (absent when unexpected)"),
    f("exwatch.policy.source_group", K, "the policy groups of the source as judged, joined by `+` when it is in several (`dns+dc`)"),
    f("exwatch.policy.verdict", K, "`allowed`, `unexpected` or `mismatch` (`--policy`)"),
    f("exwatch.port_mismatch", K, "when payload names another protocol than the port would: what the port would have meant"),
    f("exwatch.quic.version", K, "QUIC: the version of the first long header"),
    list("exwatch.rdp.requested_protocols", K, "RDP: the security protocols the client asked for"),
    f("exwatch.rdp.selected_protocol", K, "RDP: the security protocol the server chose"),
    f("exwatch.rpc_http.target_port", L, "RPC over HTTP target port (6001 store, 6002 referral, 6004 NSPI)"),
    f("exwatch.rtcp.packet_type", K, "RTCP: the first packet's type"),
    f("exwatch.rtcp.ssrc", K, "RTCP: the sender's SSRC (hexadecimal)"),
    f("exwatch.rtp.payload_type", K, "RTP: payload type number and encoding (`0 PCMU`)"),
    f("exwatch.rtp.ssrc", K, "RTP: the stream's SSRC (hexadecimal)"),
    f("exwatch.rtt_ms", F, "TCP handshake round-trip time (SYN to the originator's ACK) when seen"),
    f("exwatch.service", K, "the Exchange-level service (names in `signatures/services.toml`), e.g. `smtp`, `mapi-http`, `rpc-http`, `ews`, `activesync`, `autodiscover`, `owa`, `edgesync`, `um-sip`, `um-rtp`, `msrpc-dynamic`"),
    f("exwatch.sip.method", K, "SIP: the first request's method"),
    f("exwatch.sip.sdp_media", K, "SIP: the SDP media line announced"),
    f("exwatch.sip.status_code", L, "SIP: the first response's status code"),
    f("exwatch.sip.user_agent", K, "SIP: `User-Agent` or `Server`"),
    f("exwatch.smb.command", K, "SMB: the first command"),
    f("exwatch.smb.dialect", K, "SMB: the negotiated dialect"),
    f("exwatch.smb.encrypted", B, "SMB: the session is encrypted (SMB3 transform header)"),
    f("exwatch.smb.version", K, "SMB: `1` or `2/3`"),
    f("exwatch.snmp.pdu", K, "SNMP: the first PDU's type"),
    f("exwatch.snmp.version", K, "SNMP: `1`, `2c` or `3`"),
    f("exwatch.ssh.client_software", K, "SSH: the client's software version"),
    f("exwatch.ssh.server_software", K, "SSH: the server's software version"),
    f("exwatch.ssh.version", K, "SSH: the protocol version"),
    f("exwatch.stun.message_type", K, "STUN/TURN: the first message's type"),
    f("exwatch.stun.software", K, "STUN/TURN: `SOFTWARE` attribute"),
    f("exwatch.syslog.facility", L, "syslog: facility number"),
    f("exwatch.syslog.severity", L, "syslog: severity number"),
    list("exwatch.tls.client_alpn", K, "TLS: the ALPN protocols the client offered"),
    f("exwatch.tls.decrypt_error", K, "TLS: why the session's records could not be decrypted with `--tls-keylog` (suite not supported, secrets missing, a record the keys do not open)"),
    f("exwatch.tls.decrypted", B, "TLS: the application data was decrypted with `--tls-keylog` (for classification only: nothing decrypted is recorded)"),
    f("exwatch.tls_upgrade", K, "`STARTTLS`, `STLS`, `X-ANONYMOUSTLS`... when a clear-text session was upgraded"),
    f("exwatch.x400.called_tsap", K, "X.400 over RFC 1006: the called TSAP"),
    f("http.request.method", K, "HTTP: the first request's method"),
    f("http.response.status_code", L, "HTTP: the first response's status code"),
    f("network.bytes", L, "IP-level bytes, both directions"),
    f("network.community_id", K, "Community ID v1, seed 0"),
    f("network.direction", K, "`internal`, `inbound`, `outbound` or `external`, from `--home-net` or the policy's groups (absent without either)"),
    f("network.iana_number", K, "IP protocol number"),
    f("network.inner.vlan.id", K, "inner (QinQ) VLAN, when tagged twice"),
    f("network.packets", L, "packets, both directions"),
    f("network.protocol", K, "application protocol, from the vocabulary below"),
    f("network.transport", K, "`tcp`, `udp`, `icmp`, `ipv6-icmp`, `gre`, `esp`... or the IP protocol number"),
    f("network.type", K, "`ipv4` or `ipv6`"),
    f("network.vlan.id", K, "outer VLAN, when tagged"),
    f("observer.hostname", K, "the host exwatch ran on"),
    f("observer.ingress.interface.name", K, "the interface captured (`live`)"),
    f("observer.product", K, "`exwatch`"),
    f("observer.type", K, "`sensor`"),
    f("observer.vendor", K, "`exwatch`"),
    f("observer.version", K, "exwatch's version"),
    list("related.ip", I, "both addresses"),
    f("rule.name", K, "the rule that decided: with `validate`, the first matching firewall rule (`CHAIN default policy` for a chain's policy); otherwise `exwatch.policy.rule`"),
    f("rule.ruleset", K, "the policy file (`--policy`) or rule-set file (`validate --rules`) of `rule.name`"),
    f("source.bytes", L, "IP-level bytes sent by the originator (headers included)"),
    f("source.ip", I, "the originator"),
    f("source.mac", K, "the originator's MAC address (Ethernet captures)"),
    f("source.packets", L, "packets sent by the originator"),
    f("source.port", L, "the originator's port (absent for protocols without ports)"),
    f("tls.cipher", K, "TLS: the cipher suite the server chose"),
    f("tls.client.ja3", K, "TLS: JA3 of the ClientHello"),
    f("tls.client.ja4", K, "TLS: JA4 of the ClientHello (not an ECS field)"),
    f("tls.client.server_name", K, "TLS: SNI"),
    f("tls.established", B, "TLS: a clear-text session was upgraded into TLS (STARTTLS)"),
    f("tls.next_protocol", K, "TLS: the ALPN protocol the server chose"),
    f("tls.resumed", B, "TLS: the server resumed a session (session ID echoed, or a pre-shared key accepted)"),
    f("tls.server.issuer", K, "TLS: the certificate issuer's distinguished name (certificates in clear, TLS 1.2 and older)"),
    f("tls.server.ja3s", K, "TLS: JA3S of the ServerHello"),
    f("tls.server.ja4s", K, "TLS: JA4S of the ServerHello (not an ECS field)"),
    f("tls.server.not_after", D, "TLS: the certificate's end of validity"),
    f("tls.server.not_before", D, "TLS: the certificate's start of validity"),
    f("tls.server.subject", K, "TLS: the certificate subject's distinguished name"),
    list("tls.server.x509.alternative_names", K, "TLS: the certificate's DNS names"),
    list("tls.server.x509.issuer.common_name", K, "TLS: the issuer's common name"),
    f("tls.server.x509.not_after", D, "TLS: the certificate's end of validity"),
    f("tls.server.x509.not_before", D, "TLS: the certificate's start of validity"),
    list("tls.server.x509.subject.common_name", K, "TLS: the certificate subject's common name"),
    f("tls.version", K, "TLS: the negotiated version (the offered one without a ServerHello)"),
    f("tls.version_protocol", K, "`tls` or `ssl`"),
    f("url.domain", K, "HTTP: an absolute-form or CONNECT target's host (without userinfo or port), else `Host`'s"),
    f("url.path", W, "HTTP: the path alone: userinfo, `;params`, query and `#fragment` are never recorded"),
    f("user_agent.original", K, "HTTP: `User-Agent`"),
];

/// The schema entry of `path`. Every record looks up each of its detection fields: a hash
/// map costs a fifth of the binary search's string comparisons.
pub fn lookup(path: &str) -> Option<&'static Field> {
    static INDEX: std::sync::LazyLock<
        hashbrown::HashMap<&'static str, &'static Field, foldhash::fast::FixedState>,
    > = std::sync::LazyLock::new(|| FIELDS.iter().map(|f| (f.path, f)).collect());
    INDEX.get(path).copied()
}

/// The Elasticsearch index template for the records: every field mapped with its type.
pub fn elasticsearch_template() -> String {
    use serde_json::{json, Map, Value};
    let mut props = Map::new();
    for fl in FIELDS {
        let mut segs = fl.path.split('.').peekable();
        let mut node = &mut props;
        while let Some(seg) = segs.next() {
            if segs.peek().is_none() {
                let mut m = json!({ "type": fl.ty.name() });
                if fl.ty == Type::Keyword {
                    m["ignore_above"] = json!(1024);
                }
                node.insert(seg.to_string(), m);
            } else {
                let entry = node
                    .entry(seg.to_string())
                    .or_insert_with(|| json!({ "properties": {} }));
                node = entry["properties"]
                    .as_object_mut()
                    .expect("an object segment holds properties");
            }
        }
    }
    let t = json!({
        "index_patterns": ["exwatch-*"],
        "priority": 200,
        "_meta": {
            "description": "exwatch flow records (NDJSON), generated by `exwatch schema --format elasticsearch`",
            "ecs_version": ECS_VERSION,
        },
        "template": {
            "settings": { "index": { "mapping": { "total_fields": { "limit": 2000 } } } },
            "mappings": {
                "dynamic": "strict",
                "date_detection": false,
                "properties": Value::Object(props),
            },
        },
    });
    let mut s = serde_json::to_string_pretty(&t).expect("a JSON value prints");
    s.push('\n');
    s
}

/// The README's field table (markdown).
pub fn markdown_table() -> String {
    let mut s = String::from("| field | type | meaning |\n|---|---|---|\n");
    for fl in FIELDS {
        let ty = if fl.array {
            format!("{}[]", fl.ty.name())
        } else {
            fl.ty.name().to_string()
        };
        s.push_str(&format!("| `{}` | {} | {} |\n", fl.path, ty, fl.doc));
    }
    s
}

/// The schema as tab-separated field, type and shape (the columns of ECS's `ecs-fields.tsv`).
pub fn tsv() -> String {
    let mut s = String::from("field\ttype\tshape\n");
    for fl in FIELDS {
        let shape = if fl.array { "array" } else { "scalar" };
        s.push_str(&format!("{}\t{}\t{}\n", fl.path, fl.ty.name(), shape));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_sorted_and_unique() {
        for w in FIELDS.windows(2) {
            assert!(w[0].path < w[1].path, "{} before {}", w[0].path, w[1].path);
        }
        assert_eq!(lookup("tls.established").unwrap().ty, Type::Boolean);
        assert!(lookup("tls.established.x").is_none());
    }

    #[test]
    fn no_field_is_also_an_object() {
        // Elasticsearch cannot map `a` as a value and `a.b` beneath it.
        for fl in FIELDS {
            let prefix = format!("{}.", fl.path);
            assert!(
                !FIELDS.iter().any(|g| g.path.starts_with(&prefix)),
                "{} is both a value and an object",
                fl.path
            );
        }
    }
}
