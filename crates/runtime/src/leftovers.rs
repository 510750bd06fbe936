//! Restart safety: a record per running instance (pid, start time, cgroup) in the state
//! directory, and the sweep that ends whatever a previous run left behind before a new one
//! serves. Instances die with Skyport through their parent-death signal, but what they started
//! themselves does not; after a `kill -9` those processes are found by their process group
//! and their cgroup.
//!
//! Start times make pid reuse harmless: a process is ended only if it started when the record
//! says (the leader) or after it (members of its group); `skyport_leftovers` does the `/proc`
//! reading and the killing, shared with the build's records of its children.

use std::fs;
use std::path::{Path, PathBuf};

use skyport_leftovers::{SWEEP_WAIT, Stamp, end_group, kill, wait_gone};

use crate::cgroup::{Cgroup, Cgroups};

/// What is known about a running instance's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PidRecord {
    /// The process: its pid and start time.
    pub(crate) stamp: Stamp,
    pub(crate) cgroup: Option<PathBuf>,
}

impl PidRecord {
    /// The record of live process `pid`, if it still runs.
    pub(crate) fn of(pid: u32, cgroup: Option<&Cgroup>) -> Option<PidRecord> {
        Some(PidRecord {
            stamp: Stamp::of(pid)?,
            cgroup: cgroup.map(|c| c.path().to_path_buf()),
        })
    }

    /// Writes the record as `dir/NAME`: the stamp, then the cgroup's path (which may hold
    /// spaces, so it comes last).
    pub(crate) fn save(&self, dir: &Path, name: &str) -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        let cgroup = self
            .cgroup
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string());
        fs::write(dir.join(name), format!("{} {cgroup}\n", self.stamp))
    }

    fn parse(text: &str) -> Option<PidRecord> {
        let mut fields = text.trim_end_matches('\n').splitn(3, ' ');
        Some(PidRecord {
            stamp: Stamp {
                pid: fields.next()?.parse().ok()?,
                start: fields.next()?.parse().ok()?,
            },
            cgroup: fields.next().filter(|p| !p.is_empty()).map(PathBuf::from),
        })
    }
}

/// Removes the record `dir/NAME`.
pub(crate) fn forget(dir: &Path, name: &str) {
    let _ = fs::remove_file(dir.join(name));
}

/// Ends every process a previous run left: those recorded in `dir` and their groups, and
/// everything in instance cgroups under `cgroups`; removes the records and those cgroups.
/// Returns how many processes were killed.
pub(crate) fn sweep(dir: &Path, cgroups: Option<&Cgroups>) -> usize {
    let mut killed = Vec::new();
    let mut leftover_cgroups = cgroups.map(Cgroups::children).unwrap_or_default();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let record = fs::read_to_string(entry.path())
            .ok()
            .and_then(|text| PidRecord::parse(&text));
        if let Some(record) = record {
            killed.extend(end_group(&record.stamp));
            // A cgroup outside today's parent (the data directory moved): sweep it too.
            if let (Some(cgroups), Some(path)) = (cgroups, record.cgroup) {
                let cgroup = Cgroup::at(cgroups.version(), path);
                if !leftover_cgroups.contains(&cgroup) {
                    leftover_cgroups.push(cgroup);
                }
            }
        }
        let _ = fs::remove_file(entry.path());
    }
    for cgroup in &leftover_cgroups {
        for pid in cgroup.pids() {
            kill(pid);
            killed.push(pid);
        }
    }
    wait_gone(&killed, SWEEP_WAIT);
    for cgroup in &leftover_cgroups {
        if let Err(e) = cgroup.remove() {
            tracing::warn!(cgroup = %cgroup.path().display(), "cannot remove a leftover cgroup: {e}");
        }
    }
    killed.sort_unstable();
    killed.dedup();
    killed.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let record = PidRecord::of(std::process::id(), None).unwrap();
        record.save(dir.path(), "ins_x").unwrap();
        let text = fs::read_to_string(dir.path().join("ins_x")).unwrap();
        assert_eq!(PidRecord::parse(&text), Some(record));
        let with_cgroup = "12 34 /sys/fs/cgroup/x y\n";
        assert_eq!(
            PidRecord::parse(with_cgroup).unwrap().cgroup,
            Some(PathBuf::from("/sys/fs/cgroup/x y"))
        );
        assert_eq!(PidRecord::parse("garbage"), None);
    }

    #[test]
    fn a_record_whose_pid_was_reused_kills_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // Our own pid with another start time: a different process by the record's account.
        let me = PidRecord::of(std::process::id(), None).unwrap();
        let stale = PidRecord {
            stamp: Stamp {
                start: me.stamp.start + 1_000_000,
                ..me.stamp
            },
            ..me
        };
        stale.save(dir.path(), "ins_stale").unwrap();
        assert_eq!(sweep(dir.path(), None), 0);
        assert!(!dir.path().join("ins_stale").exists());
    }
}
