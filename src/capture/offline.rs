//! Offline captures: pcap and pcapng files (or `-` for standard input) in the order given.

use super::RawPacket;
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
    /// A live capture failed while running (the interface went away...).
    #[error(transparent)]
    Live(#[from] super::live::LiveError),
}

impl CaptureError {
    /// Process exit code for this kind of failure (see the README's table).
    pub fn exit_code(&self) -> i32 {
        match self {
            CaptureError::Open { .. } => 3,
            CaptureError::Empty { .. } | CaptureError::NotCapture { .. } => 4,
            CaptureError::Damaged { .. } => 5,
            CaptureError::Live(_) => 10,
        }
    }
}

/// libpcap's offline API, called directly so that exwatch owns the `FILE` it reads: a 1 MiB
/// stdio buffer and no per-call stdio locking (only the reader thread touches it). Through
/// the `pcap` crate each `fread` takes the FILE lock, which costs as much as the rest of the
/// reader's work in a multi-threaded process.
mod ffi {
    use libc::{c_char, c_int, c_uint, FILE};

    #[repr(C)]
    pub struct PcapPkthdr {
        pub ts: libc::timeval,
        pub caplen: c_uint,
        pub len: c_uint,
    }

    pub enum Pcap {}

    pub const PCAP_ERRBUF_SIZE: usize = 256;
    pub const PCAP_TSTAMP_PRECISION_NANO: c_uint = 1;
    pub const FSETLOCKING_BYCALLER: c_int = 2;

    #[link(name = "pcap")]
    extern "C" {
        pub fn pcap_fopen_offline_with_tstamp_precision(
            fp: *mut FILE,
            precision: c_uint,
            errbuf: *mut c_char,
        ) -> *mut Pcap;
        pub fn pcap_next_ex(
            p: *mut Pcap,
            header: *mut *mut PcapPkthdr,
            data: *mut *const u8,
        ) -> c_int;
        pub fn pcap_datalink(p: *mut Pcap) -> c_int;
        pub fn pcap_geterr(p: *mut Pcap) -> *const c_char;
        pub fn pcap_close(p: *mut Pcap);
    }

    extern "C" {
        pub fn __fsetlocking(fp: *mut FILE, kind: c_int) -> c_int;
    }
}

/// An open capture file being read packet by packet.
pub struct OfflineCapture {
    name: String,
    handle: *mut ffi::Pcap,
    linktype: i32,
    /// Packets returned so far.
    read: u64,
    /// The FILE's stdio buffer: stdio uses a buffer of the size asked for only when it is
    /// given one (with a NULL pointer glibc keeps its 4 KiB default). Freed after the FILE is
    /// closed (fields drop after `Drop::drop`).
    _buffer: Box<[u8]>,
}

// SAFETY: the handle is used by one thread at a time (the reader owns the capture).
unsafe impl Send for OfflineCapture {}

impl Drop for OfflineCapture {
    fn drop(&mut self) {
        // SAFETY: `handle` came from pcap_fopen_offline and is closed once; pcap_close also
        // closes the FILE it was opened on.
        unsafe { ffi::pcap_close(self.handle) }
    }
}

/// stdio buffer for capture files: fewer read(2) calls than the 4 KiB default.
const STDIO_BUFFER: usize = 1 << 20;

fn cstr(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libpcap returns NUL-terminated strings.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

impl OfflineCapture {
    /// Open a file, or standard input for `-`.
    pub fn open(spec: &str) -> Result<Self, CaptureError> {
        let name = if spec == "-" {
            "<stdin>".to_string()
        } else {
            spec.to_string()
        };
        if spec != "-" {
            let path = PathBuf::from(spec);
            match std::fs::metadata(&path) {
                Err(e) => {
                    return Err(CaptureError::Open {
                        file: name,
                        reason: e.to_string(),
                    })
                }
                Ok(m) if m.is_dir() => {
                    return Err(CaptureError::Open {
                        file: name,
                        reason: "is a directory".into(),
                    })
                }
                Ok(m) if m.len() == 0 => return Err(CaptureError::Empty { file: name }),
                Ok(_) => {}
            }
        }
        let fp = if spec == "-" {
            // SAFETY: fd 0 is open for the life of the process; the FILE takes it over.
            unsafe { libc::fdopen(0, c"rb".as_ptr()) }
        } else {
            let c = std::ffi::CString::new(spec).map_err(|_| CaptureError::Open {
                file: name.clone(),
                reason: "the path contains a NUL byte".into(),
            })?;
            // SAFETY: valid C strings.
            unsafe { libc::fopen(c.as_ptr(), c"rb".as_ptr()) }
        };
        if fp.is_null() {
            return Err(CaptureError::Open {
                file: name,
                reason: std::io::Error::last_os_error().to_string(),
            });
        }
        let mut errbuf = [0 as libc::c_char; ffi::PCAP_ERRBUF_SIZE];
        let mut buffer = vec![0u8; STDIO_BUFFER].into_boxed_slice();
        // SAFETY: `fp` is a fresh FILE owned by us, not yet read; `buffer` outlives it (it is
        // kept in the capture and freed after pcap_close). pcap_fopen_offline takes ownership
        // of `fp` on success.
        let handle = unsafe {
            libc::setvbuf(
                fp,
                buffer.as_mut_ptr().cast::<libc::c_char>(),
                libc::_IOFBF,
                STDIO_BUFFER,
            );
            ffi::__fsetlocking(fp, ffi::FSETLOCKING_BYCALLER);
            ffi::pcap_fopen_offline_with_tstamp_precision(
                fp,
                ffi::PCAP_TSTAMP_PRECISION_NANO,
                errbuf.as_mut_ptr(),
            )
        };
        if handle.is_null() {
            // SAFETY: libpcap did not take the FILE when it failed.
            unsafe { libc::fclose(fp) };
            return Err(classify_open_error(&name, cstr(errbuf.as_ptr())));
        }
        // SAFETY: valid handle.
        let linktype = unsafe { ffi::pcap_datalink(handle) };
        Ok(OfflineCapture {
            name,
            handle,
            linktype,
            read: 0,
            _buffer: buffer,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's link type (libpcap DLT value).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// The next packet, `Ok(None)` at the clean end of the file.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        let mut hdr: *mut ffi::PcapPkthdr = std::ptr::null_mut();
        let mut data: *const u8 = std::ptr::null();
        // SAFETY: valid handle and out-pointers; on success libpcap points them at its own
        // buffers, valid until the next call (which needs `&mut self`, so the borrow ends).
        let rc = unsafe { ffi::pcap_next_ex(self.handle, &mut hdr, &mut data) };
        match rc {
            1 => {
                self.read += 1;
                // SAFETY: rc == 1 means both pointers are set.
                let h = unsafe { &*hdr };
                let bytes = unsafe { std::slice::from_raw_parts(data, h.caplen as usize) };
                // Nanosecond precision was requested, so tv_usec holds nanoseconds.
                let ns = h.ts.tv_sec.max(0) as u64 * 1_000_000_000
                    + h.ts.tv_usec.clamp(0, 999_999_999) as u64;
                Ok(Some(RawPacket {
                    ts: ns,
                    data: bytes,
                }))
            }
            -2 => Ok(None),
            _ => Err(CaptureError::Damaged {
                file: self.name.clone(),
                packet: self.read + 1,
                read: self.read,
                // SAFETY: valid handle.
                reason: cstr(unsafe { ffi::pcap_geterr(self.handle) }),
            }),
        }
    }
}

fn classify_open_error(name: &str, reason: String) -> CaptureError {
    let file = name.to_string();
    if reason.contains("only got 0") {
        CaptureError::Empty { file }
    } else if reason.contains("unknown file format")
        || reason.contains("bad dump file format")
        || reason.contains("truncated dump file")
        || reason.contains("file header")
        || reason.contains("unsupported")
        || reason.contains("pcapng")
        || reason.contains("Section Header")
    {
        CaptureError::NotCapture { file, reason }
    } else {
        CaptureError::Open { file, reason }
    }
}
