//! The operating-system edge of the local runtime, and the crate's only `unsafe`: handing a
//! listening socket to a child and tying the child's life to Skyport's need a few syscalls
//! between `fork` and `exec`, and stopping a process group needs `kill(2)`.
#![allow(unsafe_code)]

use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;

use tokio::process::{Child, Command};

/// The descriptor number on which an instance finds its listening socket
/// (`SKYPORT_LISTEN_FD`); 3 is the first one after stdin, stdout and stderr.
pub(crate) const LISTEN_FD: i32 = 3;

/// Starts `command` in its own process group with `listener` as descriptor [`LISTEN_FD`],
/// killed by the kernel if Skyport dies, even by `SIGKILL`.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so this must be called from
/// a thread that lives as long as Skyport (a runtime worker, not a blocking-pool thread).
pub(crate) fn spawn_instance(mut command: Command, listener: &TcpListener) -> io::Result<Child> {
    let socket = listener.as_raw_fd();
    let parent = std::process::id();
    command.process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (dup2, fcntl, prctl, getppid); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
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

/// Sends `signal` to the process group led by `pid` (instances are group leaders, so this
/// reaches anything they started too).
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    let signal = match signal {
        Signal::Terminate => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) has no memory-safety preconditions; a group that is already gone
    // yields ESRCH, which is what we want to ignore.
    unsafe {
        libc::kill(-pid, signal);
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
