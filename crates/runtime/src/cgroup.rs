//! Memory caps with the kernel's cgroup memory controller, v2 (unified hierarchy) or v1 where
//! that is what the host mounts. Skyport creates its cgroups beneath its own (which is what a
//! container or a systemd unit delegates to it), one parent per data directory and one child per
//! instance, so an instance and everything it starts share one cap, an out-of-memory kill is
//! counted in that child, and after a crash the previous run's instances are found there.
//!
//! This module only touches cgroup files; it never signals processes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Which cgroup interface the memory controller is reached through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// The unified hierarchy: `memory.max`, `memory.current`, `memory.events`.
    V2,
    /// The legacy memory hierarchy: `memory.limit_in_bytes`, `memory.usage_in_bytes`,
    /// `memory.oom_control`.
    V1,
}

/// Skyport's cgroup parent, where instance cgroups are made.
#[derive(Clone, Debug)]
pub(crate) struct Cgroups {
    version: Version,
    base: PathBuf,
}

/// One instance's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cgroup {
    version: Version,
    path: PathBuf,
}

impl Cgroups {
    /// Finds the memory controller over Skyport's own cgroup and makes the parent `name` in
    /// it; the error says why caps cannot be enforced this way.
    pub(crate) fn detect(name: &str) -> Result<Cgroups, String> {
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mounts = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let candidates = locate(&own, &mounts);
        if candidates.is_empty() {
            return Err("no cgroup memory controller is mounted".to_owned());
        }
        let mut reasons = Vec::new();
        for (version, dir) in candidates {
            match Cgroups::prepare(version, &dir, name) {
                Ok(cgroups) => return Ok(cgroups),
                Err(e) => reasons.push(format!("{}: {e}", dir.display())),
            }
        }
        Err(reasons.join("; "))
    }

    fn prepare(version: Version, dir: &Path, name: &str) -> io::Result<Cgroups> {
        if version == Version::V2 {
            let controllers = fs::read_to_string(dir.join("cgroup.controllers"))?;
            if !controllers.split_whitespace().any(|c| c == "memory") {
                return Err(io::Error::other(
                    "the memory controller is not delegated here",
                ));
            }
        }
        if version == Version::V2 {
            // Children of our cgroup get a memory controller only if it is enabled in its
            // subtree.
            fs::write(dir.join("cgroup.subtree_control"), "+memory")?;
        }
        let cgroups = Cgroups {
            version,
            base: dir.join(name),
        };
        // Made now to prove we may, removed again so a Skyport that starts no instance
        // leaves nothing behind; `create` makes it again.
        cgroups.make_base()?;
        let _ = fs::remove_dir(&cgroups.base);
        Ok(cgroups)
    }

    fn make_base(&self) -> io::Result<()> {
        if self.base.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.base)?;
        if self.version == Version::V2 {
            // And in our parent's, for the instance cgroups below it.
            fs::write(self.base.join("cgroup.subtree_control"), "+memory")?;
        }
        Ok(())
    }

    /// The hierarchy in use, for the startup message.
    pub(crate) fn version(&self) -> Version {
        self.version
    }

    /// Where instance cgroups are made.
    pub(crate) fn base(&self) -> &Path {
        &self.base
    }

    /// Makes the cgroup of instance `id` with a memory cap of `limit` bytes (swap included,
    /// so a capped instance cannot page its way past the cap).
    pub(crate) fn create(&self, id: &str, limit: u64) -> io::Result<Cgroup> {
        self.make_base()?;
        let path = self.base.join(id);
        fs::create_dir_all(&path)?;
        let cgroup = Cgroup {
            version: self.version,
            path,
        };
        let limit = limit.to_string();
        let written = match self.version {
            Version::V2 => fs::write(cgroup.path.join("memory.max"), &limit)
                .and_then(|()| optional(fs::write(cgroup.path.join("memory.swap.max"), "0"))),
            Version::V1 => {
                fs::write(cgroup.path.join("memory.limit_in_bytes"), &limit).and_then(|()| {
                    optional(fs::write(
                        cgroup.path.join("memory.memsw.limit_in_bytes"),
                        &limit,
                    ))
                })
            }
        };
        if let Err(e) = written {
            let _ = cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    /// Instance cgroups present now (after a crash: the previous run's).
    pub(crate) fn children(&self) -> Vec<Cgroup> {
        let Ok(entries) = fs::read_dir(&self.base) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| Cgroup {
                version: self.version,
                path: e.path(),
            })
            .collect()
    }
}

impl Cgroup {
    /// The cgroup at `path` (as recorded for an instance of an earlier run).
    pub(crate) fn at(version: Version, path: PathBuf) -> Cgroup {
        Cgroup { version, path }
    }

    /// Its directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file a process writes `0` to in order to move itself in.
    pub(crate) fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Bytes charged to it now.
    pub(crate) fn memory_usage(&self) -> Option<u64> {
        let file = match self.version {
            Version::V2 => "memory.current",
            Version::V1 => "memory.usage_in_bytes",
        };
        fs::read_to_string(self.path.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// How many processes in it the kernel killed for exceeding the cap.
    pub(crate) fn oom_kills(&self) -> u64 {
        let file = match self.version {
            Version::V2 => "memory.events",
            Version::V1 => "memory.oom_control",
        };
        fs::read_to_string(self.path.join(file))
            .map(|text| counter(&text, "oom_kill"))
            .unwrap_or(0)
    }

    /// The processes in it.
    pub(crate) fn pids(&self) -> Vec<u32> {
        fs::read_to_string(self.procs_file())
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Removes it; fails while processes remain in it.
    pub(crate) fn remove(&self) -> io::Result<()> {
        match fs::remove_dir(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// A missing optional knob (no swap accounting) is fine; any other failure is not.
fn optional(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The value of `key` in a `key value` per line file (`memory.events`, `memory.oom_control`).
fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Where our own cgroup's directory is in each hierarchy that has a memory controller, v2
/// first, from `/proc/self/cgroup` and `/proc/self/mountinfo`.
fn locate(own: &str, mountinfo: &str) -> Vec<(Version, PathBuf)> {
    let mut found = Vec::new();
    for line in own.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let version = if id == "0" && controllers.is_empty() {
            Version::V2
        } else if controllers.split(',').any(|c| c == "memory") {
            Version::V1
        } else {
            continue;
        };
        if let Some(dir) = mount_dir(mountinfo, version, path) {
            found.push((version, dir));
        }
    }
    found.sort_by_key(|(v, _)| *v == Version::V1);
    found
}

/// The directory of cgroup `path` under the mount of the hierarchy `version`.
fn mount_dir(mountinfo: &str, version: Version, path: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        let mount: Vec<&str> = mount.split(' ').collect();
        let filesystem: Vec<&str> = filesystem.split(' ').collect();
        let (root, point) = (mount.get(3)?, mount.get(4)?);
        let matches = match version {
            Version::V2 => filesystem.first() == Some(&"cgroup2"),
            Version::V1 => {
                filesystem.first() == Some(&"cgroup")
                    && filesystem
                        .get(2)
                        .is_some_and(|o| o.split(',').any(|c| c == "memory"))
            }
        };
        if !matches {
            return None;
        }
        // A container sees its own cgroup as the mount's root.
        let relative = Path::new(path).strip_prefix(root).ok()?;
        Some(Path::new(point).join(relative))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_CGROUPS: &str = "9:name=systemd:/\n4:memory:/jobs/abc\n1:cpu:/\n0::/\n";
    const HYBRID_MOUNTS: &str = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn both_hierarchies_are_found_with_v2_first() {
        assert_eq!(
            locate(HYBRID_CGROUPS, HYBRID_MOUNTS),
            [
                (Version::V2, PathBuf::from("/sys/fs/cgroup/unified")),
                (Version::V1, PathBuf::from("/sys/fs/cgroup/memory/jobs/abc")),
            ]
        );
    }

    #[test]
    fn a_container_mount_root_is_stripped() {
        let mounts = "50 40 0:30 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            locate("0::/kubepods/pod1/app\n", mounts),
            [(Version::V2, PathBuf::from("/sys/fs/cgroup/app"))]
        );
        assert!(locate("0::/elsewhere\n", mounts).is_empty());
    }

    #[test]
    fn oom_counters_are_read_from_either_file() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n";
        assert_eq!(counter(v1, "oom_kill"), 2);
        assert_eq!(counter(v2, "oom_kill"), 1);
        assert_eq!(counter("", "oom_kill"), 0);
    }
}
