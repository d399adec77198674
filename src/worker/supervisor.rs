//! The exec supervisor (Unix): our own binary, run by the worker between itself and a
//! skill's command, so that the command's whole process tree ends when the worker ends —
//! even by `kill -9`, which gives the worker no chance to clean up.
//!
//! The worker runs `openclaw __supervise -- PROGRAM ARGS…` in a new process group, with the
//! skill's folder, clean environment and stdio, and with one end of a socket pair as
//! descriptor 3: the *lifeline*, whose other end only that worker holds. The supervisor
//! starts the command in a process group of its own and waits for it. When the lifeline
//! reads end-of-file — the worker closed its end (timeout, cancel) or the kernel did (the
//! worker died) — the supervisor kills the tree with SIGKILL and exits.
//!
//! - Linux: the supervisor is a child subreaper (`PR_SET_CHILD_SUBREAPER`): a process
//!   whose parent dies is re-parented to it rather than to init, so every descendant —
//!   one that called `setsid()` or double-forked included — stays below it. "The tree" is
//!   every process descending from the supervisor, read from `/proc`, killed round after
//!   round until none is left.
//! - macOS and other Unix: no subreaper: the command's process group gets SIGKILL; a
//!   descendant that left the group (`setsid`) escapes. This is the best available without
//!   privileges.
//!
//! `PR_SET_PDEATHSIG` is not used: it fires when the *thread* that started the child
//! exits, and tokio's threads come and go; the lifeline's end-of-file is exact.
//!
//! When the command exits, whatever it left running is killed, then the supervisor exits
//! the same way: the same exit code, or the same signal. SIGTERM (the worker's polite stop)
//! is passed on to the command's process group; the supervisor itself stays to clean up.
//! After the command starts, the supervisor only calls async-signal-safe functions on its
//! exit paths (`_exit`), since two threads may race to them.

use std::process::ExitCode;

/// The argument that selects the supervisor (before clap sees anything).
pub const SUPERVISE_ARG: &str = "__supervise";
/// The descriptor the lifeline's read end arrives on.
pub const LIFELINE_FD: i32 = 3;

/// Runs the supervisor when this process was started as one, and returns its exit code;
/// `None` for every other invocation.
pub fn run_if_requested() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(SUPERVISE_ARG)) {
        return None;
    }
    let rest: Vec<std::ffi::OsString> = args.collect();
    Some(imp::supervise(rest))
}

#[cfg(unix)]
mod imp {
    use std::ffi::OsString;
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicI32, Ordering};

    use super::LIFELINE_FD;

    /// The command's process group, for the SIGTERM handler (0 until it runs).
    static GROUP: AtomicI32 = AtomicI32::new(0);

    extern "C" fn pass_sigterm_on(_: libc::c_int) {
        let group = GROUP.load(Ordering::SeqCst);
        if group > 0 {
            // SAFETY: kill(2) is async-signal-safe.
            unsafe {
                libc::kill(-group, libc::SIGTERM);
            }
        }
    }

    pub fn supervise(args: Vec<OsString>) -> ExitCode {
        let mut args = args.into_iter();
        if args.next().as_deref() != Some(std::ffi::OsStr::new("--")) {
            return usage();
        }
        let Some(program) = args.next() else { return usage() };
        // SAFETY: fcntl on a descriptor number; EBADF when it is not open.
        if unsafe { libc::fcntl(LIFELINE_FD, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
            return usage();
        }
        #[cfg(target_os = "linux")]
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only changes this process's own flag.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
        // SAFETY: installs a handler that only reads an atomic and calls kill(2).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = pass_sigterm_on as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        }
        let child = {
            use std::os::unix::process::CommandExt;
            // Stdio, folder and environment are the supervisor's own, set up by the worker.
            std::process::Command::new(&program).args(args).process_group(0).spawn()
        };
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cannot start `{}`: {e}", program.to_string_lossy());
                kill_tree(0);
                return ExitCode::from(127);
            }
        };
        let pid = child.id() as i32;
        GROUP.store(pid, Ordering::SeqCst);
        std::thread::spawn(move || watch_lifeline(pid));
        let status = wait_for(pid);
        kill_tree(pid);
        // SAFETY: ends the process without running anything else (see the module notes).
        unsafe {
            if libc::WIFSIGNALED(status) {
                let signal = libc::WTERMSIG(status);
                libc::signal(signal, libc::SIG_DFL);
                libc::raise(signal);
                libc::_exit(128 + signal);
            }
            libc::_exit(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 1 });
        }
    }

    fn usage() -> ExitCode {
        eprintln!("openclaw {}: an internal command of `openclaw worker`, not for direct use", super::SUPERVISE_ARG);
        ExitCode::from(2)
    }

    /// Blocks until the lifeline reads end-of-file, then kills the tree and exits.
    fn watch_lifeline(group: i32) {
        let mut byte = [0u8; 1];
        loop {
            // SAFETY: reads into a buffer we own from the lifeline descriptor.
            let n = unsafe { libc::read(LIFELINE_FD, byte.as_mut_ptr().cast(), 1) };
            if n > 0 {
                continue;
            }
            if n == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        kill_tree(group);
        // SAFETY: see the module notes on exit paths.
        unsafe { libc::_exit(128 + libc::SIGKILL) }
    }

    /// Reaps children (adopted orphans too) until the command itself ends; its wait status.
    fn wait_for(pid: i32) -> libc::c_int {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status into a local.
            let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
            if reaped == pid {
                return status;
            }
            if reaped == -1 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                // No children left: the command was reaped elsewhere (the lifeline thread).
                return status;
            }
        }
    }

    /// Kills every descendant with SIGKILL and reaps them, until none is left.
    #[cfg(target_os = "linux")]
    fn kill_tree(group: i32) {
        // The process group is not signalled here: once the command is reaped, its number
        // could in principle name someone else's group. The walk below finds everyone.
        let _ = group;
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        for _ in 0..1000 {
            let tree = descendants(me);
            reap_ready();
            if tree.is_empty() {
                return;
            }
            for pid in tree {
                // SAFETY: kill(2) on a process below this one.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Without a subreaper, the command's process group is what can be found.
    #[cfg(not(target_os = "linux"))]
    fn kill_tree(group: i32) {
        if group > 0 {
            // SAFETY: kill(2) on the command's process group.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        reap_ready();
    }

    fn reap_ready() {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status into a local.
            if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } <= 0 {
                return;
            }
        }
    }

    /// Every live process descending from `root`, from each `/proc/<pid>/stat`'s parent
    /// field (zombies excluded: they are gone but for the reaping).
    #[cfg(target_os = "linux")]
    fn descendants(root: i32) -> Vec<i32> {
        let mut parent_of = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // "pid (comm) state ppid …": comm may hold spaces and parentheses.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("");
            let Some(ppid) = fields.next().and_then(|p| p.parse::<i32>().ok()) else { continue };
            if state != "Z" {
                parent_of.push((pid, ppid));
            }
        }
        let mut found = vec![root];
        let mut i = 0;
        while i < found.len() {
            let parent = found[i];
            found.extend(parent_of.iter().filter(|(_, p)| *p == parent).map(|(pid, _)| *pid));
            i += 1;
        }
        found.remove(0);
        found
    }
}

#[cfg(not(unix))]
mod imp {
    use std::ffi::OsString;
    use std::process::ExitCode;

    /// Windows keeps a task's processes in a job object instead (see `exec`).
    pub fn supervise(_args: Vec<OsString>) -> ExitCode {
        eprintln!("openclaw {}: not used on this platform", super::SUPERVISE_ARG);
        ExitCode::from(2)
    }
}
