//! A small JSON writer for flow records: dotted field paths, given in sorted order, become
//! nested objects without building a tree first (records are written once per flow, and a
//! tree of maps costs more than the rest of the flow's processing).

/// A field value.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    Str(&'a str),
    U64(u64),
    F64(f64),
    Bool(bool),
    Strs(&'a [&'a str]),
    /// An array of the second members of a run of (path, value) pairs: the entries of one
    /// array field, as they sit in a record's sorted field list.
    Run(&'a [(&'a str, &'a str)]),
}

/// Whether `b` holds a byte JSON strings must escape. Branch-free over 16-byte chunks so that
/// it vectorises: records are mostly clean text, and this scan is most of writing them.
fn needs_escape(b: &[u8]) -> bool {
    let bad = |c: u8| (c < 0x20) | (c == b'"') | (c == b'\\');
    let mut chunks = b.chunks_exact(16);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |acc, &c| acc | bad(c)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| bad(c))
}

/// Append `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    if !needs_escape(b) {
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

fn write_val(out: &mut Vec<u8>, v: &Val<'_>) {
    match *v {
        Val::Str(s) => write_str(out, s),
        Val::U64(n) => {
            let mut buf = itoa::Buffer::new();
            out.extend_from_slice(buf.format(n).as_bytes());
        }
        Val::F64(f) if f.is_finite() => {
            let mut buf = ryu::Buffer::new();
            out.extend_from_slice(buf.format_finite(f).as_bytes());
        }
        Val::F64(_) => out.extend_from_slice(b"null"),
        Val::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Val::Strs(list) => write_array(out, list.iter().copied()),
        Val::Run(pairs) => write_array(out, pairs.iter().map(|(_, v)| *v)),
    }
}

fn write_array<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a str>) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, s);
    }
    out.push(b']');
}

/// Write `fields` (dotted paths, sorted so that each object's fields are contiguous) as one
/// JSON object with nested objects per path segment. A path that repeats an earlier one is
/// skipped, so a record never holds a duplicate key.
pub fn write_object(out: &mut Vec<u8>, fields: &[(&str, Val<'_>)]) {
    out.push(b'{');
    let mut first = true;
    write_members(out, fields, &mut first);
    out.push(b'}');
}

/// Like `write_object`, into an object already open; `first` says whether a member has been
/// written to it yet, and is updated.
pub fn write_members(out: &mut Vec<u8>, fields: &[(&str, Val<'_>)], first: &mut bool) {
    const MAX_DEPTH: usize = 8;
    let mut open: [&str; MAX_DEPTH] = [""; MAX_DEPTH];
    let mut depth = 0usize;
    let mut last_path = "";
    for (path, val) in fields {
        if *path == last_path {
            continue;
        }
        last_path = path;
        let mut segs = [""; MAX_DEPTH + 1];
        let mut n = 0;
        for s in path.split('.') {
            if n == segs.len() {
                break;
            }
            segs[n] = s;
            n += 1;
        }
        let (parents, leaf) = (&segs[..n - 1], segs[n - 1]);
        let parents = &parents[..parents.len().min(MAX_DEPTH)];
        let common = open[..depth]
            .iter()
            .zip(parents)
            .take_while(|(a, b)| a == b)
            .count();
        while depth > common {
            out.push(b'}');
            depth -= 1;
            *first = false;
        }
        for seg in &parents[common..] {
            if !*first {
                out.push(b',');
            }
            write_str(out, seg);
            out.extend_from_slice(b":{");
            open[depth] = seg;
            depth += 1;
            *first = true;
        }
        if !*first {
            out.push(b',');
        }
        write_str(out, leaf);
        out.push(b':');
        write_val(out, val);
        *first = false;
    }
    while depth > 0 {
        out.push(b'}');
        depth -= 1;
        *first = false;
    }
}

/// Members of a JSON object whose keys are known, safe ASCII (no escaping needed).
pub struct Obj<'a> {
    pub out: &'a mut Vec<u8>,
    pub first: bool,
}

impl<'a> Obj<'a> {
    /// Open an object at the top level.
    pub fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    pub fn val(&mut self, k: &str, v: Val<'_>) -> &mut Self {
        self.key(k);
        write_val(self.out, &v);
        self
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.val(k, Val::Str(v))
    }

    pub fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        self.val(k, Val::U64(v))
    }

    /// Start a nested object member.
    pub fn begin(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.out.push(b'{');
        self.first = true;
        self
    }

    /// Close the innermost open object.
    pub fn end(&mut self) -> &mut Self {
        self.out.push(b'}');
        self.first = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn render(fields: &[(&str, Val<'_>)]) -> Value {
        let mut out = Vec::new();
        write_object(&mut out, fields);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn nests_sorted_paths() {
        let v = render(&[
            ("@timestamp", Val::Str("t")),
            ("a.b.c", Val::U64(1)),
            ("a.b.d", Val::Bool(true)),
            ("a.e", Val::F64(1.5)),
            ("f", Val::Strs(&["x", "y"])),
        ]);
        assert_eq!(
            v,
            json!({"@timestamp": "t", "a": {"b": {"c": 1, "d": true}, "e": 1.5}, "f": ["x", "y"]})
        );
    }

    #[test]
    fn escapes_strings() {
        let v = render(&[("s", Val::Str("a\"b\\c\n\u{1}é"))]);
        assert_eq!(v["s"], "a\"b\\c\n\u{1}é");
    }

    #[test]
    fn duplicates_and_deep_paths_stay_valid() {
        let v = render(&[
            ("a", Val::U64(1)),
            ("a", Val::U64(2)),
            ("b.c.d.e.f.g.h.i.j.k", Val::U64(3)),
        ]);
        assert_eq!(v["a"], 1);
        assert!(v["b"].is_object());
    }
}
