//! Live progress: an indicatif line on a terminal, redrawn every second; when stdout is not a
//! terminal (CI logs, a pipe), a plain line every [`PLAIN_EVERY`] seconds instead.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::tally::Snapshot;

/// Seconds between plain progress lines.
pub const PLAIN_EVERY: u64 = 5;

/// The progress display of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    listeners: usize,
}

impl Progress {
    /// A display for a run of `seconds` with `listeners`.
    pub fn new(listeners: usize, seconds: u64) -> Progress {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(seconds), ProgressDrawTarget::stdout());
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed:>4} [{bar:24}] {pos}/{len} s  {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress { bar, listeners }
    }

    /// Shows the counters at second `s.t`, with the server's CPU (cores) if sampled.
    pub fn update(&self, s: &Snapshot, server_cpu: Option<f64>) {
        let cpu = server_cpu.map_or(String::new(), |c| format!("  server cpu {c:.2}"));
        let line = format!(
            "connected {}/{}  joining {}  gapped {}  errors {}{}{cpu}",
            s.connected,
            self.listeners,
            s.joining,
            s.gapped,
            s.errors,
            if s.subscribed > 0 {
                format!("  events {}", s.subscribed)
            } else {
                String::new()
            },
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(s.t);
                bar.set_message(line);
            }
            None if s.t.is_multiple_of(PLAIN_EVERY) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "t={}s {line}", s.t);
                let _ = out.flush();
            }
            None => {}
        }
    }

    /// Clears the line before the report is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
