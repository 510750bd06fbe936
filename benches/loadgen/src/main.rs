//! A load generator for MCP over streamable HTTP, for `benches/gateway-overhead`.
//!
//! ```text
//! loadgen paired --direct URL --gateway URL [--label L] [--concurrency C] [--requests N]
//!                [--warmup W] [--burst B] [--seconds S] [--json FILE]
//! loadgen sessions --url URL [--count N] [--concurrency C] [--seconds S]
//! ```
//!
//! `paired` compares calling an echo tool directly with calling it through the gateway, in one
//! run, so that drift of a noisy machine hits both sides alike. Every worker has its own session
//! and connection on each side. At concurrency 1 requests alternate one by one (direct then
//! gateway, then gateway then direct); above it, every worker sends a burst of B calls to one
//! side, then to the other, the side that goes first alternating between rounds, and each side's
//! throughput is its requests over the wall time of its own bursts. N requests are timed per
//! side, after W untimed ones per worker and side; S seconds bound the whole run (a run cut
//! short says so). It prints a table and writes the figures as JSON to FILE (or stdout).
//! Either side may name several URLs, comma-separated (replicas of one gateway): worker W's
//! session on that side goes to URL W modulo their number.
//!
//! `sessions` opens N sessions (initialize + initialized, never ended) with C workers, each
//! reusing one connection, for measuring what open sessions cost the server.
//!
//! It runs on one thread: the client must cost little next to what it measures, and one
//! thread leaves the other core of a small machine to the servers.

mod client;
mod stats;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::client::{Endpoint, Error, Session};
use crate::stats::{Comparison, Side};

/// The text every call echoes: short, like a typical tool argument.
const TEXT: &str = "skyport-bench-echo";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("loadgen: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let options = Options::parse(args)?;
    match command.as_str() {
        "paired" => paired(&options).await,
        "sessions" => sessions(&options).await,
        _ => Err("usage: loadgen paired --direct URL --gateway URL [...] | loadgen sessions --url URL [...] (see the top of src/main.rs)".into()),
    }
}

/// `--name value` pairs.
struct Options(HashMap<String, String>);

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, Error> {
        let mut map = HashMap::new();
        while let Some(flag) = args.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected a --flag, found '{flag}'"))?;
            let value = args
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value);
        }
        Ok(Options(map))
    }

    fn text(&self, name: &str) -> Result<&str, Error> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required").into())
    }

    fn number(&self, name: &str, default: usize) -> Result<usize, Error> {
        match self.0.get(name) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} takes a whole number, not '{v}'").into()),
            None => Ok(default),
        }
    }
}

/// Which side a session calls.
const DIRECT: usize = 0;
const GATEWAY: usize = 1;

/// The endpoints of one side: one URL, or several separated by commas.
fn endpoints(urls: &str) -> Result<Vec<Endpoint>, Error> {
    urls.split(',').map(Endpoint::parse).collect()
}

async fn paired(options: &Options) -> Result<(), Error> {
    let endpoints = [
        endpoints(options.text("direct")?)?,
        endpoints(options.text("gateway")?)?,
    ];
    let label = options.0.get("label").cloned().unwrap_or_default();
    let concurrency = options.number("concurrency", 1)?.max(1);
    let requests = options.number("requests", 2000)?;
    let warmup = options.number("warmup", 50)?;
    let burst = options.number("burst", 25)?.max(1);
    let deadline = Instant::now() + Duration::from_secs(options.number("seconds", 120)? as u64);

    let mut sessions: [Vec<Session>; 2] = [Vec::new(), Vec::new()];
    for (side, urls) in endpoints.iter().enumerate() {
        for worker in 0..concurrency {
            let endpoint = &urls[worker % urls.len()];
            sessions[side].push(Session::open(endpoint, TEXT).await?);
        }
    }
    let mut sides = [Side::default(), Side::default()];
    let mut truncated = false;
    if concurrency == 1 {
        for i in 0..warmup + requests {
            if Instant::now() > deadline {
                truncated = true;
                break;
            }
            let order = if i % 2 == 0 {
                [DIRECT, GATEWAY]
            } else {
                [GATEWAY, DIRECT]
            };
            for side in order {
                let took = sessions[side][0].call().await?;
                if i >= warmup {
                    sides[side].latencies.push(took);
                    sides[side].busy += took;
                }
            }
        }
    } else {
        for side in [DIRECT, GATEWAY] {
            burst_of(&mut sessions[side], warmup.div_ceil(concurrency).max(1)).await?;
        }
        let rounds = requests.div_ceil(concurrency * burst);
        for round in 0..rounds {
            if Instant::now() > deadline {
                truncated = true;
                break;
            }
            let order = if round % 2 == 0 {
                [DIRECT, GATEWAY]
            } else {
                [GATEWAY, DIRECT]
            };
            for side in order {
                let started = Instant::now();
                let latencies = burst_of(&mut sessions[side], burst).await?;
                sides[side].busy += started.elapsed();
                sides[side].latencies.extend(latencies);
            }
        }
    }
    let [mut direct, mut gateway] = sides;
    let comparison = Comparison {
        label,
        concurrency,
        requests: direct.latencies.len(),
        truncated,
        direct: direct.figures(),
        gateway: gateway.figures(),
    };
    print!("{}", comparison.table());
    let json = comparison.to_json().to_string();
    match options.0.get("json") {
        Some(path) => std::fs::write(path, json + "\n")
            .map_err(|e| format!("cannot write the figures to {path}: {e}"))?,
        None => println!("{json}"),
    }
    Ok(())
}

/// Every session calls `calls` times, all sessions at once; returns every latency.
async fn burst_of(sessions: &mut Vec<Session>, calls: usize) -> Result<Vec<Duration>, Error> {
    let mut tasks = JoinSet::new();
    for mut session in sessions.drain(..) {
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(calls);
            for _ in 0..calls {
                latencies.push(session.call().await?);
            }
            Ok::<_, Error>((session, latencies))
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (session, latencies) = joined??;
        sessions.push(session);
        all.extend(latencies);
    }
    Ok(all)
}

async fn sessions(options: &Options) -> Result<(), Error> {
    let endpoint = Endpoint::parse(options.text("url")?)?;
    let count = options.number("count", 10_000)?;
    let concurrency = options.number("concurrency", 8)?.clamp(1, count.max(1));
    let deadline = Instant::now() + Duration::from_secs(options.number("seconds", 300)? as u64);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for worker in 0..concurrency {
        // Worker w opens sessions w, w + C, w + 2C… so the counts add up to exactly `count`.
        let share = (count - worker).div_ceil(concurrency);
        let endpoint = endpoint.clone();
        tasks.spawn(async move {
            let mut session = Session::open(&endpoint, TEXT).await?;
            let mut opened = 1;
            while opened < share && Instant::now() < deadline {
                session.initialize().await?;
                opened += 1;
            }
            Ok::<usize, Error>(opened)
        });
    }
    let mut opened = 0;
    while let Some(joined) = tasks.join_next().await {
        opened += joined??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"opened": opened, "seconds": (seconds * 1000.0).round() / 1000.0})
    );
    if opened < count {
        return Err(format!("opened {opened} of {count} sessions before the time limit").into());
    }
    Ok(())
}
