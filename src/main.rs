//! The `openclaw` executable: parse arguments, run one subcommand, map the outcome to an
//! exit code (0 ok, 1 a negative answer or runtime failure, 2 usage or config error).

use std::process::ExitCode;

fn main() -> ExitCode {
    // The worker runs this binary as the supervisor of each exec task; clap never sees it.
    if let Some(code) = openclaw::worker::supervisor::run_if_requested() {
        return code;
    }
    let args = openclaw::cli::args_from_invocation(std::env::args_os());
    let cli = match openclaw::cli::parse(args) {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    match openclaw::cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            let exit = openclaw::Exit::of(&err);
            // A closed stdout (`| head`) ends the command quietly. Errors quote the server
            // and the user: no raw control characters on the terminal.
            if exit != openclaw::Exit::Ok {
                eprintln!("openclaw: {}", openclaw::cmd::output::clean_lines(&format!("{err:#}")));
            }
            exit.into()
        }
    }
}
