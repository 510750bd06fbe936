//! Failed logins, counted per user name and client address: after [`MAX_FAILURES`] within
//! [`WINDOW`], that pair is refused until the window ends. Per pair rather than per user so that
//! someone elsewhere cannot lock a user out; in memory, because a restart forgetting counts
//! costs an attacker a restart of Skyport, which they cannot cause.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures allowed per user and address within [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// How long failures are counted.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failed logins by (user, address).
#[derive(Default)]
pub(crate) struct LoginThrottle {
    failures: Mutex<HashMap<(String, IpAddr), (Instant, u32)>>,
}

impl LoginThrottle {
    /// `Err(wait)` when `user` from `ip` is locked out now.
    pub(crate) fn check(&self, user: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock();
        match failures.get(&(user.to_owned(), ip)) {
            Some((since, count)) if *count >= MAX_FAILURES => {
                let ends = *since + WINDOW;
                if now < ends { Err(ends - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure.
    pub(crate) fn failed(&self, user: &str, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock();
        if failures.len() > 10_000 {
            failures.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
        }
        let entry = failures.entry((user.to_owned(), ip)).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Forgets failures after a success.
    pub(crate) fn succeeded(&self, user: &str, ip: IpAddr) {
        self.failures.lock().remove(&(user.to_owned(), ip));
    }
}
