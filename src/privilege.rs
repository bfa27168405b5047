//! Least privilege for a live capture: once the interface and the output files are open, the
//! process becomes an unprivileged user (`--user`, as tcpdump's `-Z`) and keeps no capability.

use std::ffi::CString;

/// Why the process could not become the requested user.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("--user {0}: no such user")]
    NoUser(String),
    #[error("--user {user}: {step} failed: {err}")]
    Call {
        user: String,
        step: &'static str,
        err: std::io::Error,
    },
}

/// The user's ids as the password database has them.
fn lookup(name: &str) -> Result<(libc::uid_t, libc::gid_t), PrivilegeError> {
    let no_user = || PrivilegeError::NoUser(name.to_string());
    let c = CString::new(name).map_err(|_| no_user())?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid C string, passwd struct and buffer of the stated length; `out` is set to
    // `&mut pw` on success, or null when there is no such user.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return Err(no_user());
    }
    Ok((pw.pw_uid, pw.pw_gid))
}

/// Become `name`: only its primary group (supplementary groups cleared), then its uid; no
/// capability survives (the bounding set is emptied while we still may, the uid change clears
/// the permitted and effective sets since PR_SET_KEEPCAPS is off), and no-new-privs is set so
/// no set-uid program can give any back.
pub fn drop_to(name: &str) -> Result<(), PrivilegeError> {
    let (uid, gid) = lookup(name)?;
    let fail = |step: &'static str| PrivilegeError::Call {
        user: name.to_string(),
        step,
        err: std::io::Error::last_os_error(),
    };
    // SAFETY: plain system calls on integers and a one-element array.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0 {
            return Err(fail("prctl(PR_SET_KEEPCAPS, 0)"));
        }
        // Capabilities beyond the kernel's last one answer EINVAL: the loop ends there.
        for cap in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINVAL) {
                    break;
                }
                // Without CAP_SETPCAP the bounding set stays; the uid change still clears
                // the permitted set, and no-new-privs keeps it from being refilled.
                if e.raw_os_error() == Some(libc::EPERM) {
                    break;
                }
                return Err(fail("prctl(PR_CAPBSET_DROP)"));
            }
        }
        if libc::setgroups(1, &gid) != 0 {
            return Err(fail("setgroups"));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(fail("setresgid"));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(fail("setresuid"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(fail("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
        // The change must not be undoable: a process that could become root again kept a
        // privilege it should not have.
        if uid != 0 && libc::setuid(0) == 0 {
            return Err(PrivilegeError::Call {
                user: name.to_string(),
                step: "check (setuid(0) still succeeds)",
                err: std::io::Error::other("privileges were not dropped"),
            });
        }
    }
    Ok(())
}
