//! `cargo xtask`: repository chores. `tidy` checks what neither rustc nor clippy can: every
//! Rust file opens with a module doc comment, and no file names a path of the machine it was
//! written on. It also runs under `cargo test`, so CI enforces it. `bench` runs the benchmark
//! suite (`bench.rs`).

mod bench;

use std::path::{Path, PathBuf};

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("tidy") => {
            let problems = tidy(&workspace_root());
            for problem in &problems {
                eprintln!("{problem}");
            }
            if !problems.is_empty() {
                bail!("tidy found {} problem(s)", problems.len());
            }
            Ok(())
        }
        Some("bench") => bench::run(&workspace_root(), &args[1..]),
        _ => bail!("usage: cargo xtask tidy | cargo xtask bench [--list | NAME…]"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Path prefixes that only exist on a developer's or CI machine. Split so this file does not
/// match itself.
fn machine_paths() -> Vec<String> {
    ["/ro", "ot/", "/ho", "me/", "/wo", "rk/", "/Us", "ers/"]
        .chunks(2)
        .map(|pair| pair.concat())
        .collect()
}

/// Every problem found under `root`, one line each.
fn tidy(root: &Path) -> Vec<String> {
    let banned = machine_paths();
    let mut problems = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .filter_entry(|e| e.file_name() != ".git" && e.file_name() != "target")
        .build();
    for entry in walker.flatten() {
        let path = entry.path();
        let checked = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rs" | "py" | "toml" | "md" | "sql" | "sh")
        ) || path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|dir| dir == "scripts" || dir == ".ci" || dir == "benches");
        if !checked || !path.is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let shown = path.strip_prefix(root).unwrap_or(path).display();
        if path.extension().is_some_and(|e| e == "rs") && !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{shown}: missing the `//!` module comment saying what it owns"
            ));
        }
        for (number, line) in text.lines().enumerate() {
            if let Some(prefix) = banned.iter().find(|b| line.contains(b.as_str())) {
                problems.push(format!(
                    "{shown}:{}: names a machine path ({prefix}…); use a relative path or an environment variable",
                    number + 1
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_is_tidy() {
        let problems = tidy(&workspace_root());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn tidy_catches_a_missing_header_and_a_machine_path() {
        let dir = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let home = machine_paths()[1].clone();
        std::fs::write(
            dir.join("a.rs"),
            format!("fn main() {{ let _ = \"{home}me\"; }}\n"),
        )
        .unwrap();
        let problems = tidy(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
