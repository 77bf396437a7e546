//! What a stream holds and how its readers reach it: [`StreamRecord`], the
//! [`ShardLog`] interface a stream poller reads (the local Kinesis store and
//! the in-process DynamoDB stream implement it), and the clock helpers both
//! sides stamp records, events and errors with.
//!
//! It sits below the stores and the poller, so the poller depends on what
//! it reads and a store never on the poller.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Notify;

/// One record of a shard as the poller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    pub sequence_number: String,
    /// Kinesis: the partition key; DynamoDB: the item's `Keys` as JSON.
    pub partition_key: String,
    /// Approximate arrival, seconds since the epoch.
    pub arrival: f64,
    /// Kinesis: the record's data.
    pub data: Bytes,
    /// DynamoDB: the complete stream record as the event carries it.
    pub payload: Value,
}

/// A sequence of shards the poller reads (a Kinesis stream, a local
/// DynamoDB stream).
pub trait ShardLog: Send + Sync + 'static {
    fn shard_ids(&self) -> Vec<String>;
    fn len(&self, shard: usize) -> usize;
    fn read(&self, shard: usize, from: usize, max: usize) -> Vec<Arc<StreamRecord>>;
    /// Woken (`notify_waiters`) after every append.
    fn notify(&self) -> &Notify;
}

/// ms since the epoch as `2026-11-30T04:05:00.123Z`.
pub fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil(secs / 86_400);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60,
        ms % 1000
    )
}

fn civil(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `yyyy-mm-ddThh:mm:ssZ` to seconds since the epoch.
pub fn parse_utc(s: &str) -> Option<f64> {
    let b = s.strip_suffix('Z')?;
    let (date, time) = b.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    // Days from civil (the inverse of `civil`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64)
}

/// ms since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_helpers_round_trip() {
        assert_eq!(iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_utc("2023-11-14T22:13:20Z"), Some(1_700_000_000.0));
        assert_eq!(parse_utc("2023-11-14"), None);
    }
}
