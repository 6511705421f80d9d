//! Docker image references, parsed and normalized as docker/distribution's
//! `ParseNormalizedNamed` does (what containers/image matches archive tags with): `busybox` is
//! `docker.io/library/busybox`, `me/app:1` is `docker.io/me/app:1`, `index.docker.io` is
//! `docker.io`; a domain is the first component when it has a `.` or a `:`, is `localhost`, or
//! has capitals.

use super::excerpt;
use crate::error::{Result, invalid_argument};
use crate::registry::{valid_repository, valid_tag};

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_MAX: usize = 255;

/// A reference, normalized: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub(crate) name: String,
    pub(crate) tag: Option<String>,
    pub(crate) digest: Option<String>,
}

impl Reference {
    pub(crate) fn parse_normalized(text: &str) -> Result<Reference> {
        let invalid = |why: &str| invalid_argument(format!("invalid image reference {}: {why}", excerpt(text)));
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(invalid("a 64-character hexadecimal string is an image ID, not a name"));
        }
        let (domain, remainder) = split_docker_domain(text);
        let (rest, digest) = match remainder.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match rest.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (rest, None),
        };
        if path.to_lowercase() != path {
            return Err(invalid("the repository name must be lowercase"));
        }
        if !is_domain(&domain) {
            return Err(invalid("the domain is not a host name with an optional port"));
        }
        if !valid_repository(path) {
            return Err(invalid("the repository name is not lowercase words separated by '/', '.', '_' or '-'"));
        }
        let name = format!("{domain}/{path}");
        if name.len() > NAME_MAX {
            return Err(invalid("the repository name is longer than 255 characters"));
        }
        if let Some(tag) = tag.filter(|tag| !valid_tag(tag)) {
            return Err(invalid(&format!("the tag {} is not [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}", excerpt(tag))));
        }
        if digest.is_some_and(|digest| !is_digest(digest)) {
            return Err(invalid("the digest is not ALGORITHM:HEX"));
        }
        Ok(Reference { name, tag: tag.map(str::to_owned), digest: digest.map(str::to_owned) })
    }

    /// `parse_normalized` of a reference that must name a tag: `:latest` when it has none
    /// (docker's `TagNameOnly`); one with a digest is refused.
    pub(crate) fn parse_tagged(text: &str) -> Result<Reference> {
        let mut reference = Reference::parse_normalized(text)?;
        if reference.digest.is_some() {
            return Err(invalid_argument(format!("{} names a digest, not a tag", excerpt(text))));
        }
        reference.tag.get_or_insert_with(|| "latest".to_owned());
        Ok(reference)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The domain of a reference and the rest of it (docker's `splitDockerDomain`).
fn split_docker_domain(text: &str) -> (String, String) {
    let (mut domain, mut remainder) = match text.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first => {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), text.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// `host(.host)*(:port)?`, each host part letters and digits with inner hyphens.
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let is_part = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    };
    host.split('.').all(is_part) && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// `algorithm:hex`, the algorithm letters and digits (joined by `-_+.`), at least 32 hex digits.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else { return false };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        part.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(text: &str) -> String {
        Reference::parse_normalized(text).unwrap().to_string()
    }

    #[test]
    fn references_normalize_as_docker_does() {
        assert_eq!(normalized("busybox"), "docker.io/library/busybox");
        assert_eq!(normalized("busybox:latest"), "docker.io/library/busybox:latest");
        assert_eq!(normalized("me/app:1"), "docker.io/me/app:1");
        assert_eq!(normalized("index.docker.io/me/app"), "docker.io/me/app");
        assert_eq!(normalized("docker.io/busybox"), "docker.io/library/busybox");
        assert_eq!(normalized("quay.io/me/app:1.0"), "quay.io/me/app:1.0");
        assert_eq!(normalized("localhost/app"), "localhost/app");
        assert_eq!(normalized("localhost:5000/a/b:c"), "localhost:5000/a/b:c");
        assert_eq!(normalized("Registry/app"), "Registry/app");
        assert_eq!(normalized("a__b/c-d.e---f:T_1"), "docker.io/a__b/c-d.e---f:T_1");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(normalized(&format!("app@{digest}")), format!("docker.io/library/app@{digest}"));
        assert_eq!(Reference::parse_tagged("busybox").unwrap().to_string(), "docker.io/library/busybox:latest");
    }

    #[test]
    fn malformed_references_are_refused() {
        for text in [
            "",
            "UPPER",
            "app:",
            "app:-tag",
            "a..b",
            "a___b",
            "/app",
            "app/",
            "a b",
            "host-/app",
            "host:port/app",
            "app@sha256:abc",
            &"a".repeat(64).replace('a', "f"),
            &format!("app:{}", "t".repeat(129)),
            &format!("x/{}", "n".repeat(260)),
        ] {
            assert!(Reference::parse_normalized(text).is_err(), "{text:?} was accepted");
        }
        let digest = format!("app@sha256:{}", "a".repeat(64));
        assert!(Reference::parse_tagged(&digest).is_err());
    }
}
