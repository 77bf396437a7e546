//! The terminal side of a rollout: Ctrl-C and SIGTERM with the question
//! they ask ([`SignalControl`]), and the events shown as status lines and a
//! countdown bar, or as one JSON line each ([`UiObserver`]).

use std::io::IsTerminal;

use super::{Control, Decision, Event, Observer, Signal};
use crate::ui::Ui;

/// Ctrl-C (SIGINT) or SIGTERM. After Ctrl-C on a terminal the user
/// chooses; elsewhere (CI, a pipe) and after SIGTERM (a supervisor, a
/// cancelled job: nobody is there to answer) the rollout rolls back:
/// nobody would watch a half-shifted alias left behind.
pub struct SignalControl {
    interactive: bool,
    #[cfg(unix)]
    signals: tokio::sync::Mutex<Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>>,
}

impl SignalControl {
    /// Installs the handlers (from then on Ctrl-C no longer kills the
    /// process: a signal that arrives between two waits is kept).
    pub fn install() -> Self {
        #[cfg(unix)]
        let signals = {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(i), Ok(t)) => Some((i, t)),
                _ => None,
            }
        };
        SignalControl {
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            #[cfg(unix)]
            signals: tokio::sync::Mutex::new(signals),
        }
    }
}

impl Control for SignalControl {
    async fn interrupted(&self) -> Signal {
        #[cfg(unix)]
        {
            let mut guard = self.signals.lock().await;
            match guard.as_mut() {
                Some((int, term)) => {
                    tokio::select! {
                        _ = int.recv() => Signal::Interrupt,
                        _ = term.recv() => Signal::Terminate,
                    }
                }
                None => std::future::pending::<Signal>().await,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }

    fn decide(&self, signal: Signal) -> Decision {
        if !self.interactive || signal == Signal::Terminate {
            return Decision::RollBack;
        }
        loop {
            eprint!(
                "\nInterrupted. Roll back to the old versions [r], or leave the rollout as it is [l]? "
            );
            let mut answer = String::new();
            match std::io::stdin().read_line(&mut answer) {
                Ok(0) | Err(_) => return Decision::RollBack,
                Ok(_) => {}
            }
            match answer.trim().to_ascii_lowercase().as_str() {
                "r" | "roll back" | "rollback" => return Decision::RollBack,
                "l" | "leave" => return Decision::Leave,
                _ => {}
            }
        }
    }
}

/// Shows events: one JSON line each with `--output json`, otherwise status
/// lines and, on a terminal, a bar counting down to the next step.
pub struct UiObserver {
    ui: Ui,
    bar: Option<indicatif::ProgressBar>,
}

impl UiObserver {
    pub fn new(ui: Ui) -> Self {
        UiObserver { ui, bar: None }
    }

    fn clear_bar(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for UiObserver {
    fn event(&mut self, e: &Event) {
        if self.ui.is_json() {
            println!("{}", serde_json::to_string(e).expect("events serialise"));
            return;
        }
        if self.ui.quiet {
            return;
        }
        match e {
            Event::Start {
                release,
                strategy,
                steps,
                functions,
                resumed,
            } => {
                let fns: Vec<String> = functions
                    .iter()
                    .map(|m| format!("{}:{} {} -> {}", m.function, m.alias, m.from, m.to))
                    .collect();
                self.ui.status(
                    if *resumed { "Resuming" } else { "Rolling out" },
                    format!(
                        "release {release} ({strategy}: {}%): {}",
                        steps
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join("/"),
                        fns.join(", ")
                    ),
                );
            }
            Event::Hook {
                phase,
                function,
                hook,
                ok,
                error,
            } => {
                if *ok {
                    self.ui
                        .status("Hook", format!("{phase} {hook} of {function} passed"));
                } else {
                    self.ui.warn(format!(
                        "{phase} hook {hook} of {function} failed: {}",
                        error.clone().unwrap_or_default()
                    ));
                }
            }
            Event::Step {
                step,
                of,
                percent,
                next_in,
                ..
            } => {
                self.clear_bar();
                self.ui.status(
                    "Shifted",
                    format!("step {step}/{of}: {percent}% on the new version"),
                );
                if let Some(secs) = next_in
                    && std::io::stderr().is_terminal()
                {
                    let bar = indicatif::ProgressBar::new(*secs);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{msg} [{bar:30}] next step in {eta}",
                        )
                        .expect("static bar template")
                        .progress_chars("=> "),
                    );
                    bar.set_message(format!("{percent}% on the new version"));
                    self.bar = Some(bar);
                }
            }
            Event::Poll { next_in, .. } => {
                if let Some(b) = &self.bar {
                    b.set_position(b.length().unwrap_or(0).saturating_sub(*next_in));
                }
            }
            Event::Rollback { reason, .. } => {
                self.clear_bar();
                self.ui.warn(format!("rolling back: {reason}"));
            }
            Event::Stopped { reason, .. } => {
                self.clear_bar();
                self.ui.warn(format!("rollout stopped: {reason}"));
            }
            Event::Left {
                release,
                step,
                percent,
            } => {
                self.clear_bar();
                self.ui.status(
                    "Left",
                    format!(
                        "release {release} at step {step} ({percent}%): `cargo fn deploy --resume` continues it, `cargo fn rollback FUNCTION` reverts it"
                    ),
                );
            }
            Event::Done { release, .. } => {
                self.clear_bar();
                self.ui.status(
                    "Rolled out",
                    format!("release {release}: 100% on the new versions"),
                );
            }
        }
    }
}
