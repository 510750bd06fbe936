//! An instance's stdout and stderr, line by line, into the server's log with secret values
//! redacted; the last stderr lines are also kept in memory so a failed start or a crash can say
//! why without a database round trip.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use skyport_store::{
    DeploymentId, InstanceId, LogSource, LogStream, LogWriter, NewLogLine, ServerId, Timestamp,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use skyport_store::Redactor;

/// Longest line read in one piece; a longer one is split (the store cuts it further).
const MAX_LINE: usize = 16 * 1024;
/// Stderr lines kept for error messages.
const TAIL_LINES: usize = 30;

/// Who is printing: the fields every log line of an instance carries (an instance of any
/// runtime: a Kubernetes pod's lines are written the same way).
#[derive(Clone, Debug)]
pub struct InstanceLog {
    writer: LogWriter,
    server: ServerId,
    deployment: DeploymentId,
    instance: InstanceId,
}

impl InstanceLog {
    /// The log of `instance` of `deployment` of `server`, written through `writer`.
    pub fn new(
        writer: LogWriter,
        server: ServerId,
        deployment: DeploymentId,
        instance: InstanceId,
    ) -> InstanceLog {
        InstanceLog {
            writer,
            server,
            deployment,
            instance,
        }
    }

    /// The instance whose log this is.
    pub fn instance(&self) -> &InstanceId {
        &self.instance
    }

    /// The deployment whose log this is.
    pub fn deployment(&self) -> &DeploymentId {
        &self.deployment
    }

    /// Writes one line in the instance's log, now.
    pub fn write(&self, stream: LogStream, line: String) {
        self.write_at(stream, Timestamp::now(), line);
    }

    /// Writes one line in the instance's log, printed at `at`.
    pub fn write_at(&self, stream: LogStream, at: Timestamp, line: String) {
        self.writer.write(NewLogLine {
            server_id: self.server.clone(),
            deployment_id: Some(self.deployment.clone()),
            instance_id: Some(self.instance.clone()),
            source: LogSource::Instance,
            stream,
            phase: None,
            at,
            line,
        });
    }
}

/// The last lines an instance wrote to stderr.
#[derive(Default)]
pub(crate) struct Tail(Mutex<VecDeque<String>>);

impl Tail {
    fn push(&self, line: &str) {
        let mut lines = self.0.lock();
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }

    /// The kept lines, joined.
    pub(crate) fn text(&self) -> String {
        self.0.lock().iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Copies `reader` into the log, secrets redacted, until it closes.
pub(crate) async fn pump(
    reader: impl AsyncRead + Unpin,
    stream: LogStream,
    log: InstanceLog,
    redactor: Arc<Redactor>,
    tail: Option<Arc<Tail>>,
) {
    let mut reader = BufReader::new(reader);
    let mut buffer = Vec::with_capacity(256);
    loop {
        buffer.clear();
        let read = {
            let mut limited = (&mut reader).take(MAX_LINE as u64);
            limited.read_until(b'\n', &mut buffer).await
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while buffer.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buffer.pop();
                }
                let line = redactor
                    .apply(&String::from_utf8_lossy(&buffer))
                    .into_owned();
                if let Some(tail) = &tail {
                    tail.push(&line);
                }
                log.write(stream, line);
            }
        }
    }
}
