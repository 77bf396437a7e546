//! Reading configuration values: the pieces `layers`, `validate`, `cors`
//! and `triggers` share. The error a value gets ([`InvalidValue`]), how a
//! value's type is named in it, the reader of one table of keys ([`Table`])
//! and the name and ARN alphabets AWS uses.
//!
//! This module is the floor of `config`: it imports no sibling. Above it,
//! imports run one way: `validate` -> `layers`, `triggers`, `cors`;
//! `triggers` -> `cors`; all of them -> `value`. `mod.rs` resolves (layers
//! merge, validate checks).

use serde_json::{Map, Value};

use super::Source;

/// A value that breaks a rule.
#[derive(Debug, thiserror::Error)]
#[error("invalid {key} = {value} (from {origin}): {allowed}")]
pub struct InvalidValue {
    pub key: String,
    pub value: String,
    pub origin: Source,
    pub allowed: String,
}

pub(super) type Result<T> = std::result::Result<T, Box<InvalidValue>>;

/// How an error message names a value's type.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// 1-`max` characters of `[a-zA-Z0-9-_]`: the alphabet of most AWS names.
pub(super) fn is_name(n: &str, max: usize) -> bool {
    !n.is_empty()
        && n.len() <= max
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(super) fn is_partition(p: &str) -> bool {
    p.starts_with("aws") && p.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
}

pub(super) fn is_account(a: &str) -> bool {
    a.len() == 12 && a.chars().all(|c| c.is_ascii_digit())
}

pub(super) fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `arn:<partition>:<service>:<region>:<account>:<rest>`: the rest, if the
/// ARN has that service.
pub(super) fn arn_rest<'a>(arn: &'a str, service: &str) -> Option<&'a str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    (parts.len() == 6
        && parts[0] == "arn"
        && is_partition(parts[1])
        && parts[2] == service
        && is_region(parts[3])
        && is_account(parts[4])
        && !parts[5].is_empty())
    .then(|| parts[5])
}

/// One table being read: its key prefix for messages and its source.
pub(super) struct Table<'a> {
    pub(super) key: String,
    pub(super) map: &'a Map<String, Value>,
    pub(super) src: &'a Source,
}

impl<'a> Table<'a> {
    /// The table under `key`: refuses another type and keys not in `keys`.
    pub(super) fn nested(
        key: String,
        v: &'a Value,
        src: &'a Source,
        keys: &[&str],
    ) -> Result<Self> {
        let Value::Object(map) = v else {
            return Err(Box::new(InvalidValue {
                key,
                value: v.to_string(),
                origin: src.clone(),
                allowed: format!("expected a table with keys {}", keys.join(", ")),
            }));
        };
        let t = Table { key, map, src };
        for (k, v) in map {
            if !keys.contains(&k.replace('_', "-").as_str()) {
                return Err(t.bad(k, v, format!("unknown key; allowed: {}", keys.join(", "))));
            }
        }
        Ok(t)
    }

    pub(super) fn bad(
        &self,
        field: &str,
        v: &Value,
        allowed: impl Into<String>,
    ) -> Box<InvalidValue> {
        Box::new(InvalidValue {
            key: format!("{}.{field}", self.key),
            value: v.to_string(),
            origin: self.src.clone(),
            allowed: allowed.into(),
        })
    }

    pub(super) fn get(&self, field: &str) -> Option<&Value> {
        self.map
            .get(field)
            .or_else(|| self.map.get(&field.replace('-', "_")))
    }

    pub(super) fn string(&self, field: &str) -> Result<Option<String>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(
                field,
                v,
                format!("expected a string, found {}", type_name(v)),
            )),
        }
    }

    pub(super) fn required(&self, field: &str, what: &str) -> Result<String> {
        self.string(field)?.ok_or_else(|| {
            Box::new(InvalidValue {
                key: format!("{}.{field}", self.key),
                value: "(missing)".into(),
                origin: self.src.clone(),
                allowed: format!("required: {what}"),
            })
        })
    }

    pub(super) fn int(&self, field: &str, min: i64, max: i64, unit: &str) -> Result<Option<i64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.bad(field, v, format!("a whole number {min}-{max}{unit}"))),
            },
        }
    }

    pub(super) fn boolean(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.bad(field, v, "true or false")),
        }
    }

    pub(super) fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.boolean(field, false).map(Some),
        }
    }

    pub(super) fn strings(&self, field: &str) -> Result<Option<Vec<String>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.bad(field, other, "a list of strings")),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.bad(
                field,
                v,
                format!("a list of strings, found {}", type_name(v)),
            )),
        }
    }
}
