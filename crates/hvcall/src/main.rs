//! The `hvcall` command line.
fn main() {}
