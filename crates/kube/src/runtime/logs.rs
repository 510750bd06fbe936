//! Pod logs into the store: the replica holding the `kube-logs` claim follows
//! `pods/NAME/log?follow=true&timestamps=true` of every pod of the deployments it knows and
//! writes each line as an instance line of that deployment, the pod as its instance, at the
//! pod's timestamp, secret values redacted as the local runtime redacts an instance's output.
//! It also writes a line when a followed pod's container restarts (an out-of-memory kill, an
//! exit). A follower starts where the store's lines of the pod end, so a restart of Skyport
//! or a move of the claim to another replica repeats no line. It must not block the request
//! path (it runs in tasks of its own, and the store's writer drops lines rather than wait)
//! nor hold more than a line per pod in memory.
//!
//! Why a claim: every replica knows the live deployments (`keep_warm`), so without one each
//! would store every line once more. The claim is the store's (a PostgreSQL advisory lock on
//! a held connection; always held on SQLite), so a stopped replica's share moves to another
//! at its next check.

use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use skyport_runtime::{InstanceLog, Target};
use skyport_store::{Claim, DeploymentId, LogStream, OutputEnd, Redactor, Store, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::pods::{self, PodFailure};
use super::{Inner, managed, next_sweep};
use crate::objects::{CONTAINER, DEPLOYMENT_LABEL};

/// Longest line kept; the rest of a longer one is skipped (the store cuts at 8 KiB anyway).
const MAX_LINE: usize = 16 * 1024;
/// First pause before following a pod's log again after its stream ended or failed.
const RETRY_MIN: Duration = Duration::from_millis(250);
/// Longest pause between attempts (a container waiting to start, or crash-looping).
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Follows pod logs every `sweep_interval` while this replica holds `claim`, until Skyport
/// stops (or the runtime is dropped); followers end with it.
pub(super) async fn follow(
    inner: Weak<Inner>,
    mut claim: Claim,
    mut stopped: watch::Receiver<bool>,
) {
    let mut followers: HashMap<String, Follower> = HashMap::new();
    while let Some(inner) = next_sweep(&inner, &mut stopped).await {
        if !claim.held().await {
            followers.clear();
            continue;
        }
        match inner.followed_pods(&followers).await {
            Ok(pods) => inner.reconcile_followers(&mut followers, pods),
            Err(e) => tracing::warn!(
                "cannot list pods to follow their logs: {e}; the runtime's Role needs get and list on pods and get on pods/log (docs/kubernetes.md)"
            ),
        }
    }
}

/// Who a pod's lines belong to.
#[derive(Clone)]
pub(super) struct PodLog {
    pub(super) log: InstanceLog,
    pub(super) redactor: Arc<Redactor>,
    /// The deployment's memory limit, for reporting an out-of-memory kill.
    pub(super) memory_bytes: u64,
}

impl PodLog {
    /// Writes one line of the pod, secret values redacted.
    pub(super) fn write(&self, stream: LogStream, at: Timestamp, line: &str) {
        self.log
            .write_at(stream, at, self.redactor.apply(line).into_owned());
    }
}

/// A pod being followed; dropped, the following stops.
struct Follower {
    task: JoinHandle<()>,
    log: PodLog,
    /// The container's restarts when last looked at.
    restarts: i32,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inner {
    /// The managed pods of deployments this replica knows and does not retire, with the
    /// deployment's target when the pod is new to `followers`.
    async fn followed_pods(
        &self,
        followers: &HashMap<String, Follower>,
    ) -> Result<Vec<(Pod, Option<Target>)>, kube::Error> {
        let pods: Api<Pod> = self.api();
        let list = pods.list(&ListParams::default().labels(&managed())).await?;
        let state = self.state.lock();
        Ok(list
            .items
            .into_iter()
            .filter_map(|pod| {
                let deployment: DeploymentId = pod.labels().get(DEPLOYMENT_LABEL)?.parse().ok()?;
                let entry = state.deployments.get(&deployment).filter(|e| !e.retiring)?;
                let target =
                    (!followers.contains_key(&pod.name_any())).then(|| entry.target.clone());
                Some((pod, target))
            })
            .collect())
    }

    /// Starts following new pods, stops following those gone, and reports restarts.
    fn reconcile_followers(
        &self,
        followers: &mut HashMap<String, Follower>,
        pods: Vec<(Pod, Option<Target>)>,
    ) {
        let listed: HashSet<String> = pods.iter().map(|(pod, _)| pod.name_any()).collect();
        followers.retain(|name, _| listed.contains(name));
        for (pod, target) in pods {
            let name = pod.name_any();
            let restarts = restart_count(&pod);
            match (followers.get_mut(&name), target) {
                (Some(follower), _) => {
                    if restarts > follower.restarts {
                        report_restart(&pod, &follower.log);
                    }
                    follower.restarts = restarts;
                }
                (None, Some(target)) => {
                    let log = self.pod_log(&target, &name);
                    let task = tokio::spawn(follow_pod(
                        self.api(),
                        self.store.clone(),
                        name.clone(),
                        log.clone(),
                    ));
                    followers.insert(
                        name,
                        Follower {
                            task,
                            log,
                            restarts,
                        },
                    );
                }
                (None, None) => {}
            }
        }
    }
}

/// Writes why a followed pod's container restarted.
fn report_restart(pod: &Pod, log: &PodLog) {
    let message = match pods::failure(pod, Timestamp::UNIX_EPOCH) {
        Some(PodFailure::OutOfMemory { pod, exit }) => format!(
            "pod {pod} was killed: out of memory (limit {} MiB, exit code {}); raise it with `skyport servers set NAME --memory …`",
            log.memory_bytes / (1024 * 1024),
            exit.code,
        ),
        Some(PodFailure::Exited { pod, exit }) => {
            format!(
                "pod {pod} exited (exit code {}); Kubernetes restarts it",
                exit.code
            )
        }
        _ => format!("pod {} restarted", pod.name_any()),
    };
    log.write(LogStream::Skyport, Timestamp::now(), &message);
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .iter()
        .flat_map(|status| status.container_statuses.iter().flatten())
        .find(|c| c.name == CONTAINER)
        .map_or(0, |c| c.restart_count)
}

/// Follows one pod's log until the pod is gone (or the task is aborted), from where the
/// store's lines of it end, resuming after a dropped stream from the last line written.
async fn follow_pod(pods: Api<Pod>, store: Store, name: String, log: PodLog) {
    let mut resume = match store
        .logs()
        .output_end(log.log.deployment(), log.log.instance())
        .await
    {
        Ok(Some(end)) => Resume::after(end),
        Ok(None) => Resume::default(),
        Err(e) => {
            tracing::warn!(pod = %name, "cannot read where the pod's stored log ends, reading it whole: {e}");
            Resume::default()
        }
    };
    let mut pause = RETRY_MIN;
    loop {
        let params = LogParams {
            container: Some(CONTAINER.to_owned()),
            follow: true,
            timestamps: true,
            since_time: resume.since(),
            ..LogParams::default()
        };
        match pods.log_stream(&name, &params).await {
            Ok(stream) => {
                if copy(stream, &mut resume, &log).await > 0 {
                    pause = RETRY_MIN;
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return,
            // Most often a container still being created, or waiting to be restarted.
            Err(e) => tracing::debug!(pod = %name, "cannot follow the pod's log yet: {e}"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// Copies one log stream into the store until it ends; returns how many lines it wrote.
async fn copy(stream: impl AsyncBufRead, resume: &mut Resume, log: &PodLog) -> usize {
    let mut stream = pin!(stream);
    let mut buffer = Vec::with_capacity(256);
    let mut written = 0;
    resume.reconnected();
    while let Ok(true) = read_line(&mut stream, &mut buffer).await {
        let text = String::from_utf8_lossy(&buffer);
        let (at, line) = split_timestamp(&text);
        if at.is_some_and(|at| !resume.admit(at)) {
            continue;
        }
        log.write(LogStream::Stdout, at.unwrap_or_else(Timestamp::now), line);
        written += 1;
    }
    written
}

/// Reads one line into `buffer` without its ending; of a line longer than [`MAX_LINE`] only
/// the start is kept, the rest skipped, so memory stays bounded whatever the pod prints.
/// `false` at the end of the stream.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> io::Result<bool> {
    buffer.clear();
    let read = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', buffer)
        .await?;
    if read == 0 {
        return Ok(false);
    }
    if buffer.last() != Some(&b'\n') && read == MAX_LINE {
        skip_line(reader).await?;
    }
    while buffer.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buffer.pop();
    }
    Ok(true)
}

/// Skips the rest of the current line.
async fn skip_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<()> {
    loop {
        let (used, done) = {
            let chunk = reader.fill_buf().await?;
            match chunk.iter().position(|b| *b == b'\n') {
                Some(end) => (end + 1, true),
                None => (chunk.len(), chunk.is_empty()),
            }
        };
        reader.consume_unpin(used);
        if done {
            return Ok(());
        }
    }
}

/// The timestamp the API puts before each line (`timestamps=true`, RFC 3339 with
/// nanoseconds) and the line; no timestamp when the line has none.
pub(crate) fn split_timestamp(text: &str) -> (Option<Timestamp>, &str) {
    match text.split_once(' ') {
        Some((stamp, line)) => match stamp.parse::<Timestamp>() {
            Ok(at) => (Some(at), line),
            Err(_) => (None, text),
        },
        None => match text.parse::<Timestamp>() {
            Ok(at) => (Some(at), ""),
            Err(_) => (None, text),
        },
    }
}

/// Where a pod's log was read up to, so that a new stream neither repeats nor loses lines.
/// `sinceTime` takes whole seconds, so a new stream starts at the second of the last line
/// written, and the lines of that second already written are skipped by their timestamps,
/// and, for lines sharing the last one's millisecond, by how many of them were written.
/// Milliseconds, not the API's nanoseconds, because that is what the store keeps, and a
/// follower may start from the store ([`Resume::after`]).
#[derive(Debug, Default)]
pub(crate) struct Resume {
    /// The millisecond of the last line written.
    last: Option<Timestamp>,
    /// Lines written in that millisecond.
    at_last: u64,
    /// Lines of that millisecond the current stream still repeats.
    skip: u64,
}

impl Resume {
    /// A follower of a pod whose lines in the store end at `end`.
    pub(crate) fn after(end: OutputEnd) -> Resume {
        Resume {
            last: Some(millisecond(end.at)),
            at_last: end.lines,
            skip: 0,
        }
    }

    /// Where the next stream starts: the last line's second, cut (not rounded: kube rounds
    /// `sinceTime` to the nearest second, which could start after the last line).
    pub(crate) fn since(&self) -> Option<Timestamp> {
        self.last
            .map(|at| Timestamp::from_second(at.as_second()).unwrap_or(at))
    }

    /// A new stream begins: it repeats the lines since [`Resume::since`].
    pub(crate) fn reconnected(&mut self) {
        self.skip = self.at_last;
    }

    /// Whether a line at `at` is new (and, if so, counts it as written).
    pub(crate) fn admit(&mut self, at: Timestamp) -> bool {
        let at = millisecond(at);
        match self.last {
            Some(last) if at < last => false,
            Some(last) if at == last && self.skip > 0 => {
                self.skip -= 1;
                false
            }
            Some(last) if at == last => {
                self.at_last += 1;
                true
            }
            _ => {
                self.last = Some(at);
                self.at_last = 1;
                self.skip = 0;
                true
            }
        }
    }
}

/// `at` cut to its millisecond.
fn millisecond(at: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(at.as_millisecond()).unwrap_or(at)
}

#[cfg(test)]
mod tests;
