//! Report stage: `--report PATH`, one self-contained HTML page for people who will not run
//! exwatch. It is rendered from the run's summary JSON (the `--summary-json` document, with
//! its `inventory`, `policy` and `firewall` members), so the page and the JSON never
//! disagree. No script and nothing fetched: inline CSS, charts as inline SVG, and every value
//! from the traffic or the files HTML-escaped. Elements carry ids and `data-` attributes with
//! the exact values, for tests and for anyone who scrapes the page.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What the page says about the run beyond the summary.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// `audit`, `validate` or `live`.
    pub mode: String,
    /// The captures read (or the interface, live).
    pub sources: Vec<String>,
    /// `--policy` files, joined.
    pub policy: Option<String>,
    /// `validate --rules` file.
    pub rules: Option<String>,
    /// Where exwatch ran.
    pub hostname: String,
}

/// Escape text for HTML element content and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Control characters have no business in a report; they would only confuse.
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// A JSON value as plain text (strings without quotes).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Bytes for people: 1.2 MB (decimal units, as the summary's byte counts are exact).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Colours of the chart series, in order; the last is for "other".
const PALETTE: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
];

const STYLE: &str = "
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d3557;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#d8e0ea}
main{padding:8px 28px 40px;max-width:1240px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:16px 0;padding:10px 16px 14px}
h2{font-size:17px;margin:6px 0 10px;color:#1d3557}
p.note{color:#5a6372;margin:4px 0 8px;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e8ebef;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font:12px ui-monospace,Menlo,Consolas,monospace}
.role{display:inline-block;border-radius:3px;padding:0 6px;margin:1px 2px 1px 0;font-size:12px;color:#fff;background:#457b9d}
.role-Mailbox{background:#1d6fa5}.role-CAS{background:#2a9d8f}.role-Edge{background:#e76f51}.role-DC-GC{background:#6a4c93}.role-UM{background:#c9184a}
.kpis{display:flex;flex-wrap:wrap;gap:10px}
.kpi{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:20px;color:#1d3557}
.bad{color:#b00020;font-weight:600}
.matrix td.c{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
svg text{font:11px system-ui,sans-serif;fill:#333}
";

/// Render the page from the summary JSON of the run.
pub fn render(summary: &Value, meta: &Meta) -> String {
    let mut h = String::with_capacity(64 << 10);
    let title = format!("exwatch {} report: {}", meta.mode, meta.sources.join(", "));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    header(&mut h, summary, meta);
    h.push_str("<main>\n");
    overview(&mut h, summary);
    let inv = &summary["inventory"];
    if inv.is_object() {
        inventory(&mut h, inv);
        timeline(&mut h, &inv["timeline"]);
        matrix(&mut h, &inv["matrix"]);
        role_pairs(&mut h, inv);
        talkers(&mut h, inv);
    }
    if summary["policy"].is_object() {
        findings(&mut h, &summary["policy"]);
    }
    if summary["firewall"].is_object() {
        firewall(&mut h, &summary["firewall"]);
    }
    captures(&mut h, summary);
    services(&mut h, summary);
    h.push_str(
        "<p class=\"note\">Written by exwatch from packet headers, ports and protocol \
         markers; no payload content, names from requests or credentials are in this report.</p>\n",
    );
    h.push_str("</main></body></html>\n");
    h
}

fn header(h: &mut String, s: &Value, meta: &Meta) {
    let _ = writeln!(
        h,
        "<header id=\"run\" data-mode=\"{}\"><h1>exwatch {} report</h1>",
        esc(&meta.mode),
        esc(&meta.mode)
    );
    let _ = writeln!(
        h,
        "<p>Source: <span id=\"sources\">{}</span></p>",
        esc(&meta.sources.join(", "))
    );
    if let Some(p) = &meta.policy {
        let _ = writeln!(h, "<p>Policy: <code>{}</code></p>", esc(p));
    }
    if let Some(r) = &meta.rules {
        let _ = writeln!(h, "<p>Firewall rule set: <code>{}</code></p>", esc(r));
    }
    let span = &s["inventory"]["timeline"]["buckets"];
    let first = arr(span).first().map(|b| text(&b["start"]));
    let _ = writeln!(
        h,
        "<p>exwatch {}{}{}</p></header>",
        esc(env!("CARGO_PKG_VERSION")),
        if meta.hostname.is_empty() {
            String::new()
        } else {
            format!(" on {}", esc(&meta.hostname))
        },
        first.map_or(String::new(), |f| format!(
            ", traffic from {}",
            esc(f.get(..16).unwrap_or(&f))
        ))
    );
}

fn overview(h: &mut String, s: &Value) {
    let bytes: u64 = arr(&s["services"]).iter().map(|r| u(&r["bytes"])).sum();
    let mut kpis = vec![
        ("packets", "packets read", u(&s["packets_read"]).to_string()),
        ("flows", "flows", u(&s["flows"]).to_string()),
        ("bytes", "bytes", human_bytes(bytes)),
        (
            "undecodable",
            "undecodable packets",
            u(&s["packets_undecodable"]).to_string(),
        ),
    ];
    let servers = arr(&s["inventory"]["servers"]).len();
    if s["inventory"].is_object() {
        kpis.push(("servers", "servers", servers.to_string()));
    }
    let p = &s["policy"];
    if p.is_object() {
        kpis.push(("allowed", "flows allowed", u(&p["allowed"]).to_string()));
        kpis.push((
            "unexpected",
            "unexpected flows",
            u(&p["unexpected"]).to_string(),
        ));
        kpis.push((
            "mismatch",
            "mismatched flows",
            u(&p["mismatch"]).to_string(),
        ));
    }
    let f = &s["firewall"];
    if f.is_object() {
        let denied: u64 = arr(&f["denied"]).iter().map(|d| u(&d["flows"])).sum();
        kpis.push(("denied", "flows denied", denied.to_string()));
    }
    h.push_str("<section id=\"overview\"><h2>Overview</h2><div class=\"kpis\">\n");
    for (id, label, v) in kpis {
        let _ = writeln!(
            h,
            "<div class=\"kpi\" id=\"kpi-{id}\" data-value=\"{}\"><b>{}</b>{}</div>",
            esc(&v),
            esc(&v),
            esc(label)
        );
    }
    h.push_str("</div></section>\n");
}

fn role_badges(roles: &[Value]) -> String {
    let mut o = String::new();
    for r in roles {
        let r = text(r);
        let class: String = r
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let _ = write!(o, "<span class=\"role role-{class}\">{}</span>", esc(&r));
    }
    o
}

fn inventory(h: &mut String, inv: &Value) {
    let servers = arr(&inv["servers"]);
    let _ = writeln!(
        h,
        "<section id=\"inventory\" data-servers=\"{}\"><h2>Exchange inventory</h2>\
         <p class=\"note\">Every address that answered a flow (sent data or completed a TCP \
         handshake), with the roles its traffic shows: Mailbox (transport 2525, MAPI over RPC \
         stores; or it runs EdgeSync to an Edge), CAS (client access: OWA, EWS, ActiveSync, \
         Autodiscover, MAPI/HTTP, RPC/HTTP, IMAP, POP, submission), Edge (EdgeSync, AD LDS), \
         DC/GC (Kerberos, LDAP, Global Catalog) and UM (SIP, RTP of Unified Messaging).</p>",
        servers.len()
    );
    h.push_str(
        "<table><thead><tr><th>server</th><th>group</th><th>roles</th><th>services (port: flows)</th>\
         <th class=\"n\">flows</th><th class=\"n\">bytes</th></tr></thead><tbody>\n",
    );
    for s in servers {
        let roles = arr(&s["roles"]);
        let role_list: Vec<String> = roles.iter().map(text).collect();
        let ports: Vec<String> = arr(&s["ports"]).iter().map(text).collect();
        let _ = write!(
            h,
            "<tr class=\"server\" data-address=\"{}\" data-roles=\"{}\" data-ports=\"{}\" \
             data-flows=\"{}\" data-bytes=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>",
            esc(&text(&s["address"])),
            esc(&role_list.join(",")),
            esc(&ports.join(",")),
            u(&s["flows_served"]),
            u(&s["bytes_served"]),
            esc(&text(&s["address"])),
            esc(&text(&s["group"])),
            role_badges(roles),
        );
        let svcs: Vec<String> = arr(&s["services"])
            .iter()
            .map(|v| {
                let port = if v["port"].is_null() {
                    String::new()
                } else {
                    format!(" {}/{}", text(&v["port"]), text(&v["transport"]))
                };
                format!(
                    "<span class=\"svc\" data-service=\"{}\">{}{}: {}</span>",
                    esc(&text(&v["service"])),
                    esc(&text(&v["service"])),
                    esc(&port),
                    u(&v["flows"])
                )
            })
            .collect();
        h.push_str(&svcs.join(", "));
        let _ = writeln!(
            h,
            "</td><td class=\"n\">{}</td><td class=\"n\" title=\"{} bytes\">{}</td></tr>",
            u(&s["flows_served"]),
            u(&s["bytes_served"]),
            human_bytes(u(&s["bytes_served"]))
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn timeline(h: &mut String, t: &Value) {
    let buckets = arr(&t["buckets"]);
    if buckets.is_empty() {
        return;
    }
    let width_s = u(&t["bucket_seconds"]).max(1);
    // The series: the services with the most bytes, then everything else as "other".
    let mut totals: Vec<(String, u64)> = t["services"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), u(v))).collect())
        .unwrap_or_default();
    totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: Vec<String> = totals.iter().take(8).map(|(s, _)| s.clone()).collect();
    let other = totals.len() > top.len();
    // Every bucket from the first to the last, empty ones included.
    let start_of = |b: &Value| parse_bucket(&text(&b["start"]));
    let first = start_of(&buckets[0]);
    let last = start_of(&buckets[buckets.len() - 1]);
    let n = ((last.saturating_sub(first)) / width_s + 1) as usize;
    let mut cols: Vec<Vec<u64>> = vec![vec![0; top.len() + 1]; n];
    for b in buckets {
        let i = ((start_of(b) - first) / width_s) as usize;
        if let (Some(col), Some(m)) = (cols.get_mut(i), b["bytes"].as_object()) {
            for (svc, v) in m {
                let j = top.iter().position(|t| t == svc).unwrap_or(top.len());
                col[j] += u(v);
            }
        }
    }
    let max = cols
        .iter()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, ht, left, bottom) = (1100.0, 260.0, 70.0, 30.0);
    let plot_w = w - left - 10.0;
    let plot_h = ht - bottom - 10.0;
    let bw = plot_w / n as f64;
    let _ = writeln!(
        h,
        "<section id=\"timeline\" data-bucket-seconds=\"{width_s}\" data-buckets=\"{n}\">\
         <h2>Traffic by service over time</h2><p class=\"note\">Bytes of the flows that started \
         in each {} bucket (UTC).</p>",
        esc(&duration_text(width_s))
    );
    let _ = writeln!(
        h,
        "<svg id=\"chart-timeline\" role=\"img\" viewBox=\"0 0 {w} {ht}\" width=\"100%\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>Traffic by service over time</title>"
    );
    for k in 0..=4 {
        let y = 10.0 + plot_h - plot_h * f64::from(k) / 4.0;
        let v = max as f64 * f64::from(k) / 4.0;
        let _ = writeln!(
            h,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e6ea\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - 10.0,
            left - 4.0,
            y + 4.0,
            esc(&human_bytes(v as u64))
        );
    }
    for (i, col) in cols.iter().enumerate() {
        let x = left + bw * i as f64;
        let mut y = 10.0 + plot_h;
        for (j, v) in col.iter().enumerate() {
            if *v == 0 {
                continue;
            }
            let bh = plot_h * *v as f64 / max as f64;
            y -= bh;
            let name = top.get(j).map_or("other", String::as_str);
            let _ = writeln!(
                h,
                "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"{}\">\
                 <title>{} {}: {}</title></rect>",
                (bw * 0.9).max(0.5),
                PALETTE[if j < top.len() { j } else { PALETTE.len() - 1 }],
                esc(&time_label(first + i as u64 * width_s, width_s)),
                esc(name),
                esc(&human_bytes(*v))
            );
        }
    }
    let labels = 8.min(n);
    for k in 0..labels {
        let i = k * n / labels;
        let x = left + bw * i as f64;
        let _ = writeln!(
            h,
            "<text x=\"{x:.1}\" y=\"{}\">{}</text>",
            ht - 10.0,
            esc(&time_label(first + i as u64 * width_s, width_s))
        );
    }
    h.push_str("</svg><div class=\"legend\">");
    for (j, s) in top.iter().enumerate() {
        let _ = write!(
            h,
            "<span><i style=\"background:{}\"></i>{}</span>",
            PALETTE[j],
            esc(s)
        );
    }
    if other {
        let _ = write!(
            h,
            "<span><i style=\"background:{}\"></i>other</span>",
            PALETTE[PALETTE.len() - 1]
        );
    }
    h.push_str("</div></section>\n");
}

/// Seconds since the epoch of an RFC 3339 bucket start written by `capture::time`.
fn parse_bucket(s: &str) -> u64 {
    crate::capture::time::parse_rfc3339(s).map_or(0, |ns| ns / 1_000_000_000)
}

fn time_label(secs: u64, width: u64) -> String {
    let t = crate::capture::time::rfc3339(secs * 1_000_000_000);
    if width >= 86_400 {
        t[..10].to_string()
    } else if width >= 60 {
        t[11..16].to_string()
    } else {
        t[11..19].to_string()
    }
}

fn duration_text(s: u64) -> String {
    match s {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn matrix(h: &mut String, m: &Value) {
    let names: Vec<String> = arr(&m["groups"]).iter().map(text).collect();
    let mut cells: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for c in arr(&m["cells"]) {
        cells.insert(
            (text(&c["source"]), text(&c["destination"])),
            (u(&c["flows"]), u(&c["bytes"])),
        );
    }
    let max = cells.values().map(|c| c.1).max().unwrap_or(1).max(1) as f64;
    let _ = writeln!(
        h,
        "<section id=\"matrix\" data-grouping=\"{}\"><h2>Who talks to whom</h2>\
         <p class=\"note\">Flows and bytes from each {} (rows: originators) to each (columns: \
         responders).</p><div style=\"overflow-x:auto\"><table class=\"matrix\"><thead><tr><th>from \\ to</th>",
        esc(&text(&m["grouping"])),
        esc(&text(&m["grouping"]))
    );
    let dests: Vec<&String> = names
        .iter()
        .filter(|n| cells.keys().any(|(_, d)| d == *n))
        .collect();
    let srcs: Vec<&String> = names
        .iter()
        .filter(|n| cells.keys().any(|(s, _)| s == *n))
        .collect();
    for d in &dests {
        let _ = write!(h, "<th>{}</th>", esc(d));
    }
    h.push_str("</tr></thead><tbody>\n");
    for s in &srcs {
        let _ = write!(h, "<tr><th>{}</th>", esc(s));
        for d in &dests {
            match cells.get(&((*s).clone(), (*d).clone())) {
                Some((f, b)) => {
                    // Shade by bytes on a log scale: a few large transfers would hide the rest.
                    let a = ((*b as f64).ln_1p() / max.ln_1p()).clamp(0.05, 1.0) * 0.55;
                    let _ = write!(
                        h,
                        "<td class=\"c\" data-source=\"{}\" data-destination=\"{}\" data-flows=\"{f}\" \
                         data-bytes=\"{b}\" style=\"background:rgba(29,111,165,{a:.2})\" \
                         title=\"{} bytes\">{f} / {}</td>",
                        esc(s),
                        esc(d),
                        b,
                        human_bytes(*b)
                    );
                }
                None => h.push_str("<td></td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div><p class=\"note\">Each cell: flows / bytes.</p></section>\n");
}

fn role_pairs(h: &mut String, inv: &Value) {
    let mut pairs: Vec<(String, u64, u64)> = arr(&inv["role_pairs"])
        .iter()
        .map(|p| {
            (
                format!(
                    "{} \u{2192} {}",
                    text(&p["source"]),
                    text(&p["destination"])
                ),
                u(&p["flows"]),
                u(&p["bytes"]),
            )
        })
        .collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if pairs.is_empty() {
        return;
    }
    let max = pairs[0].1.max(1) as f64;
    let (w, row, left) = (1100.0, 20.0, 260.0);
    let ht = row * pairs.len() as f64 + 10.0;
    let _ = writeln!(
        h,
        "<section id=\"role-pairs\"><h2>Flows per role pair</h2><p class=\"note\">Roles as in \
         the inventory; <code>other</code>: an address whose traffic shows none.</p>\
         <svg id=\"chart-role-pairs\" role=\"img\" viewBox=\"0 0 {w} {ht}\" width=\"100%\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>Flows per role pair</title>"
    );
    for (i, (label, flows, bytes)) in pairs.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let bw = (w - left - 80.0) * *flows as f64 / max;
        let _ = writeln!(
            h,
            "<g class=\"role-pair\" data-pair=\"{}\" data-flows=\"{flows}\" data-bytes=\"{bytes}\">\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#457b9d\">\
             <title>{}: {flows} flows, {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{flows}</text></g>",
            esc(label),
            left - 6.0,
            y + 13.0,
            esc(label),
            row - 5.0,
            esc(label),
            esc(&human_bytes(*bytes)),
            left + bw + 4.0,
            y + 13.0
        );
    }
    h.push_str("</svg></section>\n");
}

fn talkers(h: &mut String, inv: &Value) {
    h.push_str(
        "<section id=\"talkers\"><h2>Top talkers</h2><p class=\"note\">Addresses by bytes sent \
         and received.</p><table><thead><tr><th>address</th><th>group</th><th>roles</th>\
         <th class=\"n\">flows</th><th class=\"n\">originated</th><th class=\"n\">answered</th>\
         <th class=\"n\">sent</th><th class=\"n\">received</th></tr></thead><tbody>\n",
    );
    for t in arr(&inv["top_talkers"]) {
        let _ = writeln!(
            h,
            "<tr class=\"talker\" data-address=\"{}\" data-bytes=\"{}\" data-flows=\"{}\">\
             <td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&text(&t["address"])),
            u(&t["bytes"]),
            u(&t["flows"]),
            esc(&text(&t["address"])),
            esc(&text(&t["group"])),
            esc(&text(&t["role"])),
            u(&t["flows"]),
            u(&t["flows_originated"]),
            u(&t["flows_answered"]),
            human_bytes(u(&t["bytes_sent"])),
            human_bytes(u(&t["bytes_received"])),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// A findings table (policy findings, denied flows), one row per group with its example.
fn findings_table(h: &mut String, id: &str, rows: &[Value]) {
    let _ = writeln!(
        h,
        "<table id=\"{id}-table\"><thead><tr><th>finding</th><th>source</th><th>destination</th>\
         <th>port</th><th>protocol</th><th>rule</th><th class=\"n\">flows</th><th class=\"n\">bytes</th>\
         <th>first seen</th><th>example</th></tr></thead><tbody>"
    );
    for f in rows {
        let port = if u(&f["port"]) == 0 {
            text(&f["transport"])
        } else {
            format!("{}/{}", u(&f["port"]), text(&f["transport"]))
        };
        let first = text(&f["first_seen"]);
        let _ = writeln!(
            h,
            "<tr class=\"finding\" data-finding=\"{}\" data-source=\"{}\" data-destination=\"{}\" \
             data-transport=\"{}\" data-port=\"{}\" data-protocol=\"{}\" data-flows=\"{}\" data-bytes=\"{}\">\
             <td class=\"bad\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&text(&f["finding"])),
            esc(&text(&f["source"])),
            esc(&text(&f["destination"])),
            esc(&text(&f["transport"])),
            u(&f["port"]),
            esc(&text(&f["protocol"])),
            u(&f["flows"]),
            u(&f["bytes"]),
            esc(&text(&f["finding"])),
            esc(&text(&f["source"])),
            esc(&text(&f["destination"])),
            esc(&port),
            esc(&text(&f["protocol"])),
            esc(&text(&f["rule"])),
            u(&f["flows"]),
            human_bytes(u(&f["bytes"])),
            esc(first.get(..19).unwrap_or(&first)),
            esc(&text(&f["example"])),
        );
    }
    h.push_str("</tbody></table>\n");
}

fn findings(h: &mut String, p: &Value) {
    let rows = arr(&p["findings"]);
    let flows: u64 = rows.iter().map(|f| u(&f["flows"])).sum();
    let _ = writeln!(
        h,
        "<section id=\"findings\" data-groups=\"{}\" data-flows=\"{flows}\"><h2>Policy findings</h2>\
         <p class=\"note\">{} flows allowed, {} unexpected (no rule allows them), {} mismatched (a \
         rule allows the port, the payload is another protocol): {flows} flows in {} groups.</p>",
        rows.len(),
        u(&p["allowed"]),
        u(&p["unexpected"]),
        u(&p["mismatch"]),
        rows.len()
    );
    findings_table(h, "findings", rows);
    h.push_str("</section>\n");
}

fn firewall(h: &mut String, f: &Value) {
    let denied = arr(&f["denied"]);
    let flows: u64 = denied.iter().map(|d| u(&d["flows"])).sum();
    let _ = writeln!(
        h,
        "<section id=\"denied\" data-groups=\"{}\" data-flows=\"{flows}\"><h2>Flows the rule set \
         would deny</h2><p class=\"note\">{flows} flows in {} groups.</p>",
        denied.len(),
        denied.len()
    );
    findings_table(h, "denied", denied);
    h.push_str("</section>\n");
    let rules = arr(&f["rules"]);
    let _ = writeln!(
        h,
        "<section id=\"rules\"><h2>Firewall rules</h2><p class=\"note\">Flows that matched each \
         rule on their way, and flows it decided; the default policy decided {}. Rules never hit \
         are classed: <b>matched nothing</b> (candidates for removal) or <b>cannot judge</b> (a \
         capture cannot tell: keep them).</p><table><thead><tr><th>line</th><th>rule</th>\
         <th class=\"n\">matched</th><th class=\"n\">decided</th><th>never hit</th></tr></thead><tbody>",
        u(&f["default_hits"])
    );
    for r in rules {
        let class = match r["unused"].as_str() {
            Some("unused-matched-nothing") => "matched nothing".to_string(),
            Some(_) => format!("cannot judge: {}", text(&r["unused_why"])),
            None => String::new(),
        };
        let _ = writeln!(
            h,
            "<tr class=\"rule\" data-rule=\"{}\" data-line=\"{}\" data-hits=\"{}\" data-unused=\"{}\">\
             <td class=\"n\">{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&text(&r["rule"])),
            u(&r["line"]),
            u(&r["hits"]),
            esc(&text(&r["unused"])),
            u(&r["line"]),
            esc(&text(&r["rule"])),
            u(&r["hits"]),
            u(&r["decided"]),
            esc(&class)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn captures(h: &mut String, s: &Value) {
    h.push_str(
        "<section id=\"captures\"><h2>Captures</h2><table><thead><tr><th>capture</th>\
         <th>status</th><th class=\"n\">packets</th><th class=\"n\">decoded</th>\
         <th class=\"n\">undecodable</th><th>undecodable by reason</th></tr></thead><tbody>\n",
    );
    let caps = arr(&s["captures"]);
    let rows: Vec<&Value> = if caps.is_empty() {
        vec![s]
    } else {
        caps.iter().collect()
    };
    for c in rows {
        let name = if caps.is_empty() {
            "all".to_string()
        } else {
            text(&c["file"])
        };
        let reasons: Vec<String> = c["undecodable"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{}: {}", esc(k), u(v)))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr class=\"capture\" data-file=\"{}\" data-packets=\"{}\" data-undecodable=\"{}\">\
             <td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&name),
            u(&c["packets_read"]),
            u(&c["packets_undecodable"]),
            esc(&name),
            esc(&text(&c["status"])),
            u(&c["packets_read"]),
            u(&c["packets_decoded"]),
            u(&c["packets_undecodable"]),
            reasons.join(", ")
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn services(h: &mut String, s: &Value) {
    let mut rows: Vec<&Value> = arr(&s["services"]).iter().collect();
    rows.sort_by(|a, b| {
        u(&b["bytes"])
            .cmp(&u(&a["bytes"]))
            .then(text(&a["service"]).cmp(&text(&b["service"])))
    });
    h.push_str(
        "<section id=\"services\"><h2>Protocols and services</h2><table><thead><tr>\
         <th>protocol</th><th>service</th><th class=\"n\">flows</th><th class=\"n\">packets</th>\
         <th class=\"n\">bytes</th><th class=\"n\">handshake RTT p50 / p90 ms</th></tr></thead><tbody>\n",
    );
    for r in rows {
        let rtt = if r["rtt_ms"].is_object() {
            format!(
                "{:.2} / {:.2}",
                r["rtt_ms"]["p50"].as_f64().unwrap_or(0.0),
                r["rtt_ms"]["p90"].as_f64().unwrap_or(0.0)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr class=\"service\" data-protocol=\"{}\" data-service=\"{}\" data-flows=\"{}\" data-bytes=\"{}\">\
             <td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&text(&r["protocol"])),
            esc(&text(&r["service"])),
            u(&r["flows"]),
            u(&r["bytes"]),
            esc(&text(&r["protocol"])),
            esc(&text(&r["service"])),
            u(&r["flows"]),
            u(&r["packets"]),
            human_bytes(u(&r["bytes"])),
            rtt
        );
    }
    h.push_str("</tbody></table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_character_that_could_open_markup_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script>&\"\u{1}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\u{fffd}"
        );
    }

    #[test]
    fn hostile_values_in_the_summary_stay_text() {
        let evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
        let s = json!({
            "packets_read": 1, "flows": 1,
            "services": [{"protocol": evil, "service": evil, "flows": 1, "packets": 1, "bytes": 1}],
            "policy": {"allowed": 0, "unexpected": 1, "mismatch": 0, "findings": [{
                "finding": "unexpected", "source": evil, "destination": "x", "transport": "tcp",
                "port": 80, "protocol": "http", "rule": "", "flows": 1, "bytes": 1,
                "first_seen": "2026-01-01T00:00:00.000000000Z", "example": evil}]},
            "inventory": {"servers": [{"address": evil, "roles": [evil], "ports": [evil],
                "services": [{"service": evil, "port": 1, "transport": evil, "flows": 1}]}],
                "timeline": {"bucket_seconds": 60, "services": {evil: 1},
                    "buckets": [{"start": "2026-01-01T00:00:00.000000000Z", "bytes": {evil: 1}}]},
                "matrix": {"grouping": evil, "groups": [evil], "cells": [{"source": evil, "destination": evil, "flows": 1, "bytes": 1}]},
                "role_pairs": [{"source": evil, "destination": evil, "flows": 1, "bytes": 1}],
                "top_talkers": [{"address": evil, "group": evil, "role": evil}]},
        });
        let meta = Meta {
            mode: "audit".into(),
            sources: vec![evil.into()],
            policy: Some(evil.into()),
            ..Meta::default()
        };
        let page = render(&s, &meta);
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn bucket_starts_read_back_as_written() {
        for secs in [0u64, 86_399, 951_782_400, 1_795_420_800, 1_800_000_000] {
            let t = crate::capture::time::rfc3339(secs * 1_000_000_000);
            assert_eq!(parse_bucket(&t), secs, "{t}");
        }
    }

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(2_345_678), "2.3 MB");
    }
}
