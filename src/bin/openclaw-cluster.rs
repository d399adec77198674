//! `openclaw-cluster`: the installed name (OpenClaw's own CLI is `openclaw`); see
//! [`openclaw::cmd::main`].

fn main() -> std::process::ExitCode {
    openclaw::cmd::main()
}
