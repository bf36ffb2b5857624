// Empty on purpose: the [build-dependencies] of this crate are there for their features only (see
// Cargo.toml), and they are a package's build dependencies only when it has a build script.
fn main() {}
