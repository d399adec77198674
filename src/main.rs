//! `openclaw`: the same program as `openclaw-cluster` under its short name (see
//! [`openclaw::cmd::main`]).

fn main() -> std::process::ExitCode {
    openclaw::cmd::main()
}
