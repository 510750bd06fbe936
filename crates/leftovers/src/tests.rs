//! Unit tests: stamps, and sweeps of real process groups (a shell leading its group with a
//! `sleep` of its own), including the records a sweep must leave alone.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use super::*;

/// `sh` leading its own process group with a `sleep` child of its own, as uv leads its helpers.
#[allow(
    clippy::disallowed_methods,
    reason = "the test needs a real process group to end"
)]
fn group_with_a_helper() -> (Child, u32) {
    let mut leader = Command::new("sh")
        .args(["-c", "sleep 600 & echo $!; wait"])
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(leader.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (leader, line.trim().parse().unwrap())
}

#[test]
fn stamps_round_trip_and_bad_ones_are_refused() {
    let me = Stamp::of(std::process::id()).unwrap();
    assert!(me.running());
    assert_eq!(Stamp::parse(&me.to_string()), Some(me));
    assert_eq!(Stamp::parse("12 34\n"), Some(Stamp { pid: 12, start: 34 }));
    assert_eq!(Stamp::parse("12"), None);
    assert_eq!(Stamp::parse("12 34 56"), None);
    assert_eq!(Stamp::parse("garbage"), None);
}

#[test]
fn a_sweep_ends_a_recorded_group_with_its_helpers_and_forgets_it() {
    let dir = tempfile::tempdir().unwrap();
    let records = Records::new(&dir.path().join("groups"));
    let (mut leader, helper) = group_with_a_helper();
    let helper = Stamp::of(helper).unwrap();
    records.save(leader.id()).unwrap();

    assert_eq!(records.sweep(), 2);
    leader.wait().unwrap();
    wait_gone(&[helper.pid], SWEEP_WAIT);
    assert!(!helper.running(), "the leader's helper survived the sweep");
    assert_eq!(fs::read_dir(dir.path().join("groups")).unwrap().count(), 0);
    assert_eq!(records.sweep(), 0, "a second sweep found something");
}

#[test]
fn a_forgotten_group_and_a_reused_pid_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let records = Records::new(dir.path());
    let (mut leader, helper) = group_with_a_helper();
    records.save(leader.id()).unwrap();
    records.forget(leader.id());
    // Our own pid with another start time: a different process by the record's account.
    let me = Stamp::of(std::process::id()).unwrap();
    let stale = Stamp {
        start: me.start + 1_000_000,
        ..me
    };
    fs::write(dir.path().join(me.pid.to_string()), stale.to_string()).unwrap();

    assert_eq!(records.sweep(), 0);
    assert!(running(leader.id()) && running(helper));
    end_group(&Stamp::of(leader.id()).unwrap());
    leader.wait().unwrap();
    wait_gone(&[helper], SWEEP_WAIT);
    assert!(!running(helper), "end_group left the helper running");
}

#[test]
fn saving_a_gone_process_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let records = Records::new(dir.path());
    let (mut leader, helper) = group_with_a_helper();
    let pid = leader.id();
    end_group(&Stamp::of(pid).unwrap());
    leader.wait().unwrap();
    wait_gone(&[helper], SWEEP_WAIT);
    records.save(pid).unwrap();
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}
