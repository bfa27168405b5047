//! Offline captures: pcap and pcapng files (or `-` for standard input) in the order given.

use super::RawPacket;
use std::io::Read;
use std::path::PathBuf;

/// A capture that could not be opened or read to its end, saying which and where.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{file}: cannot open: {reason}")]
    Open { file: String, reason: String },
    #[error("{file}: empty file: no capture file header")]
    Empty { file: String },
    #[error("{file}: not a pcap or pcapng capture: {reason}")]
    NotCapture { file: String, reason: String },
    #[error("{file}: packet {packet}: damaged capture ({reason}); the {read} packets before it were processed")]
    Damaged {
        file: String,
        packet: u64,
        read: u64,
        reason: String,
    },
    /// A records file (exwatch's NDJSON given in place of a capture) holds a line that is
    /// not one of exwatch's flow records.
    #[error("{file}: line {line}: not an exwatch flow record ({reason}); the {read} records before it were read")]
    BadRecord {
        file: String,
        line: u64,
        read: u64,
        reason: String,
    },
    /// `--bpf` cannot be compiled for a link type this file uses.
    #[error("{file}: --bpf {expr:?} cannot filter link type {linktype} ({reason}); the {read} packets before it were processed")]
    BadFilter {
        file: String,
        expr: String,
        linktype: i32,
        read: u64,
        reason: String,
    },
    /// A live capture failed while running (the interface went away...).
    #[error(transparent)]
    Live(#[from] super::live::LiveError),
}

impl CaptureError {
    /// Process exit code for this kind of failure (see the README's table).
    pub fn exit_code(&self) -> i32 {
        match self {
            CaptureError::BadFilter { .. } => 2,
            CaptureError::Open { .. } => 3,
            CaptureError::Empty { .. } | CaptureError::NotCapture { .. } => 4,
            CaptureError::Damaged { .. } | CaptureError::BadRecord { .. } => 5,
            CaptureError::Live(_) => 10,
        }
    }
}

/// Read buffer for capture files and pipes: few read(2) calls, reused for the whole file.
const READ_BUFFER: usize = 1 << 20;
/// Largest captured length accepted per packet, as libpcap (`MAXIMUM_SNAPLEN`): anything
/// larger is a corrupt length, not a packet.
const MAX_CAPLEN: u32 = 262_144;
/// Largest pcapng block accepted (libpcap's limit is 16 MiB).
const MAX_BLOCK: u32 = 16 << 20;

/// Which framing the file uses.
enum Format {
    /// Classic pcap: byte order, nanosecond timestamps.
    Pcap { swap: bool, nano: bool },
    /// pcapng: byte order of the current section, and its interfaces.
    Pcapng { swap: bool, ifaces: Vec<Iface> },
}

/// A pcapng interface: its link type and timestamp units.
#[derive(Clone, Copy)]
struct Iface {
    linktype: i32,
    /// Timestamp units per second (if_tsresol; 10^6 by default).
    per_sec: u64,
    /// Seconds added to every timestamp (if_tsoffset).
    offset: i64,
}

/// An open capture file being read packet by packet, framed by exwatch itself (classic pcap
/// in either byte order with micro- or nanosecond timestamps, and pcapng with any number of
/// sections and interfaces, each with its own link type and timestamp resolution). It reads
/// any byte stream: regular files, standard input, FIFOs and process substitution.
pub struct OfflineCapture {
    name: String,
    input: Box<dyn std::io::Read + Send>,
    buf: Vec<u8>,
    /// Unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    /// The input has no more bytes.
    eof: bool,
    format: Format,
    /// Link type of the first interface (what `linktype` reports).
    linktype: i32,
    /// Packets returned so far.
    read: u64,
    /// Bytes of the file read (see `file_bytes_read`).
    file_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn u16_of(b: &[u8], swap: bool) -> u16 {
    let v = u16::from_le_bytes([b[0], b[1]]);
    if swap {
        v.swap_bytes()
    } else {
        v
    }
}

fn u32_of(b: &[u8], swap: bool) -> u32 {
    let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if swap {
        v.swap_bytes()
    } else {
        v
    }
}

/// What a capture argument holds, told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// pcap or pcapng (or anything else: framing reports what is wrong with it).
    Capture,
    /// exwatch's own NDJSON flow records (a `{` first).
    Records,
}

/// gzip's and zstd's magic numbers.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Streams that [`sniff`] opened and cannot open again (standard input, FIFOs, process
/// substitution), with the bytes it looked at put back in front: [`open_stream`] takes them
/// from here, so nothing read is lost.
type Stream = Box<dyn std::io::Read + Send>;
static SNIFFED: std::sync::Mutex<Vec<(String, Stream)>> = std::sync::Mutex::new(Vec::new());

fn display_name(spec: &str) -> String {
    if spec == "-" {
        "<stdin>".to_string()
    } else {
        spec.to_string()
    }
}

/// Read up to `n` bytes (fewer only at the end of the stream), for a look at a stream's start.
fn peek(mut input: Stream, n: usize) -> std::io::Result<(Vec<u8>, Stream)> {
    let mut head = vec![0; n];
    let mut got = 0;
    while got < n {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    let back = std::io::Cursor::new(head.clone()).chain(input);
    Ok((head, Box::new(back)))
}

/// The raw bytes of `spec`: standard input for `-`, else the file (a FIFO is read like
/// standard input). A regular file of size 0 is empty; a directory cannot be read.
fn open_raw(spec: &str) -> Result<Stream, CaptureError> {
    let name = display_name(spec);
    if spec == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let open_err = |e: std::io::Error| CaptureError::Open {
        file: name.clone(),
        reason: e.to_string(),
    };
    let path = PathBuf::from(spec);
    let m = std::fs::metadata(&path).map_err(open_err)?;
    if m.is_dir() {
        return Err(CaptureError::Open {
            file: name,
            reason: "is a directory".into(),
        });
    }
    // Only a regular file's size says it is empty: a FIFO or a process substitution
    // reports 0 and is read like standard input.
    if m.is_file() && m.len() == 0 {
        return Err(CaptureError::Empty { file: name });
    }
    let f = std::fs::File::open(&path).map_err(open_err)?;
    // Read front to back, once per worker: a wider read-ahead window (measured: about 3% of
    // the wall time of two workers reading the same file, benches/README.md).
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open and owned by `f`; the advice changes no memory.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
        }
    }
    Ok(Box::new(f))
}

/// A stream that counts the bytes read from it (of the file, before decompression), for
/// progress.
struct Counted {
    inner: Stream,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::io::Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Open `spec` as a byte stream named for messages (`<stdin>` for `-`), decompressing gzip
/// (`.gz`, several members too) and zstd (`.zst`) whatever the file is called.
pub fn open_stream(spec: &str) -> Result<(String, Stream), CaptureError> {
    open_counted(spec, &std::sync::Arc::default())
}

/// [`open_stream`], adding the bytes read of the file itself to `count` (a stream that
/// [`sniff`] kept counts from its first byte after the look).
fn open_counted(
    spec: &str,
    count: &std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<(String, Stream), CaptureError> {
    let name = display_name(spec);
    if let Ok(mut sniffed) = SNIFFED.lock() {
        if let Some(i) = sniffed.iter().position(|(s, _)| s == spec) {
            let inner = sniffed.swap_remove(i).1;
            let count = count.clone();
            return Ok((name, Box::new(Counted { inner, count })));
        }
    }
    let raw: Stream = Box::new(Counted {
        inner: open_raw(spec)?,
        count: count.clone(),
    });
    let read_err = |e: std::io::Error| CaptureError::Damaged {
        file: name.clone(),
        packet: 1,
        read: 0,
        reason: format!("read error: {e}"),
    };
    let (head, raw) = peek(raw, ZSTD_MAGIC.len()).map_err(read_err)?;
    let input: Stream = if head.starts_with(GZIP_MAGIC) {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else if head.starts_with(ZSTD_MAGIC) {
        let d =
            ruzstd::decoding::StreamingDecoder::new(raw).map_err(|e| CaptureError::NotCapture {
                file: name.clone(),
                reason: format!("zstd: {e}"),
            })?;
        Box::new(d)
    } else {
        raw
    };
    Ok((name, input))
}

/// Whether `spec` is a plain regular file that several readers can each read whole (not
/// standard input, a FIFO, or a compressed file that each would have to decompress again).
pub fn rereadable(spec: &str) -> bool {
    use std::io::Read;
    if spec == "-" || !std::fs::metadata(spec).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 4];
    let Ok(mut f) = std::fs::File::open(spec) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    !(head[..n].starts_with(GZIP_MAGIC) || head[..n].starts_with(ZSTD_MAGIC))
}

/// What `spec` holds, from its first (decompressed) bytes. A stream that cannot be opened
/// twice is kept, its first bytes put back, for the [`open_stream`] that reads it. Errors
/// are those the capture's own opening would give, so callers may ignore them and let the
/// reading report them in order.
pub fn sniff(spec: &str) -> Result<Content, CaptureError> {
    // Metadata only: opening a FIFO to look at it would take its writer's bytes.
    let reopenable = spec != "-" && std::fs::metadata(spec).is_ok_and(|m| m.is_file());
    let (name, input) = open_stream(spec)?;
    let (head, input) = peek(input, 1).map_err(|e| CaptureError::Damaged {
        file: name,
        packet: 1,
        read: 0,
        reason: format!("read error: {e}"),
    })?;
    if !reopenable {
        if let Ok(mut sniffed) = SNIFFED.lock() {
            sniffed.push((spec.to_string(), input));
        }
    }
    Ok(if head.first() == Some(&b'{') {
        Content::Records
    } else {
        Content::Capture
    })
}

impl OfflineCapture {
    /// Open a file, or standard input for `-`; gzip and zstd files are decompressed.
    pub fn open(spec: &str) -> Result<Self, CaptureError> {
        let count = std::sync::Arc::default();
        let (name, input) = open_counted(spec, &count)?;
        let mut cap = Self::from_reader(name, input)?;
        cap.file_bytes = count;
        Ok(cap)
    }

    /// Bytes of the file read so far (compressed bytes of a compressed file).
    pub fn file_bytes_read(&self) -> u64 {
        self.file_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Read a capture from any byte stream, named `name` in messages.
    pub fn from_reader(
        name: String,
        input: Box<dyn std::io::Read + Send>,
    ) -> Result<Self, CaptureError> {
        let mut cap = OfflineCapture {
            name,
            input,
            buf: vec![0; READ_BUFFER],
            pos: 0,
            end: 0,
            eof: false,
            format: Format::Pcap {
                swap: false,
                nano: false,
            },
            linktype: 0,
            read: 0,
            file_bytes: std::sync::Arc::default(),
        };
        cap.header()?;
        Ok(cap)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Packets returned so far.
    pub fn packets_returned(&self) -> u64 {
        self.read
    }

    /// The file's link type (libpcap DLT value; pcapng: its first interface's).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// Make at least `n` unread bytes available; false when the input ends first.
    fn fill(&mut self, n: usize) -> Result<bool, CaptureError> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        if self.buf.len() < n {
            self.buf.resize(n.next_power_of_two(), 0);
        }
        if self.pos + n > self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < n && !self.eof {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.damaged(format!("read error: {e}"))),
            }
        }
        Ok(self.end - self.pos >= n)
    }

    fn damaged(&self, reason: String) -> CaptureError {
        CaptureError::Damaged {
            file: self.name.clone(),
            packet: self.read + 1,
            read: self.read,
            reason,
        }
    }

    fn not_capture(&self, reason: &str) -> CaptureError {
        CaptureError::NotCapture {
            file: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Read the file header (classic pcap) or the first section header (pcapng).
    fn header(&mut self) -> Result<(), CaptureError> {
        if !self.fill(4)? {
            return Err(if self.end == self.pos {
                CaptureError::Empty {
                    file: self.name.clone(),
                }
            } else {
                self.not_capture("truncated dump file; the file header is cut short")
            });
        }
        let magic = u32::from_le_bytes(self.buf[self.pos..self.pos + 4].try_into().unwrap());
        let (swap, nano) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xd4c3_b2a1 => (true, false),
            0xa1b2_3c4d => (false, true),
            0x4d3c_b2a1 => (true, true),
            0x0a0d_0d0a => {
                self.format = Format::Pcapng {
                    swap: false,
                    ifaces: Vec::new(),
                };
                // The first block must be a section header; its interfaces follow.
                if !self.fill(12)? {
                    return Err(self.not_capture("truncated pcapng Section Header Block"));
                }
                self.section()?;
                return Ok(());
            }
            _ => return Err(self.not_capture("unknown file format")),
        };
        if !self.fill(24)? {
            return Err(self.not_capture("truncated dump file; the file header is cut short"));
        }
        let h = &self.buf[self.pos..self.pos + 24];
        self.linktype = (u32_of(&h[20..24], swap) & 0x03ff_ffff) as i32;
        self.pos += 24;
        self.format = Format::Pcap { swap, nano };
        Ok(())
    }

    /// A pcapng Section Header Block at `pos` (at least 12 bytes available): its byte order,
    /// and a fresh interface list.
    fn section(&mut self) -> Result<(), CaptureError> {
        let bom = &self.buf[self.pos + 8..self.pos + 12];
        let swap = match u32::from_le_bytes(bom.try_into().unwrap()) {
            0x1a2b_3c4d => false,
            0x4d3c_2b1a => true,
            _ => {
                return Err(
                    self.not_capture("pcapng Section Header Block has a bad byte-order magic")
                )
            }
        };
        let len = u32_of(&self.buf[self.pos + 4..self.pos + 8], swap);
        if !(28..=MAX_BLOCK).contains(&len) || len % 4 != 0 {
            return Err(self.not_capture("pcapng Section Header Block has a bad length"));
        }
        if !self.fill(len as usize)? {
            return Err(self.not_capture("truncated pcapng Section Header Block"));
        }
        self.pos += len as usize;
        self.format = Format::Pcapng {
            swap,
            ifaces: Vec::new(),
        };
        Ok(())
    }

    /// The next packet, `Ok(None)` at the clean end of the file.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        match self.format {
            Format::Pcap { swap, nano } => self.next_pcap(swap, nano),
            Format::Pcapng { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self, swap: bool, nano: bool) -> Result<Option<RawPacket<'_>>, CaptureError> {
        if !self.fill(16)? {
            let left = self.end - self.pos;
            if left == 0 {
                return Ok(None);
            }
            return Err(self.damaged(format!(
                "truncated dump file; tried to read 16 header bytes, only got {left}"
            )));
        }
        let h = &self.buf[self.pos..self.pos + 16];
        let sec = u64::from(u32_of(&h[0..4], swap));
        let frac = u64::from(u32_of(&h[4..8], swap));
        let caplen = u32_of(&h[8..12], swap);
        if caplen > MAX_CAPLEN {
            return Err(self.damaged(format!(
                "invalid packet capture length {caplen}, bigger than maximum of {MAX_CAPLEN}"
            )));
        }
        if !self.fill(16 + caplen as usize)? {
            let left = self.end - self.pos - 16;
            return Err(self.damaged(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {left}"
            )));
        }
        // As libpcap scales to nanoseconds: a microsecond field is multiplied, whatever it
        // holds; what cannot be a fraction of a second is clamped.
        let frac = if nano { frac } else { frac * 1000 };
        let ts = sec * 1_000_000_000 + frac.min(999_999_999);
        let start = self.pos + 16;
        self.pos = start + caplen as usize;
        self.read += 1;
        Ok(Some(RawPacket {
            ts,
            linktype: self.linktype,
            data: &self.buf[start..self.pos],
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        loop {
            if !self.fill(8)? {
                let left = self.end - self.pos;
                if left == 0 {
                    return Ok(None);
                }
                return Err(
                    self.damaged(format!("truncated pcapng block header: {left} of 8 bytes"))
                );
            }
            let Format::Pcapng { swap, .. } = self.format else {
                unreachable!("pcapng framing")
            };
            let b = &self.buf[self.pos..self.pos + 8];
            let kind = u32_of(&b[0..4], swap);
            if kind == 0x0a0d_0d0a {
                if !self.fill(12)? {
                    return Err(self.damaged("truncated pcapng Section Header Block".into()));
                }
                self.section().map_err(|e| self.damaged(e.to_string()))?;
                continue;
            }
            let len = u32_of(&b[4..8], swap);
            if !(12..=MAX_BLOCK).contains(&len) || len % 4 != 0 {
                return Err(self.damaged(format!(
                    "pcapng block of type {kind:#x} has a bad length {len}"
                )));
            }
            if !self.fill(len as usize)? {
                let left = self.end - self.pos;
                return Err(self.damaged(format!(
                    "truncated pcapng block: tried to read {len} bytes, only got {left}"
                )));
            }
            let start = self.pos;
            self.pos += len as usize;
            let body = start + 8..start + len as usize - 4;
            match kind {
                // Interface Description Block.
                1 => {
                    let iface = self.interface(body, swap)?;
                    if let Format::Pcapng { ifaces, .. } = &mut self.format {
                        if ifaces.is_empty() && self.read == 0 {
                            self.linktype = iface.linktype;
                        }
                        if ifaces.len() >= 65_536 {
                            return Err(self.damaged("more than 65,536 pcapng interfaces".into()));
                        }
                        ifaces.push(iface);
                    }
                }
                // Enhanced Packet Block, and the obsolete Packet Block (2-byte interface id).
                6 | 2 => {
                    let d = &self.buf[body.clone()];
                    if d.len() < 20 {
                        return Err(self.damaged("pcapng packet block too short".into()));
                    }
                    let ifid = if kind == 6 {
                        u32_of(&d[0..4], swap) as usize
                    } else {
                        usize::from(u16_of(&d[0..2], swap))
                    };
                    let hi = u64::from(u32_of(&d[4..8], swap));
                    let lo = u64::from(u32_of(&d[8..12], swap));
                    let caplen = u32_of(&d[12..16], swap) as usize;
                    if caplen > d.len() - 20 {
                        return Err(self.damaged(format!(
                            "pcapng packet block: captured length {caplen} runs past the block"
                        )));
                    }
                    let Format::Pcapng { ifaces, .. } = &self.format else {
                        unreachable!("pcapng framing")
                    };
                    let Some(iface) = ifaces.get(ifid).copied() else {
                        return Err(self.damaged(format!(
                            "a packet names interface {ifid}, which the section has not described"
                        )));
                    };
                    self.read += 1;
                    let data_at = body.start + 20;
                    return Ok(Some(RawPacket {
                        ts: iface.ns((hi << 32) | lo),
                        linktype: iface.linktype,
                        data: &self.buf[data_at..data_at + caplen],
                    }));
                }
                // Simple Packet Block: interface 0, no timestamp.
                3 => {
                    let d = &self.buf[body.clone()];
                    let Format::Pcapng { ifaces, .. } = &self.format else {
                        unreachable!("pcapng framing")
                    };
                    let Some(iface) = ifaces.first().copied() else {
                        return Err(
                            self.damaged("a simple packet block comes before any interface".into())
                        );
                    };
                    if d.len() < 4 {
                        return Err(self.damaged("pcapng simple packet block too short".into()));
                    }
                    let wire = u32_of(&d[0..4], swap) as usize;
                    let caplen = wire.min(d.len() - 4);
                    self.read += 1;
                    let data_at = body.start + 4;
                    return Ok(Some(RawPacket {
                        ts: 0,
                        linktype: iface.linktype,
                        data: &self.buf[data_at..data_at + caplen],
                    }));
                }
                // Name resolution, statistics, decryption secrets, custom blocks: not packets.
                _ => {}
            }
        }
    }

    /// An Interface Description Block's link type and timestamp options.
    fn interface(&self, body: std::ops::Range<usize>, swap: bool) -> Result<Iface, CaptureError> {
        let d = &self.buf[body];
        if d.len() < 8 {
            return Err(self.damaged("pcapng Interface Description Block too short".into()));
        }
        let mut iface = Iface {
            linktype: i32::from(u16_of(&d[0..2], swap)),
            per_sec: 1_000_000,
            offset: 0,
        };
        let mut at = 8;
        while at + 4 <= d.len() {
            let code = u16_of(&d[at..at + 2], swap);
            let len = usize::from(u16_of(&d[at + 2..at + 4], swap));
            let v = d.get(at + 4..at + 4 + len).unwrap_or_default();
            match (code, v) {
                (0, _) => break,
                (9, [r]) => {
                    // if_tsresol: a power of 10, or of 2 with the top bit set.
                    let exp = u32::from(r & 0x7f);
                    let per_sec = if r & 0x80 == 0 {
                        10u64.checked_pow(exp)
                    } else {
                        1u64.checked_shl(exp)
                    };
                    match per_sec {
                        Some(p) if p > 0 => iface.per_sec = p,
                        _ => {
                            return Err(self.damaged(format!(
                                "pcapng interface has an impossible timestamp resolution {r:#x}"
                            )))
                        }
                    }
                }
                (14, v) if v.len() == 8 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(v);
                    let raw = u64::from_le_bytes(b);
                    iface.offset = if swap { raw.swap_bytes() } else { raw } as i64;
                }
                _ => {}
            }
            at += 4 + len.div_ceil(4) * 4;
        }
        Ok(iface)
    }
}

impl Iface {
    /// A timestamp in this interface's units as nanoseconds since the epoch.
    fn ns(&self, units: u64) -> u64 {
        let sec = (units / self.per_sec) as i64 + self.offset;
        let frac = units % self.per_sec;
        let frac_ns = (u128::from(frac) * 1_000_000_000 / u128::from(self.per_sec)) as u64;
        (sec.max(0) as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(frac_ns)
    }
}
