//! Two (or more) AWS accounts in one moto: moto 5.2 files what a request
//! does under the account in its `x-moto-account-id` header, and maps the
//! access keys of an IAM user created that way to that account. So a user
//! per account, a key per user, and a shared config/credentials file with
//! one profile per account give cargo-fn real per-account credentials,
//! chosen the ordinary way (`--profile`, or a stage's `profile`).

#![allow(dead_code)]

use std::path::PathBuf;

use super::moto::http_with;

/// An access key of a fresh IAM user `user` in `account`.
pub struct AccountKey {
    pub account: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Creates the user under `account` and an access key for it.
pub fn account_key(port: u16, account: &str, user: &str) -> AccountKey {
    let call = |body: String| {
        let (status, out) = http_with(
            port,
            "iam",
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("x-moto-account-id", account),
            ],
            body.as_bytes(),
        );
        let text = String::from_utf8_lossy(&out).into_owned();
        assert_eq!(status, 200, "IAM in account {account}: {text}");
        text
    };
    call(format!(
        "Action=CreateUser&UserName={user}&Version=2010-05-08"
    ));
    let xml = call(format!(
        "Action=CreateAccessKey&UserName={user}&Version=2010-05-08"
    ));
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = xml
            .find(&open)
            .unwrap_or_else(|| panic!("no {tag} in {xml}"))
            + open.len();
        let end = xml[start..].find('<').unwrap() + start;
        xml[start..end].to_string()
    };
    AccountKey {
        account: account.to_string(),
        access_key_id: field("AccessKeyId"),
        secret_access_key: field("SecretAccessKey"),
    }
}

/// A shared config and credentials file with one profile per key (named
/// as given), all in `region`; removed on drop.
pub struct Profiles {
    dir: tempfile::TempDir,
}

impl Profiles {
    pub fn write(region: &str, profiles: &[(&str, &AccountKey)]) -> Profiles {
        let dir = super::tempdir();
        let mut config = String::new();
        let mut credentials = String::new();
        for (name, key) in profiles {
            config.push_str(&format!("[profile {name}]\nregion = {region}\n\n"));
            credentials.push_str(&format!(
                "[{name}]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n",
                key.access_key_id, key.secret_access_key
            ));
        }
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(dir.path().join("credentials"), credentials).unwrap();
        Profiles { dir }
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// The environment cargo-fn gets: these files, the endpoint, and no
    /// credentials or region of its own (a profile must supply them).
    pub fn env(&self, endpoint: String) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", self.config_file().display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("credentials").display().to_string(),
            ),
        ]
    }
}
