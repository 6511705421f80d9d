//! Registry authentication: the `WWW-Authenticate` challenge (Basic, or Bearer with a token
//! server), and credentials from the caller or from the Docker config file.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{Error, ErrorKind, Result};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password, not even in a debug dump.
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

impl Credentials {
    /// Parses `USER:PASS` (the password may contain ':').
    pub fn parse(text: &str) -> Result<Credentials> {
        match text.split_once(':') {
            Some((username, password)) if !username.is_empty() => {
                Ok(Credentials { username: username.to_string(), password: password.to_string() })
            }
            _ => Err(Error::new(ErrorKind::InvalidArgument, "credentials must be USER:PASS with a non-empty user")),
        }
    }

    pub(crate) fn basic_header(&self) -> String {
        format!("Basic {}", BASE64.encode(format!("{}:{}", self.username, self.password)))
    }
}

/// What a registry's `WWW-Authenticate` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

impl Challenge {
    /// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(rest);
        let param = |name: &str| params.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer { realm: param("realm")?, service: param("service"), scope: param("scope") })
        } else {
            None
        }
    }
}

/// `key=value` pairs separated by commas, values plain or quoted with backslash escapes.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            return params;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        params.push((key.trim().to_string(), value.trim().to_string()));
    }
}

/// Credentials for `host` from the Docker config file (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`): its `auths` entry, by host or by URL. Credential helpers
/// (`credsStore`) are not run.
pub(crate) fn docker_config_credentials(host: &str) -> Result<Option<Credentials>> {
    let Some(path) = docker_config_path() else { return Ok(None) };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("cannot read the Docker config", &path, err)),
    };
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|err| {
        Error::new(ErrorKind::InvalidArgument, format!("the Docker config {} is not JSON: {err}", path.display()))
    })?;
    let Some(auths) = config.get("auths").and_then(|auths| auths.as_object()) else { return Ok(None) };
    let hub = host == "docker.io";
    let entry = auths.iter().find(|(key, _)| {
        let key = key.trim_start_matches("https://").trim_start_matches("http://");
        let key_host = key.split('/').next().unwrap_or(key);
        key_host == host || (hub && (key_host == "index.docker.io" || key_host == "registry-1.docker.io"))
    });
    let Some((_, entry)) = entry else { return Ok(None) };
    let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    if let Some(auth) = field("auth") {
        let decoded = BASE64.decode(auth).ok().and_then(|bytes| String::from_utf8(bytes).ok()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("the auth of {host} in {} is not base64 text", path.display()),
            )
        })?;
        return Credentials::parse(&decoded).map(Some);
    }
    match (field("username"), field("password")) {
        (Some(username), Some(password)) => {
            Ok(Some(Credentials { username: username.to_string(), password: password.to_string() }))
        }
        _ => Ok(None),
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let header =
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#;
        assert_eq!(
            Challenge::parse(header),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(Challenge::parse(r#"Basic realm="x""#), Some(Challenge::Basic));
        assert_eq!(Challenge::parse("Bearer service=x"), None, "a Bearer challenge needs a realm");
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn credentials_need_a_user_and_keep_colons_in_the_password() {
        let credentials = Credentials::parse("me:a:b").unwrap();
        assert_eq!((credentials.username.as_str(), credentials.password.as_str()), ("me", "a:b"));
        assert!(Credentials::parse("nopassword").is_err());
        assert!(!format!("{credentials:?}").contains("a:b"));
    }
}
