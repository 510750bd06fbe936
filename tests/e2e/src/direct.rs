//! A Python MCP server run directly (`python main.py --port P`), without Skyport: the baseline a
//! test compares the gateway with. It runs on the client Python (which has `fastmcp`), from the
//! folder it is given, and is killed when dropped.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::{command, free_port, http, python, tail};

/// How long a directly run server may take to accept HTTP (importing FastMCP takes a second or two).
pub const DIRECT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server process started with `python main.py --port P` in a folder.
pub struct DirectServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl DirectServer {
    /// Starts `python main.py --port P --host 127.0.0.1` in `folder`, its output in `log`, and waits
    /// until it answers HTTP on `/mcp` (any status).
    pub fn start(folder: &Path, log: &Path) -> DirectServer {
        let port = free_port();
        let out = File::create(log).expect("create the direct server's log");
        let err = out.try_clone().expect("clone the log handle");
        let child = command(python())
            .arg("main.py")
            .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
            .current_dir(folder)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start main.py in {}: {e}", folder.display()));
        let mut server = DirectServer {
            child,
            port,
            log: log.to_path_buf(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let end = Instant::now() + DIRECT_START_TIMEOUT;
        let addr = format!("127.0.0.1:{}", self.port);
        loop {
            if http(&addr, "GET", "/mcp", &[], None).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the direct server exited ({status}) before answering\n{}",
                    self.log_tail(40)
                );
            }
            assert!(
                Instant::now() < end,
                "the direct server did not answer within {DIRECT_START_TIMEOUT:?}\n{}",
                self.log_tail(40)
            );
            sleep(Duration::from_millis(200));
        }
    }

    /// Its MCP endpoint, `http://127.0.0.1:P/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// The last lines of its output, headed, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        format!(
            "--- direct server log ({}) ---\n{}",
            self.log.display(),
            tail(&text, n)
        )
    }
}

impl Drop for DirectServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
