//! Most integration tests, as modules of one test binary: the test code is compiled and linked
//! once instead of once per file, which is most of the suite's build time. A test file stays a
//! binary of its own in tests/ when it needs its process to itself: it re-executes its binary
//! to run one test by name (tests/common/child.rs), changes the working directory, or measures
//! memory that a parallel test would share (a child's `ru_maxrss` includes this process).

#[path = "../archive_common/mod.rs"]
mod archive_common;
#[path = "../common/mod.rs"]
mod common;
#[path = "../distribution/mod.rs"]
mod distribution;
#[path = "../graph_common/mod.rs"]
mod graph_common;
#[path = "../layout_common/mod.rs"]
mod layout_common;

mod archive_api;
mod archive_interop;
mod archive_safety;
mod attack_confinement;
mod bounds;
mod cancel;
mod cli;
mod commit_repair;
mod confinement;
mod content_suite;
mod crash;
mod created_attack;
mod fsck_honesty;
mod gc_attack;
mod gc_graph;
mod gc_min_age;
mod gc_recommit_linked;
mod gc_umoci;
mod hostile;
mod image_walk;
mod layout_input;
mod limits;
mod peers;
mod planted;
mod put_blobs_gc;
mod put_repair;
mod registry_api;
mod registry_cli;
