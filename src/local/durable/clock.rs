//! The durable service's clock: the system's time plus the time skipped.
//!
//! Every durable timer (a wait's end, a step's next attempt, a callback's
//! timeout, the execution timeout, retention) is read on this clock, so
//! skipping time moves all of them together. With `--durable-clock fast`
//! the service skips to the next wait or retry as soon as an execution has
//! nothing else to do; `POST /_cargo-fn/api/durable/advance` skips to the
//! next wait or retry on either clock. Timeouts (a callback's, the
//! execution's) are never skipped to: they come as the skipped time
//! passes them.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// How the clock moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockMode {
    /// Timers fire when their time comes (the default).
    #[default]
    Real,
    /// A wait or a retry delay is skipped as soon as an execution has
    /// nothing else to do.
    Fast,
}

impl ClockMode {
    pub fn parse(s: &str) -> Option<ClockMode> {
        match s {
            "real" => Some(ClockMode::Real),
            "fast" => Some(ClockMode::Fast),
            _ => None,
        }
    }
}

/// Seconds since the epoch, as the Lambda API writes timestamps.
pub type Seconds = f64;

/// The system clock plus an offset that only grows.
#[derive(Debug)]
pub struct DurableClock {
    mode: ClockMode,
    skipped: Mutex<Duration>,
    /// Bumped on every skip, so sleepers look at the time again.
    moved: watch::Sender<u64>,
}

impl DurableClock {
    pub fn new(mode: ClockMode) -> DurableClock {
        DurableClock {
            mode,
            skipped: Mutex::new(Duration::ZERO),
            moved: watch::Sender::new(0),
        }
    }

    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    /// Now, in seconds since the epoch.
    pub fn now(&self) -> Seconds {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (system + *self.skipped.lock().expect("clock")).as_secs_f64()
    }

    /// How much time has been skipped so far.
    pub fn skipped(&self) -> Duration {
        *self.skipped.lock().expect("clock")
    }

    /// Moves the clock forward to `t` (never back); the seconds skipped.
    pub fn skip_to(&self, t: Seconds) -> f64 {
        let gap = t - self.now();
        if gap <= 0.0 {
            return 0.0;
        }
        *self.skipped.lock().expect("clock") += Duration::from_secs_f64(gap);
        self.moved.send_modify(|n| *n += 1);
        gap
    }

    /// Resolves once the clock reads `t` or later, skipped or not.
    pub async fn sleep_until(&self, t: Seconds) {
        let mut moved = self.moved.subscribe();
        loop {
            moved.borrow_and_update();
            let left = t - self.now();
            if left <= 0.0 {
                return;
            }
            // Sleep in real time, and wake early when time is skipped.
            let real = Duration::from_secs_f64(left.min(86_400.0));
            tokio::select! {
                _ = tokio::time::sleep(real) => {}
                _ = moved.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn skipping_moves_now_and_wakes_sleepers() {
        let clock = std::sync::Arc::new(DurableClock::new(ClockMode::Fast));
        let start = clock.now();
        let target = start + 86_400.0;
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(target).await })
        };
        tokio::task::yield_now().await;
        assert!(clock.skip_to(target) > 86_000.0);
        sleeper.await.unwrap();
        assert!(clock.now() >= target);
        assert_eq!(clock.skip_to(start), 0.0, "the clock never goes back");
    }
}
