//! GC's options from outside (found by an outside attack): `--min-age` (CLI) and `GcOptions::min_age` (Rust) are
//! durations a caller chooses, and "arithmetic on ... durations from outside is checked"
//! (STYLE.md). The largest one the CLI accepts makes GC panic (`COMMIT_GRACE_MARGIN +
//! options.min_age` overflows).

use crate::common;

use std::time::Duration;

use common::cli::{OCICAS, output, s};
use common::fixture::store;
use ocicas::GcOptions;

#[test]
fn gc_with_the_largest_min_age_the_cli_accepts_does_not_panic() {
    let (_dir, engine) = store();
    engine.put_blob(b"kept by a huge min age").unwrap();
    let result = output(OCICAS, &["gc", s(engine.root()), "--min-age", "18446744073709551615s", "--dry-run"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.code() != Some(101) && !stderr.contains("panicked"),
        "ocicas gc --min-age 18446744073709551615s panicked ({}): {stderr}",
        result.status
    );
}

#[test]
fn gc_with_min_age_duration_max_keeps_everything_instead_of_panicking() {
    let (_dir, engine) = store();
    engine.put_blob(b"kept by a huge min age").unwrap();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.gc(&GcOptions { min_age: Duration::MAX, ..GcOptions::default() })
    }));
    let report = run.expect("Engine::gc panicked for min_age Duration::MAX").unwrap();
    assert_eq!(report.blobs_removed, 0, "{report:?}");
}
