//! Image references of the distribution API: `HOST/REPO[:TAG][@DIGEST]`, with Docker Hub's
//! defaults for names that do not start with a host (`alpine` is `docker.io/library/alpine`).

use std::fmt;

use crate::digest::Digest;
use crate::error::{Result, invalid_argument};

/// Where a name without a host lives, and the host its API is served from.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// The registry as written (`localhost:5000`, `docker.io`).
    pub host: String,
    /// The repository path inside the registry (`library/alpine`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RemoteRef {
    /// Parses `HOST/REPO`, with an optional `:TAG` and/or `@DIGEST`.
    pub fn parse(text: &str) -> Result<RemoteRef> {
        let bad = |why: &str| invalid_argument(format!("invalid image reference {text:?}: {why}"));
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest.parse::<Digest>().map_err(|err| bad(err.message()))?)),
            None => (text, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to the host's port.
        let (name, tag) = match name.rfind(':') {
            Some(colon) if !name[colon..].contains('/') => (&name[..colon], Some(&name[colon + 1..])),
            _ => (name, None),
        };
        let (host, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest.to_string()),
            Some(_) => (DOCKER_HUB, name.to_string()),
            None => (DOCKER_HUB, format!("library/{name}")),
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
            return Err(bad("the registry host is not a host name with an optional port"));
        }
        if !valid_repository(&repository) {
            return Err(bad(
                "the repository must be lowercase path components of [a-z0-9] joined by '.', '_', '__' or '-'",
            ));
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(bad("a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"));
        }
        Ok(RemoteRef { host: host.to_string(), repository, tag: tag.map(str::to_string), digest })
    }

    /// The host the API is reached at (Docker Hub serves its API from another name).
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_HUB { DOCKER_HUB_API } else { &self.host }
    }

    /// The tag or digest to ask the manifest endpoint for; a digest wins over a tag.
    pub fn manifest_reference(&self) -> Option<String> {
        self.digest.as_ref().map(Digest::to_string).or_else(|| self.tag.clone())
    }
}

impl fmt::Display for RemoteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The distribution spec's name grammar: components of `[a-z0-9]+` joined by `.`, `_`, `__` or
/// runs of `-`, separated by `/`.
pub(crate) fn valid_repository(repository: &str) -> bool {
    repository.len() <= 255 && repository.split('/').all(valid_component)
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        if !(separator == "." || separator == "_" || separator == "__" || separator.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

pub(crate) fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_repository_tag_and_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let parsed = RemoteRef::parse(&format!("127.0.0.1:5000/a/b:v1@{digest}")).unwrap();
        assert_eq!(parsed.host, "127.0.0.1:5000");
        assert_eq!(parsed.repository, "a/b");
        assert_eq!(parsed.tag.as_deref(), Some("v1"));
        assert_eq!(parsed.manifest_reference(), Some(digest));
        let port_only = RemoteRef::parse("localhost:5000/repo").unwrap();
        assert_eq!((port_only.host.as_str(), port_only.tag), ("localhost:5000", None));
    }

    #[test]
    fn names_without_a_host_are_docker_hub() {
        let parsed = RemoteRef::parse("alpine:3").unwrap();
        assert_eq!((parsed.host.as_str(), parsed.repository.as_str()), ("docker.io", "library/alpine"));
        assert_eq!(parsed.api_host(), "registry-1.docker.io");
        assert_eq!(RemoteRef::parse("user/app").unwrap().repository, "user/app");
    }

    #[test]
    fn refuses_malformed_references() {
        for text in ["", "host.io/", "host.io/UPPER", "host.io/a//b", "host.io/a:-tag", "host.io/a@sha256:12", "h o/a"]
        {
            let err = RemoteRef::parse(text).unwrap_err();
            assert!(err.message().contains(&format!("{text:?}")), "{text}: {err}");
        }
    }
}
