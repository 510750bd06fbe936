//! Build output and instance logs: one writer task appends in batches (so a chatty server
//! costs one transaction per batch, not per line), readers page by cursor.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::{
    BuildPhase, DeploymentId, InstanceId, ServerId, Store, StoreError, Timestamp, from_millis,
    to_millis,
};

/// Lines kept per server; older ones are pruned as new ones arrive.
const RETAINED_PER_SERVER: i64 = 50_000;
/// Lines older than this are pruned, however few a server has.
const RETAINED_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often lines past [`RETAINED_AGE`] are looked for.
const AGE_PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Longer lines are cut, so one runaway print cannot bloat the database.
const MAX_LINE_BYTES: usize = 8 * 1024;
/// Lines waiting to be written; past this, new lines are dropped (and counted) rather than
/// slowing down the process that prints them.
const QUEUE: usize = 16 * 1024;

/// What produced a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// A build (uv output, inspection, Skyport's phase messages).
    Build,
    /// A running instance of the server.
    Instance,
}

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// Written by Skyport about the process (started, exited, phase changes).
    Skyport,
}

/// A line to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLogLine {
    /// The server it belongs to.
    pub server_id: ServerId,
    /// The deployment, when known.
    pub deployment_id: Option<DeploymentId>,
    /// The instance, for instance logs.
    pub instance_id: Option<InstanceId>,
    /// Build or instance.
    pub source: LogSource,
    /// Which stream.
    pub stream: LogStream,
    /// The build phase that wrote it (build lines only).
    pub phase: Option<BuildPhase>,
    /// When it was produced.
    pub at: Timestamp,
    /// The text, without its line ending.
    pub line: String,
}

/// A stored line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Position in the log; increases with every line. Use it as a cursor.
    pub id: i64,
    /// The line as written.
    pub line: NewLogLine,
}

/// Which lines to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only this server's lines.
    pub server_id: Option<ServerId>,
    /// Only this deployment's lines.
    pub deployment_id: Option<DeploymentId>,
    /// Only build or only instance lines.
    pub source: Option<LogSource>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
}

/// Where an instance's own output ends in the log: the time of its last stdout or stderr line
/// and how many of its lines have that time (times are stored in milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputEnd {
    /// The last line's time.
    pub at: Timestamp,
    /// Lines of the instance's output at that time.
    pub lines: u64,
}

/// Appends log lines without waiting for the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct LogWriter {
    tx: mpsc::Sender<Command>,
}

#[derive(Debug)]
enum Command {
    Line(NewLogLine),
    Flush(oneshot::Sender<()>),
}

impl LogWriter {
    /// Queues a line. Never blocks: when the queue is full the line is dropped, because
    /// back-pressure here would stall the server process that is printing.
    pub fn write(&self, mut line: NewLogLine) {
        if line.line.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !line.line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.line.truncate(cut);
            line.line.push_str(" …[truncated]");
        }
        if self.tx.try_send(Command::Line(line)).is_err() {
            tracing::warn!("log queue full; dropping a log line");
        }
    }

    /// Waits until every line queued before this call is stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// State shared by all handles of one store: the single writer and the "new lines" signal.
#[derive(Clone, Default)]
pub(crate) struct Shared {
    writer: Arc<OnceLock<LogWriter>>,
    appended: Arc<Notify>,
}

/// Access to logs; obtained from [`Store::logs`].
pub struct Logs<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> Logs<'a> {
    /// The store's log writer (one per store, started on first use; needs a Tokio runtime).
    pub fn writer(&self) -> LogWriter {
        self.store
            .logs
            .writer
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(write_batches(self.store.clone(), rx));
                LogWriter { tx }
            })
            .clone()
    }

    /// The last `limit` lines matching `query`, oldest first.
    pub async fn tail(&self, query: &LogQuery, limit: u32) -> Result<Vec<LogLine>, StoreError> {
        let mut lines = self.select(query, None, Order::NewestFirst, limit).await?;
        lines.reverse();
        Ok(lines)
    }

    /// Up to `limit` lines matching `query` after cursor `after`, oldest first.
    pub async fn after(
        &self,
        query: &LogQuery,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>, StoreError> {
        self.select(query, Some(after), Order::OldestFirst, limit)
            .await
    }

    /// Where the stored output (stdout and stderr, not Skyport's lines) of `instance` of
    /// `deployment` ends, so that a process taking over following it neither repeats nor
    /// skips lines; `None` when none is stored.
    pub async fn output_end(
        &self,
        deployment: &DeploymentId,
        instance: &InstanceId,
    ) -> Result<Option<OutputEnd>, StoreError> {
        let row = crate::sql::query(
            "SELECT at, COUNT(*) AS lines FROM log_lines
             WHERE deployment_id = ?1 AND instance_id = ?2 AND source = 'instance' AND stream <> 'skyport'
               AND at = (SELECT MAX(at) FROM log_lines
                         WHERE deployment_id = ?1 AND instance_id = ?2 AND source = 'instance' AND stream <> 'skyport')
             GROUP BY at",
        )
        .bind(deployment)
        .bind(instance)
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(OutputEnd {
            at: from_millis(row.try_get("at")?)?,
            lines: u64::try_from(row.try_get::<i64, _>("lines")?).unwrap_or(0),
        }))
    }

    /// Completes when lines are next appended through this store. Create it before reading,
    /// so that lines stored in between are not missed; use it with a timeout, because lines
    /// written by another process sharing the database do not signal.
    pub fn appended(&self) -> Notified<'a> {
        self.store.logs.appended.notified()
    }

    async fn select(
        &self,
        query: &LogQuery,
        after: Option<i64>,
        order: Order,
        limit: u32,
    ) -> Result<Vec<LogLine>, StoreError> {
        macro_rules! select_lines {
            ($order:literal) => {
                concat!(
                    "SELECT id, server_id, deployment_id, instance_id, source, stream, phase, at, line ",
                    "FROM log_lines WHERE (?1 IS NULL OR server_id = ?1) ",
                    "AND (?2 IS NULL OR deployment_id = ?2) AND (?3 IS NULL OR source = ?3) ",
                    "AND (?4 IS NULL OR id > ?4) AND (?6 IS NULL OR at >= ?6) ORDER BY id ",
                    $order,
                    " LIMIT ?5"
                )
            };
        }
        let sql = match order {
            Order::NewestFirst => select_lines!("DESC"),
            Order::OldestFirst => select_lines!("ASC"),
        };
        crate::sql::query(sql)
            .bind(&query.server_id)
            .bind(&query.deployment_id)
            .bind(query.source.map(source_text))
            .bind(after)
            .bind(i64::from(limit))
            .bind(query.since.map(to_millis))
            .fetch_all(&self.store.pool)
            .await?
            .iter()
            .map(log_line)
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Order {
    NewestFirst,
    OldestFirst,
}

async fn write_batches(store: Store, mut rx: mpsc::Receiver<Command>) {
    let mut since_prune: HashMap<ServerId, i64> = HashMap::new();
    let mut aged_at: Option<Instant> = None;
    let mut commands = Vec::with_capacity(512);
    while rx.recv_many(&mut commands, 512).await > 0 {
        let mut lines = Vec::new();
        let mut flushes = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Line(line) => lines.push(line),
                Command::Flush(done) => flushes.push(done),
            }
        }
        if !lines.is_empty() {
            if let Err(e) = insert(&store, &lines).await {
                tracing::error!(error = %e, lines = lines.len(), "cannot store log lines");
            }
            for line in &lines {
                *since_prune.entry(line.server_id.clone()).or_default() += 1;
            }
            prune(&store, &mut since_prune).await;
            if aged_at.is_none_or(|at| at.elapsed() >= AGE_PRUNE_EVERY) {
                aged_at = Some(Instant::now());
                prune_aged(&store, Timestamp::now() - RETAINED_AGE).await;
            }
            store.logs.appended.notify_waiters();
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

async fn insert(store: &Store, lines: &[NewLogLine]) -> Result<(), StoreError> {
    let mut tx = store.write().await?;
    for line in lines {
        crate::sql::query(
            "INSERT INTO log_lines (server_id, deployment_id, instance_id, source, stream, phase, at, line)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&line.server_id)
        .bind(&line.deployment_id)
        .bind(&line.instance_id)
        .bind(source_text(line.source))
        .bind(stream_text(line.stream))
        .bind(line.phase.map(BuildPhase::as_str))
        .bind(to_millis(line.at))
        .bind(&line.line)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Prunes a server's old lines once it has written a tenth of its allowance since last time,
/// so pruning costs one indexed delete per few thousand lines.
async fn prune(store: &Store, since_prune: &mut HashMap<ServerId, i64>) {
    for (server, count) in since_prune.iter_mut() {
        if *count < RETAINED_PER_SERVER / 10 {
            continue;
        }
        *count = 0;
        let pruned = crate::sql::query(
            "DELETE FROM log_lines WHERE server_id = ?1 AND id <= (
                SELECT id FROM log_lines WHERE server_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )
        .bind(server)
        .bind(RETAINED_PER_SERVER)
        .execute(&store.pool)
        .await;
        if let Err(e) = pruned {
            tracing::warn!(error = %e, %server, "cannot prune old log lines");
        }
    }
}

/// Deletes every line written before `before`.
async fn prune_aged(store: &Store, before: Timestamp) {
    let pruned = crate::sql::query("DELETE FROM log_lines WHERE at < ?")
        .bind(to_millis(before))
        .execute(&store.pool)
        .await;
    if let Err(e) = pruned {
        tracing::warn!(error = %e, "cannot prune log lines past their retention age");
    }
}

fn source_text(source: LogSource) -> &'static str {
    match source {
        LogSource::Build => "build",
        LogSource::Instance => "instance",
    }
}

fn stream_text(stream: LogStream) -> &'static str {
    match stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
        LogStream::Skyport => "skyport",
    }
}

fn log_line(row: &AnyRow) -> Result<LogLine, StoreError> {
    let source = match row.try_get::<String, _>("source")?.as_str() {
        "build" => LogSource::Build,
        "instance" => LogSource::Instance,
        other => return Err(StoreError::Corrupt(format!("log source '{other}'"))),
    };
    let stream = match row.try_get::<String, _>("stream")?.as_str() {
        "stdout" => LogStream::Stdout,
        "stderr" => LogStream::Stderr,
        "skyport" => LogStream::Skyport,
        other => return Err(StoreError::Corrupt(format!("log stream '{other}'"))),
    };
    Ok(LogLine {
        id: row.try_get("id")?,
        line: NewLogLine {
            server_id: row.try_get("server_id")?,
            deployment_id: row.try_get("deployment_id")?,
            instance_id: row.try_get("instance_id")?,
            source,
            stream,
            phase: row
                .try_get::<Option<String>, _>("phase")?
                .map(|p| crate::deployments::parse_enum("phase", &p))
                .transpose()?,
            at: from_millis(row.try_get("at")?)?,
            line: row.try_get("line")?,
        },
    })
}
