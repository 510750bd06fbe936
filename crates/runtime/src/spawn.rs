//! The operating-system edge of the local runtime, and the crate's only `unsafe`: handing a
//! listening socket to a child, tying the child's life to Skyport's and confining its memory
//! need a few syscalls between `fork` and `exec`, and stopping processes needs `kill(2)`.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tokio::process::{Child, Command};

/// The descriptor number on which an instance finds its listening socket
/// (`SKYPORT_LISTEN_FD`); 3 is the first one after stdin, stdout and stderr.
pub(crate) const LISTEN_FD: i32 = 3;

/// The listening socket this process was started with as an instance (descriptor
/// [`LISTEN_FD`]), for instance programs written in Rust (the stdio bridge). It is made
/// close-on-exec, so that what the instance starts does not hold the port. Call it once: the
/// socket it returns owns the descriptor.
pub fn inherited_listener() -> io::Result<TcpListener> {
    // SAFETY: `fcntl` on a descriptor number touches no memory; an unopened number fails
    // with EBADF, which is reported.
    let flags = unsafe { libc::fcntl(LISTEN_FD, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above, on a descriptor now known to be open.
    if unsafe { libc::fcntl(LISTEN_FD, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open, and nothing else in this process owns it: the runtime
    // passed it for this one use.
    let listener = TcpListener::from(unsafe { OwnedFd::from_raw_fd(LISTEN_FD) });
    listener.local_addr()?;
    Ok(listener)
}

/// How an instance's memory is capped.
pub(crate) enum Confinement {
    /// It moves itself into a cgroup by writing `0` to this open `cgroup.procs` (opened before
    /// the fork, so the child needs no path or allocation).
    Cgroup(File),
    /// No cgroups: its address space is capped at this many bytes (`RLIMIT_AS`).
    AddressSpace(u64),
}

/// Starts `command` in its own process group with `listener` (if any) as descriptor [`LISTEN_FD`],
/// confined as `confinement` says, killed by the kernel if Skyport dies, even by `SIGKILL`.
/// Where the kernel lets Skyport make mount namespaces (root or `CAP_SYS_ADMIN`), `read_only`
/// is mounted read-only in the child's own namespace; elsewhere it stays as it is, which is
/// why this is best effort and reported by [`read_only_supported`].
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so this must be called from
/// a thread that lives as long as Skyport (a runtime worker, not a blocking-pool thread).
pub(crate) fn spawn_instance(
    command: Command,
    listener: Option<&TcpListener>,
    confinement: &Confinement,
    read_only: &Path,
) -> io::Result<Child> {
    let read_only = CString::new(read_only.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("the artifact path contains a NUL byte"))?;
    spawn_with(
        command,
        listener.map(AsRawFd::as_raw_fd),
        Some(confinement),
        Some(read_only),
    )
}

/// Starts a zygote: like an instance, but with `control` (one end of [`seqpacket_pair`]) as
/// descriptor [`LISTEN_FD`] and no memory cap of its own (its instances get theirs).
pub(crate) fn spawn_zygote(command: Command, control: &OwnedFd) -> io::Result<Child> {
    spawn_with(command, Some(control.as_raw_fd()), None, None)
}

fn spawn_with(
    mut command: Command,
    socket: Option<RawFd>,
    confinement: Option<&Confinement>,
    read_only: Option<CString>,
) -> io::Result<Child> {
    let parent = std::process::id();
    let (cgroup, address_space) = match confinement {
        Some(Confinement::Cgroup(procs)) => (Some(procs.as_raw_fd()), None),
        Some(Confinement::AddressSpace(bytes)) => (None, Some(*bytes)),
        None => (None, None),
    };
    command.process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (write, setrlimit, unshare, mount, dup2, fcntl, prctl,
    // getppid) on descriptors and values prepared before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if let Some(dir) = &read_only {
                mount_read_only(dir);
            }
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
            if socket == Some(LISTEN_FD) {
                let flags = libc::fcntl(LISTEN_FD, libc::F_GETFD);
                if flags < 0 || libc::fcntl(LISTEN_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0
                {
                    return Err(io::Error::last_os_error());
                }
            } else if let Some(socket) = socket
                && libc::dup2(socket, LISTEN_FD) < 0
            {
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

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (message boundaries kept, descriptors
/// passable), both close-on-exec.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair writes two descriptors into the array on success, which we then own.
    unsafe {
        if libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// Sends one message on a `SOCK_SEQPACKET` socket with `fds` attached (`SCM_RIGHTS`).
pub(crate) fn send_with_fds(socket: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let fd_bytes = std::mem::size_of_val(fds);
    let fd_bytes_u32 =
        u32::try_from(fd_bytes).map_err(|_| io::Error::other("too many descriptors"))?;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes_u32) } as usize;
    // u64 elements keep the control buffer aligned for `cmsghdr`.
    let mut control = vec![0_u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer in it refers to a buffer that outlives the
    // sendmsg call, the control buffer is large enough for one cmsghdr carrying `fds`, and
    // CMSG_FIRSTHDR/CMSG_DATA stay inside it.
    unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = space as _;
        let header = libc::CMSG_FIRSTHDR(&message);
        if header.is_null() {
            return Err(io::Error::other("no room for the descriptors"));
        }
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(fd_bytes_u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(header), fd_bytes);
        if libc::sendmsg(socket.as_raw_fd(), &message, libc::MSG_NOSIGNAL) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
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
