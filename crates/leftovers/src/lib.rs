//! Processes that must not outlive the Skyport that started them, found again after a
//! `kill -9`, when no drop guard or graceful shutdown could end them.
//!
//! A process is named by its pid *and* its start time ([`Stamp`]), so that a record never ends
//! an unrelated process that reused the pid. [`end_group`] ends a recorded process-group
//! leader and every member of its group that started no earlier (a leader's helpers stay in
//! its group). [`Records`] keeps one record file per process group in a folder, for users that
//! have no record format of their own (the build's uv, git and Python children); the runtime
//! keeps its own (with each instance's cgroup) and uses the functions here to sweep.
//!
//! This crate reads `/proc` and sends signals, and only for that; it must not start processes
//! or know what the processes are. Linux only, like Skyport's local runtime.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

#[cfg(test)]
mod tests;

/// How long [`Records::sweep`] waits for the processes it killed to disappear.
pub const SWEEP_WAIT: Duration = Duration::from_secs(5);

/// One process as the kernel knows it: its pid and its start time in clock ticks since boot
/// (`/proc/PID/stat` field 22), which together never name two processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot.
    pub start: u64,
}

impl Stamp {
    /// The stamp of live process `pid`; None when it is gone.
    pub fn of(pid: u32) -> Option<Stamp> {
        Some(Stamp {
            pid,
            start: stat(pid)?.start,
        })
    }

    /// Whether this very process still runs (a zombie counts as gone).
    pub fn running(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start && !s.zombie)
    }

    /// Parses `PID START`, the form [`std::fmt::Display`] writes.
    pub fn parse(text: &str) -> Option<Stamp> {
        let mut fields = text.split_whitespace();
        let stamp = Stamp {
            pid: fields.next()?.parse().ok()?,
            start: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(stamp)
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.pid, self.start)
    }
}

/// Kills the process group `leader` leads: the leader itself if it is still that process,
/// and every process of its group that started no earlier than it (so a group id reused by
/// an unrelated, older process is left alone). Returns the pids signalled.
pub fn end_group(leader: &Stamp) -> Vec<u32> {
    let mut killed = Vec::new();
    if leader.running() {
        kill(leader.pid);
        killed.push(leader.pid);
    }
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if pid != leader.pid
            && stat(pid).is_some_and(|s| s.group == leader.pid && s.start >= leader.start)
        {
            kill(pid);
            killed.push(pid);
        }
    }
    killed
}

/// Sends `SIGKILL` to one process; a process already gone is not an error.
pub fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// Waits, at most `limit`, until none of `pids` runs (zombies count as gone).
pub fn wait_gone(pids: &[u32], limit: Duration) {
    let deadline = Instant::now() + limit;
    while pids.iter().any(|pid| running(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` runs (whatever process that is now).
pub fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|s| !s.zombie)
}

/// A folder of records, one file per process group (named by the leader's pid, holding its
/// [`Stamp`]), saved when the group starts and removed when it ends; what is left in it
/// when Skyport starts was left by a run that died.
#[derive(Clone, Debug)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    /// The records kept in `dir` (created on the first [`Records::save`]).
    pub fn new(dir: &Path) -> Records {
        Records {
            dir: dir.to_path_buf(),
        }
    }

    /// Records the group that live process `pid` leads; an error when the folder cannot be
    /// written, and nothing when the process is already gone.
    pub fn save(&self, pid: u32) -> io::Result<()> {
        let Some(stamp) = Stamp::of(pid) else {
            return Ok(());
        };
        fs::create_dir_all(&self.dir)?;
        fs::write(self.dir.join(pid.to_string()), format!("{stamp}\n"))
    }

    /// Removes the record of the group `pid` leads (it ended, or was ended).
    pub fn forget(&self, pid: u32) {
        let _ = fs::remove_file(self.dir.join(pid.to_string()));
    }

    /// Ends every recorded group and removes the records; waits (at most [`SWEEP_WAIT`])
    /// for the processes to go. Returns how many processes were killed. Blocks: call it
    /// before anything is started, off an async runtime's workers.
    pub fn sweep(&self) -> usize {
        let mut killed = Vec::new();
        for entry in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let stamp = fs::read_to_string(entry.path())
                .ok()
                .and_then(|text| Stamp::parse(&text));
            if let Some(stamp) = stamp {
                killed.extend(end_group(&stamp));
            }
            let _ = fs::remove_file(entry.path());
        }
        wait_gone(&killed, SWEEP_WAIT);
        killed.sort_unstable();
        killed.dedup();
        killed.len()
    }
}

/// The fields of `/proc/PID/stat` a sweep needs.
struct Stat {
    group: u32,
    start: u64,
    zombie: bool,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: fields follow the last ')'.
    let fields: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some(Stat {
        zombie: *fields.first()? == "Z",
        group: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}
