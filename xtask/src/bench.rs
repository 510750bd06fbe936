//! `cargo xtask bench [NAME…]`: the one command that runs Skyport's benchmarks. Each benchmark is
//! a script under `benches/` that measures against a baseline in the same run and prints its
//! figures beside their goals; this runs the chosen ones in order, keeps each one's output in
//! `target/bench/NAME.log`, and says at the end which finished. It never fails on a figure, only
//! when a benchmark could not run.

// A chore that runs scripts and reports on the terminal: spawning and printing are its job.
#![allow(clippy::disallowed_methods, clippy::print_stdout)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

/// One benchmark of the suite.
pub(crate) struct Bench {
    /// What `cargo xtask bench NAME` calls it.
    pub(crate) name: &'static str,
    /// The script, relative to the repository root.
    pub(crate) script: &'static str,
    /// Its arguments in the suite (the script's own defaults otherwise).
    pub(crate) args: &'static [&'static str],
    /// What it measures, against which baseline, and the goals.
    pub(crate) about: &'static str,
}

/// Every benchmark, in the order the suite runs them (fast and quiet ones first).
pub(crate) const BENCHES: &[Bench] = &[
    Bench {
        name: "policy",
        script: "benches/policy/run",
        args: &[],
        about: "policy decision per call (goal <= 1 us) and a 1,000-tool list filtered (goal <= 50 us), against parsing the same JSON without policies",
    },
    Bench {
        name: "gateway-overhead",
        script: "benches/gateway-overhead",
        args: &[],
        about: "echo tools/call direct vs through the gateway, FastMCP and Rust backends, concurrency 1 and 32 (goals: added p50 <= 0.3 ms, p99 <= 1 ms, throughput >= 90 % of direct for FastMCP, >= 50 % for Rust); 10,000 open sessions (goal <= 100 MB)",
    },
    Bench {
        name: "cold-start",
        script: "benches/cold-start",
        args: &["5", "100", "20"],
        about: "first request to a server scaled to zero vs starting the same server by hand (goal: <= +50 ms); Skyport's memory with 100 servers deployed and scaled to zero; time to wake any one of them",
    },
    Bench {
        name: "git-deploy",
        script: "benches/git-deploy",
        args: &["3"],
        about: "git repository to first answered call, cold and warm uv cache, and a code-only redeploy, vs the same by hand (goals: warm <= 5 s, code-only <= 3 s, <= 1.2x by hand)",
    },
    Bench {
        name: "deploy-switch",
        script: "benches/deploy-switch",
        args: &[],
        about: "10 rollbacks under 100 req/s of tools/call: failed requests (goal 0), p99 around switches vs steady, rollback to live (goal <= 1 s)",
    },
    Bench {
        name: "up-to-first-call",
        script: "benches/up-to-first-call",
        args: &["3", "warm"],
        about: "`skyport up` to the first answered call vs uv venv + pip install + fastmcp run by hand",
    },
    Bench {
        name: "replicas",
        script: "benches/replicas",
        args: &[],
        about: "gateway throughput with one replica vs two on one PostgreSQL database, in front of the same Rust backend, concurrency 1 and 32",
    },
    Bench {
        name: "replica-fetch",
        script: "benches/replica-fetch",
        args: &[],
        about: "a deployment built through replica A: how soon replica B (which fetches the artifact and recreates its environment) answers, against A's own cold start; warm calls on both",
    },
    Bench {
        name: "stdio-bridge",
        script: "benches/stdio-bridge/run",
        args: &[],
        about: "a PyPI stdio server's tools/call over its own stdin/stdout vs through the gateway and the stdio bridge",
    },
];

/// Runs the benchmarks named (all when none is), from the repository `root`.
pub(crate) fn run(root: &Path, names: &[String]) -> anyhow::Result<()> {
    if names.iter().any(|n| n == "--list") {
        for bench in BENCHES {
            println!("{:<18} {}", bench.name, bench.about);
        }
        return Ok(());
    }
    let chosen = choose(names)?;
    prepare(root)?;
    let logs = root.join("target/bench");
    std::fs::create_dir_all(&logs)?;
    let mut outcomes = Vec::new();
    for bench in chosen {
        println!(
            "\n==> {} ({})\n    {}",
            bench.name, bench.script, bench.about
        );
        let started = Instant::now();
        let log = logs.join(format!("{}.log", bench.name));
        let ok = run_one(root, bench, &log)?;
        outcomes.push((
            bench.name,
            ok,
            started.elapsed().as_secs(),
            log.display().to_string(),
        ));
    }
    println!("\n==> summary");
    for (name, ok, secs, log) in &outcomes {
        let verdict = if *ok { "finished" } else { "FAILED to run" };
        println!("{name:<18} {verdict} in {secs} s, output in {log}");
    }
    if outcomes.iter().any(|(_, ok, _, _)| !ok) {
        bail!("a benchmark could not run; its log says why");
    }
    Ok(())
}

/// The benchmarks `names` names, in the suite's order; an unknown name is refused with the list.
fn choose(names: &[String]) -> anyhow::Result<Vec<&'static Bench>> {
    if let Some(unknown) = names
        .iter()
        .find(|n| !BENCHES.iter().any(|b| b.name == n.as_str()))
    {
        let known: Vec<_> = BENCHES.iter().map(|b| b.name).collect();
        bail!(
            "no benchmark `{unknown}`; the suite has: {}",
            known.join(", ")
        );
    }
    Ok(BENCHES
        .iter()
        .filter(|b| names.is_empty() || names.iter().any(|n| n == b.name))
        .collect())
}

/// The optimized binary every script uses, and the bench-only Python package (`aiohttp`, the
/// load generator of `deploy-switch`) in the test venv that `scripts/test` makes.
fn prepare(root: &Path) -> anyhow::Result<()> {
    let python = root.join("target/e2e/venv/bin/python");
    if !python.exists() {
        bail!("no test venv at target/e2e/venv: run ./scripts/test once (it makes it)");
    }
    let has_aiohttp = Command::new(&python)
        .args(["-c", "import aiohttp"])
        .stderr(Stdio::null())
        .status()?
        .success();
    if !has_aiohttp {
        check(
            Command::new(&python).args(["-m", "pip", "install", "-q", "aiohttp"]),
            "pip install aiohttp into the test venv",
        )?;
    }
    println!("==> cargo build --release -p skyport");
    check(
        Command::new(env!("CARGO")).current_dir(root).args([
            "build",
            "--release",
            "-q",
            "-p",
            "skyport",
        ]),
        "cargo build --release -p skyport",
    )
}

fn check(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Runs one script with its output shown as it comes and kept in `log`; whether it finished.
fn run_one(root: &Path, bench: &Bench, log: &Path) -> anyhow::Result<bool> {
    // stdout and stderr share one pipe, so their lines keep the order the script wrote them in
    // (a stuck start-up's message shows at once, not after the script ends).
    let (output, writer) = std::io::pipe()?;
    let mut command = Command::new(root.join(bench.script));
    command
        .args(bench.args)
        .current_dir(root)
        // Every script measures the optimized build `prepare` made, whatever its own default.
        .env("SKYPORT_BIN", root.join("target/release/skyport"))
        .stdout(writer.try_clone()?)
        .stderr(writer);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", bench.script))?;
    // The command holds the pipe's writing ends: dropped, the reading below ends with the script.
    drop(command);
    let mut file = File::create(log)?;
    for line in BufReader::new(output).lines().map_while(Result::ok) {
        println!("{line}");
        writeln!(file, "{line}")?;
    }
    Ok(child.wait()?.success())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn every_listed_benchmark_is_an_executable_script() {
        let root = crate::workspace_root();
        for bench in BENCHES {
            let mode = std::fs::metadata(root.join(bench.script))
                .unwrap_or_else(|e| panic!("{}: {e}", bench.script))
                .permissions()
                .mode();
            assert!(mode & 0o111 != 0, "{} is not executable", bench.script);
        }
    }

    /// A benchmark added under `benches/` without joining the suite would never be run by it.
    #[test]
    fn every_benchmark_script_is_in_the_suite() {
        let root = crate::workspace_root();
        let helpers = ["benches/policy/overhead"];
        for entry in ignore::WalkBuilder::new(root.join("benches"))
            .filter_entry(|e| e.file_name() != "target")
            .build()
            .flatten()
        {
            let path = entry.path();
            let executable = path.is_file()
                && std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            let shown = path.strip_prefix(&root).unwrap().display().to_string();
            let python = path.extension().is_some_and(|e| e == "py");
            if executable && !python {
                assert!(
                    BENCHES.iter().any(|b| b.script == shown) || helpers.contains(&shown.as_str()),
                    "{shown} is executable but not in xtask's BENCHES"
                );
            }
        }
    }

    #[test]
    fn a_scripts_output_is_kept_in_the_order_it_was_written() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("run.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\necho one\necho two >&2\necho three\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bench = Bench {
            name: "order",
            script: "run.sh",
            args: &[],
            about: "",
        };
        let log = dir.join("order.log");
        let finished = run_one(&dir, &bench, &log).unwrap();
        let kept = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!finished, "exit 3 is a failure");
        assert_eq!(kept, "one\ntwo\nthree\n");
    }

    #[test]
    fn unknown_names_are_refused_with_the_list() {
        let error = choose(&["nope".to_owned()]).err().unwrap().to_string();
        assert!(error.contains("no benchmark `nope`"), "{error}");
        assert!(error.contains("gateway-overhead"), "{error}");
        let two = choose(&["git-deploy".to_owned(), "policy".to_owned()]).unwrap();
        assert_eq!(
            two.iter().map(|b| b.name).collect::<Vec<_>>(),
            ["policy", "git-deploy"]
        );
    }
}
