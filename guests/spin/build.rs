//! Links this guest at the fixed address of the shared linker script.
fn main() {
    link::configure();
}
