#![no_main]
//! Digest parsing is strict and total: a string parses exactly when it is `sha256:` + 64 or
//! `sha512:` + 128 lowercase hex characters (checked against a grammar written out here), a
//! parsed digest prints as the very same string, and it survives JSON. Saved hash states (read
//! back from disk when an ingest resumes) are rejected or usable, never a panic.

use libfuzzer_sys::fuzz_target;
use ocicas::digest::Hasher;
use ocicas::{Algorithm, Digest};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match text.parse::<Digest>() {
        Ok(digest) => {
            assert!(is_strict_digest(&text), "{text:?} was accepted");
            assert_eq!(digest.to_string(), text, "a digest must print as it was written");
            assert_eq!(Digest::from_parts(digest.algorithm(), digest.hex()).expect("its own parts"), digest);
            let json = serde_json::to_string(&digest).expect("a digest serializes");
            assert_eq!(serde_json::from_str::<Digest>(&json).expect("its own JSON"), digest);
        }
        Err(err) => {
            assert!(!is_strict_digest(&text), "{text:?} was refused: {err}");
            assert!(serde_json::from_value::<Digest>(serde_json::Value::String(text.into_owned())).is_err());
        }
    }
    // The first 8 bytes claim the length the state hashed, the rest is the state.
    if let Some((claimed, state)) = data.split_first_chunk::<8>() {
        for algorithm in Algorithm::ALL {
            if let Some(mut hasher) = Hasher::restore_state(algorithm, state, u64::from_le_bytes(*claimed)) {
                hasher.update(data);
                assert_eq!(hasher.finish().algorithm(), algorithm);
            }
        }
    }
});

fn is_strict_digest(text: &str) -> bool {
    let Some((algorithm, hex)) = text.split_once(':') else { return false };
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == hex_len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
