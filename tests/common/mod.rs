//! The harness every test file may share: running the CLI and other programs, the check for the
//! peer programs, the seeded generator, the test binary re-executed as a child, and the layouts
//! and layout files tests start from. What only one family of tests needs stays in its own
//! module (archive_common, graph_common, layout_common, distribution).
// Each test file is a crate of its own and uses only part of this module.
#![allow(dead_code)]

pub mod child;
pub mod cli;
pub mod fixture;
pub mod peers;
pub mod rng;
