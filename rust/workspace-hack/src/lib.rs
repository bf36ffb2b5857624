//! Empty on purpose: this crate exists for its dependency list (see its Cargo.toml), which makes every
//! debug build of the workspace resolve the same features and so share one compiled dependency tree.
