//! The operating-system edge of the local runtime, and the crate's only `unsafe`: handing a
//! listening socket to a child, tying the child's life to Skyport's and confining its memory
//! need a few syscalls between `fork` and `exec`, and stopping processes needs `kill(2)`.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tokio::process::{Child, Command};

/// The descriptor number on which an instance finds its listening socket
/// (`SKYPORT_LISTEN_FD`); 3 is the first one after stdin, stdout and stderr.
pub(crate) const LISTEN_FD: i32 = 3;

/// How an instance's memory is capped.
pub(crate) enum Confinement {
    /// It moves itself into a cgroup by writing `0` to this open `cgroup.procs` (opened before
    /// the fork, so the child needs no path or allocation).
    Cgroup(File),
    /// No cgroups: its address space is capped at this many bytes (`RLIMIT_AS`).
    AddressSpace(u64),
}

/// Starts `command` in its own process group with `listener` as descriptor [`LISTEN_FD`],
/// confined as `confinement` says, killed by the kernel if Skyport dies, even by `SIGKILL`.
/// Where the kernel lets Skyport make mount namespaces (root or `CAP_SYS_ADMIN`), `read_only`
/// is mounted read-only in the child's own namespace; elsewhere it stays as it is, which is
/// why this is best effort and reported by [`read_only_supported`].
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so this must be called from
/// a thread that lives as long as Skyport (a runtime worker, not a blocking-pool thread).
pub(crate) fn spawn_instance(
    mut command: Command,
    listener: &TcpListener,
    confinement: &Confinement,
    read_only: &Path,
) -> io::Result<Child> {
    let read_only = CString::new(read_only.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("the artifact path contains a NUL byte"))?;
    let socket = listener.as_raw_fd();
    let parent = std::process::id();
    let (cgroup, address_space) = match confinement {
        Confinement::Cgroup(procs) => (Some(procs.as_raw_fd()), None),
        Confinement::AddressSpace(bytes) => (None, Some(*bytes)),
    };
    command.process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (write, setrlimit, unshare, mount, dup2, fcntl, prctl,
    // getppid) on descriptors and values prepared before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            mount_read_only(&read_only);
            // First, so that everything the instance allocates is charged to its cgroup.
            if let Some(procs) = cgroup
                && libc::write(procs, b"0".as_ptr().cast(), 1) != 1
            {
                return Err(io::Error::last_os_error());
            }
            if let Some(bytes) = address_space {
                let limit = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if socket == LISTEN_FD {
                let flags = libc::fcntl(socket, libc::F_GETFD);
                if flags < 0 || libc::fcntl(socket, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(socket, LISTEN_FD) < 0 {
                // dup2 leaves the new descriptor without FD_CLOEXEC, so it survives exec.
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(io::Error::last_os_error());
            }
            // Skyport may have died between fork and prctl; then nobody would kill us.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other(
                    "Skyport exited while starting the instance",
                ));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Remounts `dir` read-only in a mount namespace of the calling process's own. Any step the
/// kernel refuses leaves the process as it was.
///
/// # Safety
/// Runs between fork and exec: only syscalls, no allocation.
unsafe fn mount_read_only(dir: &CStr) {
    let none = std::ptr::null();
    // SAFETY: plain syscalls on a NUL-terminated path that outlives them.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return;
        }
        // Our mounts must not propagate back to Skyport's namespace.
        if libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            none.cast(),
        ) != 0
        {
            return;
        }
        if libc::mount(
            dir.as_ptr(),
            dir.as_ptr(),
            none,
            libc::MS_BIND | libc::MS_REC,
            none.cast(),
        ) != 0
        {
            return;
        }
        if libc::mount(
            none,
            dir.as_ptr(),
            none,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            none.cast(),
        ) != 0
        {
            return;
        }
        // The working directory was entered before the mount and still refers to the writable
        // one underneath; enter it again to stand on the read-only mount.
        libc::chdir(dir.as_ptr());
    }
}

/// Whether instances get their artifact read-only: Skyport may make mount namespaces when it
/// runs as root (the check the kernel makes is `CAP_SYS_ADMIN`; root is the usual holder).
pub(crate) fn read_only_supported() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `signal` to the process group led by `pid` (instances are group leaders, so this
/// reaches anything they started too).
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; a group that is already gone
    // yields ESRCH, which is what we want to ignore.
    unsafe {
        libc::kill(-pid, signal.number());
    }
}

/// Sends `signal` to the single process `pid`.
pub(crate) fn signal_process(pid: u32, signal: Signal) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: as in `signal_group`.
    unsafe {
        libc::kill(pid, signal.number());
    }
}

/// The signals the runtime sends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Signal {
    /// Ask to stop (`SIGTERM`).
    Terminate,
    /// Stop now (`SIGKILL`).
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Terminate => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }
}
