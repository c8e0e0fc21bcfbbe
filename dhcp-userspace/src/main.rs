//! The `twinlease` binary.
fn main() -> std::process::ExitCode {
    twinlease::cli::main()
}
