//! Reading one trigger table beyond the shared [`Table`] readers: the keys
//! each trigger type allows and the event filter patterns of mappings.

use serde_json::Value;

use super::MAX_FILTERS;
use crate::config::value::{Result, Table};

/// Refuses keys this trigger type does not have.
pub(super) fn only(t: &Table, kind: &str, keys: &[&str]) -> Result<()> {
    for (k, v) in t.map {
        let k2 = k.replace('_', "-");
        if k2 != "type" && k2 != "name" && !keys.contains(&k2.as_str()) {
            return Err(t.bad(
                k,
                v,
                format!(
                    "unknown key for a `{kind}` trigger; allowed: type, name, {}",
                    keys.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// `filters`: JSON filter patterns, written as strings or tables.
pub(super) fn filters(t: &Table) -> Result<Vec<String>> {
    let Some(v) = t.get("filters") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = v else {
        return Err(t.bad(
            "filters",
            v,
            "a list of filter patterns (JSON strings or tables)",
        ));
    };
    if items.len() > MAX_FILTERS {
        return Err(t.bad(
            "filters",
            v,
            format!("at most {MAX_FILTERS} filter patterns"),
        ));
    }
    items
        .iter()
        .map(|item| {
            let parsed = match item {
                Value::String(s) => serde_json::from_str::<Value>(s).ok(),
                Value::Object(_) => Some(item.clone()),
                _ => None,
            };
            match parsed {
                Some(p @ Value::Object(_)) => {
                    let text = p.to_string();
                    if text.len() > 4096 {
                        return Err(t.bad(
                            "filters",
                            item,
                            "a filter pattern of at most 4096 characters",
                        ));
                    }
                    Ok(text)
                }
                _ => Err(t.bad(
                    "filters",
                    item,
                    "a filter pattern: a JSON object such as {\"body\":{\"kind\":[\"order\"]}}",
                )),
            }
        })
        .collect()
}
