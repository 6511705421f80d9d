//! Content digests: strict parsing (before a digest ever becomes a path) and hashing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result, invalid_argument};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn from_name(name: &str) -> Result<Algorithm> {
        match name {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            _ => Err(invalid_argument(format!(
                "unsupported digest algorithm {:?} (sha256 and sha512 are supported)",
                name
            ))),
        }
    }
}

/// A validated digest: `sha256:` + 64 or `sha512:` + 128 lowercase hex characters, nothing else.
/// Because the hex part is checked, `blobs/<alg>/<hex>` can never leave `blobs/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Builds a digest from an algorithm and an encoded part, checking the encoded part.
    pub fn from_parts(algorithm: Algorithm, hex: &str) -> Result<Digest> {
        let valid =
            hex.len() == algorithm.hex_len() && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            let name = algorithm.name();
            return Err(invalid_argument(format!(
                "invalid digest {:?}: {name} needs exactly {} lowercase hex characters",
                format!("{name}:{hex}"),
                algorithm.hex_len()
            )));
        }
        Ok(Digest { algorithm, hex: hex.to_owned() })
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of_bytes(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(text: &str) -> Result<Digest> {
        let Some((algorithm, hex)) = text.split_once(':') else {
            return Err(invalid_argument(format!("invalid digest {text:?}: expected <algorithm>:<hex>")));
        };
        // The whole digest in the message, so that it names what the caller passed.
        let algorithm = Algorithm::from_name(algorithm)
            .map_err(|err| invalid_argument(format!("invalid digest {text:?}: {}", err.message())))?;
        Digest::from_parts(algorithm, hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Running hash of one algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything hashed so far; the hasher stays usable.
    pub fn current(&self) -> Digest {
        self.clone().finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The internal state, so a long hash can be resumed later without re-reading its input.
    pub fn save_state(&self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.serialize().to_vec(),
            Hasher::Sha512(h) => h.serialize().to_vec(),
        }
    }

    /// A hasher from `save_state` bytes that hashed exactly `length` bytes; `None` when they
    /// are not a valid state or claim another length (a state claiming an absurd length would
    /// otherwise overflow the hasher's counter on the next update).
    pub fn restore_state(algorithm: Algorithm, state: &[u8], length: u64) -> Option<Hasher> {
        if saved_state_length(algorithm, state)? != length {
            return None;
        }
        match algorithm {
            Algorithm::Sha256 => {
                let state = SerializedState::<Sha256>::try_from(state).ok()?;
                Sha256::deserialize(&state).ok().map(Hasher::Sha256)
            }
            Algorithm::Sha512 => {
                let state = SerializedState::<Sha512>::try_from(state).ok()?;
                Sha512::deserialize(&state).ok().map(Hasher::Sha512)
            }
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// How many bytes a saved state has hashed, from its layout in sha2 0.11: the state words, the
/// count of whole blocks (u64 for sha256, u128 for sha512, little-endian), then the count of
/// buffered bytes.
fn saved_state_length(algorithm: Algorithm, state: &[u8]) -> Option<u64> {
    let (words, count, block) = match algorithm {
        Algorithm::Sha256 => (32, 8, 64),
        Algorithm::Sha512 => (64, 16, 128),
    };
    let mut blocks = [0u8; 16];
    blocks[..count].copy_from_slice(state.get(words..words + count)?);
    let buffered = u128::from(*state.get(words + count)?);
    if buffered >= block {
        return None;
    }
    u64::try_from(u128::from_le_bytes(blocks).checked_mul(block)?.checked_add(buffered)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_a_valid_sha256() {
        let digest: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(digest.to_string(), EMPTY_SHA256);
        assert_eq!(Digest::of_bytes(Algorithm::Sha256, b""), digest);
    }

    #[test]
    fn hashes_sha512() {
        let digest = Digest::of_bytes(Algorithm::Sha512, b"abc");
        assert!(digest.hex().starts_with("ddaf35a193617aba"));
        assert_eq!(digest.to_string().parse::<Digest>().unwrap(), digest);
    }

    #[test]
    fn saved_state_resumes_the_same_hash() {
        for algorithm in Algorithm::ALL {
            let mut hasher = Hasher::new(algorithm);
            hasher.update(&[7u8; 1000]);
            let saved = hasher.save_state();
            let mut resumed = Hasher::restore_state(algorithm, &saved, 1000).unwrap();
            hasher.update(b"tail");
            resumed.update(b"tail");
            assert_eq!(hasher.finish(), resumed.finish());
            assert!(Hasher::restore_state(algorithm, b"short", 0).is_none());
            // A state is only taken for the length it hashed.
            assert!(Hasher::restore_state(algorithm, &saved, 999).is_none());
        }
    }

    #[test]
    fn a_saved_state_claiming_an_absurd_length_is_refused() {
        // Found by the digest fuzz target: its block count overflowed the hasher on update.
        for algorithm in Algorithm::ALL {
            let mut state = Hasher::new(algorithm).save_state();
            let words = if algorithm == Algorithm::Sha256 { 32 } else { 64 };
            state[words..words + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            assert!(Hasher::restore_state(algorithm, &state, u64::MAX).is_none());
            assert!(Hasher::restore_state(algorithm, &state, 0).is_none());
        }
    }

    #[test]
    fn rejects_every_malformed_digest() {
        let long = format!("sha256:{}", "a".repeat(65));
        let upper = format!("sha256:{}", "A".repeat(64));
        let nul = format!("sha256:{}\0", "a".repeat(63));
        let newline = format!("sha256:{}\n", "a".repeat(64));
        let cases = [
            "",
            "sha256",
            "sha256:",
            "sha256:../../etc/passwd",
            "sha256:../x",
            "sha256:abc",
            long.as_str(),
            upper.as_str(),
            nul.as_str(),
            newline.as_str(),
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ];
        for case in cases {
            let err = case.parse::<Digest>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{case:?}");
            let shown = format!("{case:?}");
            assert!(err.message().contains(&shown), "{:?} does not name {shown}", err.message());
        }
    }
}
