//! A rollout recorded on the alias itself, in its description, so that any
//! machine sees it: `deploy --resume` continues it, `promote` and
//! `rollback` finish or revert it, and a new deploy refuses to start over
//! it. Lambda keeps alias descriptions up to 256 characters; the record is
//! short JSON behind a fixed prefix.

use serde::{Deserialize, Serialize};

/// What a running rollout's alias description starts with.
pub const PREFIX: &str = "cargo-fn rollout ";
/// Lambda's limit for an alias description.
pub const MAX_DESCRIPTION: usize = 256;

/// Whether a process drives the rollout or someone left it part-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    Running,
    /// Left as it was after Ctrl-C: nobody polls its health.
    Left,
}

/// The state of one function's rollout, as written on its alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The release: every function of one deploy shares it.
    pub id: String,
    /// How many functions the release has.
    pub n: usize,
    pub from: String,
    pub to: String,
    /// The strategy's canonical name (parsed back on resume).
    pub strategy: String,
    /// Index of the current step.
    pub step: usize,
    /// When the current step began (seconds since the epoch).
    pub at: u64,
    /// When the first traffic moved (seconds since the epoch).
    pub t0: u64,
    pub state: RecordState,
}

impl Record {
    /// The alias description that carries this record.
    pub fn description(&self) -> String {
        format!(
            "{PREFIX}{}",
            serde_json::to_string(self).expect("a record serialises")
        )
    }

    /// The record in an alias description, if it holds one.
    pub fn parse(description: &str) -> Option<Record> {
        serde_json::from_str(description.strip_prefix(PREFIX)?).ok()
    }
}

/// The description an alias keeps after a rollout ended: informative, and
/// not a record (so nothing treats it as running).
pub fn ended(id: &str, what: &str) -> String {
    let mut d = format!("cargo-fn: rollout {id} {what}");
    if d.len() > MAX_DESCRIPTION {
        let mut cut = MAX_DESCRIPTION;
        while !d.is_char_boundary(cut) {
            cut -= 1;
        }
        d.truncate(cut);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_within_lambdas_limit() {
        let r = Record {
            id: "0123abcd".into(),
            n: 12,
            from: "1234567".into(),
            to: "1234568".into(),
            strategy: "Linear10PercentEvery10Minutes".into(),
            step: 9,
            at: 4_102_444_800,
            t0: 4_102_444_800,
            state: RecordState::Running,
        };
        let d = r.description();
        assert!(d.len() <= MAX_DESCRIPTION, "{} chars: {d}", d.len());
        assert_eq!(Record::parse(&d), Some(r));
        assert_eq!(Record::parse("deployed by hand"), None);
        assert_eq!(Record::parse(&ended("0123abcd", "completed")), None);
        assert!(ended("x", &"y".repeat(400)).len() <= MAX_DESCRIPTION);
    }
}
