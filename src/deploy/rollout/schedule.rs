//! A strategy's steps: the weight each step gives the new version and how
//! long it bakes before the next one.

use std::time::Duration;

use crate::config::Strategy;

/// One step of a rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Share of the alias's traffic on the new version, 0 < weight <= 1.
    pub weight: f64,
    /// Time at this weight before the next step (zero for the last one).
    pub bake: Duration,
}

/// The steps of `strategy`, durations multiplied by `scale` (1 in real
/// use; tests shrink CodeDeploy's minutes to seconds with it).
pub fn steps(strategy: Strategy, scale: f64) -> Vec<Step> {
    let scaled = |d: Duration| d.mul_f64(scale);
    let last = Step {
        weight: 1.0,
        bake: Duration::ZERO,
    };
    match strategy {
        Strategy::AllAtOnce => vec![last],
        Strategy::Canary { percent, bake } => vec![
            Step {
                weight: percent / 100.0,
                bake: scaled(bake),
            },
            last,
        ],
        Strategy::Linear { percent, every } => {
            let mut out = Vec::new();
            let mut k = 1u32;
            // Whole steps in percent, so 10 x 10% ends on exactly 100%.
            while percent * f64::from(k) < 100.0 - 1e-9 {
                out.push(Step {
                    weight: percent * f64::from(k) / 100.0,
                    bake: scaled(every),
                });
                k += 1;
            }
            out.push(last);
            out
        }
    }
}

/// Total time from the first shift to the last one.
pub fn total(steps: &[Step]) -> Duration {
    steps.iter().map(|s| s.bake).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(s: &[Step]) -> Vec<f64> {
        s.iter()
            .map(|s| (s.weight * 1000.0).round() / 10.0)
            .collect()
    }

    #[test]
    fn canary_is_one_step_then_everything() {
        let s = steps(Strategy::parse("Canary10Percent5Minutes").unwrap(), 1.0);
        assert_eq!(weights(&s), vec![10.0, 100.0]);
        assert_eq!(s[0].bake, Duration::from_secs(300));
        assert_eq!(s[1].bake, Duration::ZERO);
        assert_eq!(total(&s), Duration::from_secs(300));
    }

    #[test]
    fn linear_ten_percent_has_ten_steps() {
        let s = steps(Strategy::parse("Linear10PercentEvery1Minute").unwrap(), 1.0);
        assert_eq!(
            weights(&s),
            vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
        );
        assert_eq!(total(&s), Duration::from_secs(9 * 60));
    }

    #[test]
    fn linear_increments_that_do_not_divide_100_end_on_100() {
        let s = steps(Strategy::linear(30.0, Duration::from_secs(2)).unwrap(), 1.0);
        assert_eq!(weights(&s), vec![30.0, 60.0, 90.0, 100.0]);
        let s = steps(
            Strategy::linear(100.0, Duration::from_secs(2)).unwrap(),
            1.0,
        );
        assert_eq!(weights(&s), vec![100.0]);
    }

    #[test]
    fn all_at_once_and_scaling() {
        assert_eq!(weights(&steps(Strategy::AllAtOnce, 1.0)), vec![100.0]);
        let s = steps(Strategy::parse("Canary10Percent30Minutes").unwrap(), 0.001);
        assert_eq!(s[0].bake, Duration::from_millis(1800));
    }
}
