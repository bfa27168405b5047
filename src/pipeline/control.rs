//! Signals for a long-running capture: SIGINT/SIGTERM ask the reader to stop (every tracked
//! flow is then flushed), SIGHUP asks the sink to reopen its output files (logrotate).
//!
//! The handlers only set atomic flags; the reader polls `stop_requested` between reads (at
//! least every read timeout) and the sink polls `take_reopen` between messages.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static REOPEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_hup(_: libc::c_int) {
    REOPEN.store(true, Ordering::SeqCst);
}

/// Install the handlers (once, before the pipeline starts).
pub fn install() -> std::io::Result<()> {
    for (sig, handler) in [
        (libc::SIGINT, on_stop as extern "C" fn(libc::c_int)),
        (libc::SIGTERM, on_stop),
        (libc::SIGHUP, on_hup),
    ] {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic is
        // async-signal-safe; SA_RESTART keeps blocking reads and writes from failing with EINTR.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM has arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Whether SIGHUP has arrived since the last call.
pub fn take_reopen() -> bool {
    REOPEN.swap(false, Ordering::SeqCst)
}

/// Ask every reader to stop, as SIGTERM does (one live socket failed: the others end too).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}
