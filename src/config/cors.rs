//! CORS settings, read once for both places they are configured: a function
//! URL (`function-url.cors`) and an HTTP API trigger (`triggers.<name>.cors`).
//! The two AWS services differ in a few limits, which the caller passes as
//! [`Rules`]; the keys, their types and the message shapes are shared.

use serde::Serialize;
use serde_json::Value;

use super::Source;
use super::value::{Result, Table};

/// The CORS keys, kebab-case (snake_case spellings are accepted too).
pub(super) const KEYS: &[&str] = &[
    "allow-origins",
    "allow-methods",
    "allow-headers",
    "expose-headers",
    "allow-credentials",
    "max-age",
];

/// CORS settings of a function URL or an HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<u32>,
}

/// What one service accepts beyond the shared shape.
pub(super) struct Rules {
    /// Methods `allow-methods` may name, besides `*`.
    pub methods: &'static [&'static str],
    /// Most `allow-methods` entries, and most entries of each other list.
    pub max_items: Option<(usize, usize)>,
    /// Refuse origin `*` with `allow-credentials = true` (API Gateway does).
    pub no_wildcard_with_credentials: bool,
}

/// Function URLs (Lambda `CreateFunctionUrlConfig`'s `Cors`).
pub(super) const FUNCTION_URL: Rules = Rules {
    methods: &["GET", "PUT", "HEAD", "POST", "PATCH", "DELETE"],
    max_items: Some((6, 100)),
    no_wildcard_with_credentials: false,
};

/// Reads the table `key` (= `function-url.cors`, `triggers.<name>.cors`).
pub(super) fn read(key: String, v: &Value, src: &Source, rules: &Rules) -> Result<Cors> {
    let t = Table::nested(key, v, src, KEYS)?;
    let list = |k: &str, max: Option<usize>| -> Result<Vec<String>> {
        let items = t.strings(k)?.unwrap_or_default();
        if let Some(max) = max
            && items.len() > max
        {
            let all = t.get(k).cloned().unwrap_or_default();
            return Err(t.bad(k, &all, format!("at most {max} items")));
        }
        Ok(items)
    };
    let (max_methods, max_others) = rules.max_items.unzip();
    let allow_methods = list("allow-methods", max_methods)?;
    for m in &allow_methods {
        if !rules.methods.contains(&m.as_str()) && m != "*" {
            return Err(t.bad(
                "allow-methods",
                &Value::String(m.clone()),
                format!("one of {}, *", rules.methods.join(", ")),
            ));
        }
    }
    let allow_credentials = t.boolean("allow-credentials", false)?;
    let allow_origins = list("allow-origins", max_others)?;
    if rules.no_wildcard_with_credentials
        && allow_credentials
        && allow_origins.iter().any(|o| o == "*")
    {
        return Err(t.bad(
            "allow-origins",
            &Value::String("*".into()),
            "explicit origins: API Gateway refuses `*` together with allow-credentials = true",
        ));
    }
    Ok(Cors {
        allow_origins,
        allow_methods,
        allow_headers: list("allow-headers", max_others)?,
        expose_headers: list("expose-headers", max_others)?,
        allow_credentials,
        max_age: t.int("max-age", 0, 86_400, " seconds")?.map(|n| n as u32),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HTTP_API: Rules = Rules {
        methods: &["GET", "POST", "OPTIONS"],
        max_items: None,
        no_wildcard_with_credentials: true,
    };

    fn read_with(v: Value, rules: &Rules) -> std::result::Result<Cors, String> {
        read("x.cors".into(), &v, &Source::Default, rules).map_err(|e| e.to_string())
    }

    #[test]
    fn one_reader_applies_each_services_rules() {
        let star_with_credentials = json!({"allow-origins": ["*"], "allow_credentials": true});
        let url = read_with(star_with_credentials.clone(), &FUNCTION_URL).unwrap();
        assert!(url.allow_credentials);
        let api = read_with(star_with_credentials, &HTTP_API).unwrap_err();
        assert!(api.contains("x.cors.allow-origins"), "{api}");

        let options = json!({"allow-methods": ["OPTIONS"]});
        assert!(read_with(options.clone(), &HTTP_API).is_ok());
        let url = read_with(options, &FUNCTION_URL).unwrap_err();
        assert!(
            url.contains("one of GET, PUT, HEAD, POST, PATCH, DELETE, *"),
            "{url}"
        );

        let seven = json!({"allow-methods": ["GET", "GET", "GET", "GET", "GET", "GET", "GET"]});
        assert!(read_with(seven.clone(), &HTTP_API).is_ok());
        assert!(
            read_with(seven, &FUNCTION_URL)
                .unwrap_err()
                .contains("at most 6 items")
        );

        let all = read_with(
            json!({"expose-headers": ["x-id"], "allow-headers": ["a"], "max-age": 60}),
            &FUNCTION_URL,
        )
        .unwrap();
        assert_eq!(all.expose_headers, ["x-id"]);
        assert_eq!(all.allow_headers, ["a"]);
        assert_eq!(all.max_age, Some(60));
        assert!(
            read_with(json!({"nope": 1}), &HTTP_API)
                .unwrap_err()
                .contains("unknown key")
        );
        assert!(
            read_with(json!("*"), &HTTP_API)
                .unwrap_err()
                .contains("a table")
        );
    }
}
