//! Build progress on stderr: a spinner per phase on a terminal, plain lines otherwise (CI
//! logs, pipes), so the output is useful in both.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use skyport_store::BuildPhase;

/// Shows which phase a build is in and how long each took.
pub(crate) struct Progress {
    interactive: bool,
    current: Option<(BuildPhase, Instant, Option<ProgressBar>)>,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            interactive: std::io::stderr().is_terminal(),
            current: None,
        }
    }

    /// Moves to `phase`, closing the previous one as done; a no-op when already there or
    /// past it (a late line of an earlier phase does not move progress back).
    pub(crate) fn enter(&mut self, phase: BuildPhase) {
        if self
            .current
            .as_ref()
            .is_some_and(|(p, ..)| rank(*p) >= rank(phase))
        {
            return;
        }
        self.finish(true);
        let bar = if self.interactive {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(label(phase));
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            eprintln!("… {}", label(phase));
            None
        };
        self.current = Some((phase, Instant::now(), bar));
    }

    /// Prints a line without breaking the spinner.
    pub(crate) fn line(&self, text: &str) {
        match &self.current {
            Some((_, _, Some(bar))) => bar.println(format!("  {text}")),
            _ => eprintln!("  {text}"),
        }
    }

    /// Closes the current phase as succeeded or failed.
    pub(crate) fn finish(&mut self, succeeded: bool) {
        let Some((phase, started, bar)) = self.current.take() else {
            return;
        };
        let mark = if succeeded { "✓" } else { "✗" };
        let text = format!(
            "{mark} {} ({:.1}s)",
            label(phase),
            started.elapsed().as_secs_f64()
        );
        match bar {
            Some(bar) => {
                if let Ok(style) = ProgressStyle::with_template("{msg}") {
                    bar.set_style(style);
                }
                bar.finish_with_message(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

fn label(phase: BuildPhase) -> &'static str {
    match phase {
        BuildPhase::Source => "Getting the source",
        BuildPhase::Resolve => "Resolving the entrypoint, Python and dependencies",
        BuildPhase::Install => "Installing dependencies",
        BuildPhase::Inspect => "Loading the server",
        BuildPhase::Promote => "Going live",
    }
}

/// The phase's place in a build.
fn rank(phase: BuildPhase) -> u8 {
    match phase {
        BuildPhase::Source => 0,
        BuildPhase::Resolve => 1,
        BuildPhase::Install => 2,
        BuildPhase::Inspect => 3,
        BuildPhase::Promote => 4,
    }
}
