//! The process table as the tests see it: processes read from `/proc` (pid plus start time, so a
//! reused pid is never mistaken for one seen before), the descendants of a `skyport serve`, and
//! signals. Linux only, like Skyport's local runtime.

use std::collections::HashMap;
use std::fs;
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::command;

/// Sends a signal with the `kill` utility: the workspace denies `unsafe`, which `libc::kill` needs.
/// `target` is a pid, or `-PGID` for a whole process group.
pub fn signal(target: &str, sig: &str) {
    let _ = command("kill")
        .args(["-s", sig, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// One process as `/proc` shows it, identified by pid *and* start time so that a reused pid is never
/// mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub start: u64,
    /// Its state letter (`R`, `S`, `Z`, …).
    pub state: char,
}

impl Proc {
    /// Reads `/proc/PID/stat`; None when the process is gone.
    pub fn read(pid: u32) -> Option<Proc> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may contain spaces: fields start after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(Proc {
            pid,
            state: fields.first()?.chars().next()?,
            ppid: fields.get(1)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
        })
    }

    /// Whether this very process still runs (a zombie waiting to be reaped counts as gone).
    pub fn alive(&self) -> bool {
        Proc::read(self.pid).is_some_and(|p| p.start == self.start && p.state != 'Z')
    }

    /// Its command line, arguments joined by spaces.
    pub fn cmdline(&self) -> String {
        fs::read(format!("/proc/{}/cmdline", self.pid))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    /// Whether it runs Skyport's zygote program (a pre-imported interpreter that forks
    /// instances; its command line carries the program, which names itself). Instances it
    /// forked keep that command line too.
    pub fn is_zygote(&self) -> bool {
        self.cmdline().contains("Skyport's zygote")
    }

    /// Whether it is the build's background bytecode compilation of a new environment.
    pub fn is_compiling(&self) -> bool {
        self.cmdline().contains(" -m compileall ")
    }

    /// Whether it is a Python interpreter (by its executable name).
    pub fn is_python(&self) -> bool {
        let comm = fs::read_to_string(format!("/proc/{}/comm", self.pid)).unwrap_or_default();
        let argv0 = self.cmdline().split(' ').next().unwrap_or("").to_owned();
        let argv0 = argv0.rsplit('/').next().unwrap_or("");
        comm.trim().starts_with("python") || argv0.starts_with("python")
    }
}

/// Every live (non-zombie) process on the machine.
pub fn processes() -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(Proc::read)
        .filter(|p| p.state != 'Z')
        .collect()
}

/// Every live (non-zombie) descendant of `root`, found by walking parent pids in `/proc`.
pub fn descendants(root: u32) -> Vec<Proc> {
    let mut children: HashMap<u32, Vec<Proc>> = HashMap::new();
    for p in processes() {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut found = Vec::new();
    let mut stack = vec![root];
    // Bounded by the process table: each pid is visited once, as a child of exactly one parent.
    while let Some(pid) = stack.pop() {
        for child in children.remove(&pid).unwrap_or_default() {
            stack.push(child.pid);
            found.push(child);
        }
    }
    found
}

/// The server instances under `root`: descendant Python processes whose parent is not itself a
/// Python process (so a server's own worker subprocesses are not counted as instances), except
/// that instances forked by a zygote count and the zygotes themselves (and the build's bytecode
/// compilation) do not.
pub fn python_instances(root: u32) -> Vec<Proc> {
    let all = descendants(root);
    let pythons: Vec<&Proc> = all
        .iter()
        .filter(|p| p.is_python() && !p.is_compiling())
        .collect();
    let is_python = |pid: u32| pythons.iter().any(|q| q.pid == pid);
    // A forked instance keeps its zygote's command line: a zygote is the one whose parent is
    // not Python.
    let zygotes: Vec<u32> = pythons
        .iter()
        .filter(|p| p.is_zygote() && !is_python(p.ppid))
        .map(|p| p.pid)
        .collect();
    pythons
        .iter()
        .filter(|p| !zygotes.contains(&p.pid))
        .filter(|p| zygotes.contains(&p.ppid) || !is_python(p.ppid))
        .map(|p| **p)
        .collect()
}

/// Waits until `cond` holds, checking every 100 ms for at most `timeout`; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        sleep(Duration::from_millis(100));
    }
}
