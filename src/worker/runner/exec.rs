//! The exec runner: a skill's command as a child process in the skill's folder.
//!
//! The task arrives as JSON on stdin; stdout is the result (JSON when it parses, else
//! `{"stdout": text}`); the last 64 KiB of stderr are kept; a non-zero exit is a failure.
//! Stdout beyond `worker.max_output_bytes` fails the attempt ("output too large"). While
//! it runs, every line it prints on either stream also goes to the job's
//! [`OutputSink`] (live output), as it is read.
//!
//! Environment: cleared, then only an allowlist from the worker's own environment (PATH,
//! HOME, user, locale, time zone, temp dirs; on Windows the system variables programs need),
//! the variables the skill declares (`requires.env`, `primaryEnv`), the values of the
//! cluster secrets the task uses (declared ones only; see the runners' gate), and the task's
//! `OPENCLAW_TASK_ID`, `OPENCLAW_NODE_ID`, `OPENCLAW_SKILL`, `OPENCLAW_ATTEMPT`. Never a
//! token: `OPENCLAW_TOKEN`, `OPENCLAW_GATEWAY_TOKEN`, `OPENCLAW_GATEWAY_PASSWORD` and every
//! config variable `OPENCLAW_<SECTION>__<KEY>` are withheld even when a skill declares them.
//!
//! The process tree ends with the task, and with the worker (see [`crate::worker::supervisor`]):
//! - Unix, in the `openclaw` binary: the command runs under our supervisor process, which
//!   watches a socket whose other end only this worker has (the lifeline). Timeout and cancel send SIGTERM
//!   (passed on to the command's process group), then after a grace close the lifeline: the
//!   supervisor SIGKILLs the whole tree (on Linux every descendant, `setsid` ones too) and
//!   exits. A worker killed outright closes it the same way (the kernel does). When the command exits,
//!   the supervisor kills whatever it left running before it reports the exit status.
//! - Unix without the supervisor (unit tests, whose executable is a test harness): the
//!   command leads its own process group, which gets SIGTERM, then SIGKILL after the grace,
//!   and SIGKILL once the command exits.
//! - Windows: the command runs in a job object created with kill-on-close: timeout, cancel
//!   and the command's exit terminate the job, and the job's last handle closing — the
//!   worker exiting, however — kills every process in it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{Attempt, attempt_timeout, failed};
use crate::model::{Outcome, OutputStream, ResultReport};
use crate::worker::live_output::{OutputSink, StreamWriter};

/// How much stderr is kept.
pub const STDERR_TAIL: usize = 64 * 1024;
/// How long a terminated process tree gets before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub argv: Vec<String>,
    pub dir: PathBuf,
    pub stdin: Vec<u8>,
    /// Variables set for the command (the task's `OPENCLAW_*`).
    pub env: Vec<(String, String)>,
    /// Variables the skill declares: passed through from the worker's environment when set.
    pub pass_env: Vec<String>,
    pub timeout: Duration,
    pub max_output: u64,
    /// Where the lines the command prints go while it runs (`None`: only the result).
    pub output: Option<OutputSink>,
}

/// How it ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Completed(Value),
    Failed { error: String, detail: Value },
    TimedOut { error: String, detail: Value },
    Cancelled,
}

/// The executable that runs [`crate::worker::supervisor`]; unset, commands run without it.
static SUPERVISOR: OnceLock<PathBuf> = OnceLock::new();

/// Runs exec commands under this executable's supervisor from now on (Unix). Only the
/// `openclaw` binary can act as the supervisor; the `worker` and `dev` commands call this.
pub fn supervise_with_this_executable() {
    #[cfg(unix)]
    {
        // /proc/self/exe still works after the binary was replaced on disk by an upgrade.
        let exe = Path::new("/proc/self/exe");
        let exe = if exe.exists() { Some(exe.to_path_buf()) } else { std::env::current_exe().ok() };
        if let Some(exe) = exe {
            let _ = SUPERVISOR.set(exe);
        }
    }
}

/// Runs an attempt of an exec skill whose command is `argv`: the task as JSON on stdin, its
/// `OPENCLAW_*` variables, the skill's declared variables, the task's timeout.
pub async fn run(argv: &[String], attempt: Attempt<'_>) -> ResultReport {
    let Attempt { assignment: a, skill, node_id, config, cancel, output, secrets } = attempt;
    let mut task = json!({
        "task_id": a.task_id, "attempt": a.attempt, "name": a.name, "parameters": a.parameters,
    });
    if let Some(inputs) = &a.inputs {
        task["inputs"] = inputs.clone();
    }
    let stdin = serde_json::to_vec(&task).unwrap_or_default();
    let job = Job {
        argv: argv.to_vec(),
        dir: skill.path.clone().unwrap_or_default(),
        stdin,
        env: [
            ("OPENCLAW_TASK_ID".into(), a.task_id.clone()),
            ("OPENCLAW_NODE_ID".into(), node_id.to_string()),
            ("OPENCLAW_SKILL".into(), a.skill.clone()),
            ("OPENCLAW_ATTEMPT".into(), a.attempt.to_string()),
        ]
        .into_iter()
        // The runners' gate let through only secrets the skill declares.
        .chain(secrets.0.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect(),
        pass_env: skill.requires_env.clone(),
        timeout: attempt_timeout(a),
        max_output: config.worker.max_output_bytes,
        output: Some(output),
    };
    let (outcome, result, error) = match run_job(job, cancel).await {
        Ending::Completed(v) => (Outcome::Completed, Some(v), None),
        Ending::Failed { error, detail } => (Outcome::Failed, Some(detail), Some(error)),
        Ending::TimedOut { error, detail } => (Outcome::Timeout, Some(detail), Some(error)),
        Ending::Cancelled => (Outcome::Cancelled, None, Some("cancelled; the process tree was stopped".into())),
    };
    ResultReport { outcome, result, error, ..failed(a.attempt, String::new()) }
}

/// Runs the job to its end, its timeout, or `cancel`.
pub async fn run_job(job: Job, cancel: CancellationToken) -> Ending {
    let started = Instant::now();
    let program = resolve_program(&job.argv[0], &job.dir);
    let (mut child, mut tree) = match tree::spawn(&program, &job, SUPERVISOR.get()) {
        Ok(spawned) => spawned,
        Err(e) => {
            return Ending::Failed {
                error: format!("cannot start `{}` in {}: {e}", job.argv[0], job.dir.display()),
                detail: json!({}),
            };
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = job.stdin.clone();
        // A child that never reads its stdin must not block us: write in the background.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
    }
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let limit = job.max_output;
    let (out_lines, err_lines) = match &job.output {
        Some(sink) => (Some(sink.writer(OutputStream::Stdout)), Some(sink.writer(OutputStream::Stderr))),
        None => (None, None),
    };
    let out_task = tokio::spawn(async move { read_capped(stdout, limit, out_lines).await });
    let err_task = tokio::spawn(async move { read_tail(stderr, STDERR_TAIL, err_lines).await });

    enum Stop {
        Exited(std::io::Result<std::process::ExitStatus>),
        Timeout,
        Cancelled,
        TooMuchOutput,
    }
    let mut out_task = out_task;
    let mut output: Option<(Vec<u8>, bool)> = None;
    let stop = loop {
        tokio::select! {
            status = child.wait() => break Stop::Exited(status),
            _ = tokio::time::sleep(job.timeout.saturating_sub(started.elapsed())) => break Stop::Timeout,
            _ = cancel.cancelled() => break Stop::Cancelled,
            r = &mut out_task, if output.is_none() => {
                let (bytes, over) = r.unwrap_or_default();
                output = Some((bytes, over));
                if over {
                    break Stop::TooMuchOutput;
                }
            }
        }
    };
    let status = match stop {
        Stop::Exited(ref s) => {
            // Whatever the command left running ends with the task.
            tree.after_exit();
            s.as_ref().ok().copied()
        }
        _ => {
            tree.kill(&mut child).await;
            None
        }
    };
    // Output readers end when every holder of the pipes is gone; a grandchild that
    // outlives its parent could hold them, so do not wait for ever.
    let output = match output {
        Some(o) => o,
        None => match tokio::time::timeout(Duration::from_secs(2), out_task).await {
            Ok(r) => r.unwrap_or_default(),
            Err(_) => {
                tree.kill(&mut child).await;
                (Vec::new(), false)
            }
        },
    };
    let mut err_task = err_task;
    let stderr_tail = match tokio::time::timeout(Duration::from_secs(2), &mut err_task).await {
        Ok(r) => r.unwrap_or_default(),
        Err(_) => {
            err_task.abort();
            Vec::new()
        }
    };
    let stderr_text = String::from_utf8_lossy(&stderr_tail).into_owned();
    let took = crate::util::short_duration(started.elapsed());
    match stop {
        Stop::Cancelled => Ending::Cancelled,
        Stop::Timeout => Ending::TimedOut {
            error: format!(
                "timed out after {}; the process tree was stopped",
                crate::util::short_duration(job.timeout)
            ),
            detail: json!({ "stderr": stderr_text }),
        },
        // Stopped for it, or exited having printed too much.
        Stop::TooMuchOutput | Stop::Exited(_) if output.1 => Ending::Failed {
            error: format!("output too large: more than {} bytes on stdout (worker.max_output_bytes)", job.max_output),
            detail: json!({ "stderr": stderr_text }),
        },
        Stop::TooMuchOutput | Stop::Exited(_) => {
            let stdout = output.0;
            let code = status.and_then(|s| s.code());
            if status.is_some_and(|s| s.success()) {
                let text = String::from_utf8_lossy(&stdout);
                let result = serde_json::from_str::<Value>(text.trim()).unwrap_or_else(|_| json!({ "stdout": text }));
                return Ending::Completed(result);
            }
            let how = match code {
                Some(c) => format!("exited with code {c}"),
                None => "was killed by a signal".to_string(),
            };
            let last_line = stderr_text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            let error = if last_line.is_empty() {
                format!("`{}` {how} after {took}", job.argv[0])
            } else {
                format!("`{}` {how} after {took}: {last_line}", job.argv[0])
            };
            Ending::Failed {
                error,
                detail: json!({ "exit_code": code, "stderr": stderr_text, "stdout": String::from_utf8_lossy(&stdout) }),
            }
        }
    }
}

/// The worker's own variables a command may see, besides those its skill declares.
#[cfg(not(windows))]
const ALLOWED: &[&str] =
    &["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TMP", "TEMP"];

/// Windows programs fail in odd ways without these (names are case-insensitive there).
#[cfg(windows)]
const ALLOWED: &[&str] = &[
    "PATH",
    "PATHEXT",
    "SystemRoot",
    "SystemDrive",
    "windir",
    "ComSpec",
    "USERPROFILE",
    "USERNAME",
    "USERDOMAIN",
    "HOMEDRIVE",
    "HOMEPATH",
    "APPDATA",
    "LOCALAPPDATA",
    "ProgramData",
    "ProgramFiles",
    "ProgramFiles(x86)",
    "ProgramW6432",
    "CommonProgramFiles",
    "CommonProgramFiles(x86)",
    "CommonProgramW6432",
    "PUBLIC",
    "ALLUSERSPROFILE",
    "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE",
    "PROCESSOR_IDENTIFIER",
    "OS",
    "TEMP",
    "TMP",
    "LANG",
    "TZ",
];

/// Secrets of the worker and of OpenClaw: withheld even from a skill that declares them.
const WITHHELD: &[&str] = &["OPENCLAW_TOKEN", "OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD"];

fn same_name(a: &str, b: &str) -> bool {
    if cfg!(windows) { a.eq_ignore_ascii_case(b) } else { a == b }
}

/// Whether a variable of the worker's is never given to a skill: its tokens, and every
/// configuration variable (`OPENCLAW_WORKER__TOKEN`, `OPENCLAW_AUTH__ADMIN_TOKEN`, …).
pub fn withheld(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    WITHHELD.iter().any(|w| *w == upper) || upper.strip_prefix("OPENCLAW_").is_some_and(|rest| rest.contains("__"))
}

/// The command's whole environment, from the worker's (`vars`): the allowlist, locale
/// variables (`LC_*`), the declared `pass` names, then the job's own variables.
pub fn environment(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    pass: &[String],
    own: &[(String, String)],
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let mut out: Vec<(std::ffi::OsString, std::ffi::OsString)> = vars
        .into_iter()
        .filter(|(k, _)| {
            let Some(k) = k.to_str() else { return false };
            let allowed =
                ALLOWED.iter().any(|a| same_name(a, k)) || k.starts_with("LC_") || pass.iter().any(|p| same_name(p, k));
            allowed && !withheld(k)
        })
        .collect();
    out.extend(own.iter().map(|(k, v)| (k.into(), v.into())));
    for name in pass.iter().filter(|p| withheld(p)) {
        warn_withheld(name);
    }
    out
}

/// Once per variable name: a skill asked for one of the worker's secrets.
fn warn_withheld(name: &str) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warned = crate::util::lock(&WARNED);
    if !warned.iter().any(|w| w == name) {
        warned.push(name.to_string());
        tracing::warn!(target: "openclaw::worker", variable = name, "a skill declares {name} in requires.env; the worker never passes its own or OpenClaw's tokens to skills, so the skill runs without it");
    }
}

/// A program named with a path is taken relative to the skill's folder; a bare name is
/// looked up on PATH (with PATHEXT on Windows), then in the folder.
fn resolve_program(program: &str, dir: &Path) -> PathBuf {
    if program.contains('/') || program.contains('\\') {
        let p = Path::new(program);
        return if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };
    }
    which::which(program)
        .or_else(|_| which::which_in(program, Some(dir), dir))
        .unwrap_or_else(|_| PathBuf::from(program))
}

/// The command, set up as every platform needs: folder, clean environment, piped stdio.
fn command(program: &Path, args: &[String], job: &Job) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&job.dir)
        .env_clear()
        .envs(environment(std::env::vars_os(), &job.pass_env, &job.env))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The warning at start when the skills this worker runs could read the coordinator's
/// admin token (the worker runs as a user that can read it).
pub fn warn_if_admin_token_readable(config: &crate::config::Config) {
    let path = crate::tokens::token_path(config, crate::tokens::ADMIN_TOKEN_FILE);
    if std::fs::File::open(&path).is_ok() {
        tracing::warn!(
            target: "openclaw::worker",
            path = %path.display(),
            "this worker can read the coordinator's admin token, so every skill it runs can too: run the worker as a user that cannot read the coordinator's data folder (docs/security.md, \"Running skills safely\")"
        );
    }
}

/// Makes this worker process harder for its own skills to look into (Linux: not dumpable,
/// so processes of the same user cannot read its `/proc/<pid>/environ` or memory, where
/// its tokens are).
pub fn protect_worker_process() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE) only changes this process's dumpable flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Reads up to `limit` bytes; returns whether there was more.
/// Reads up to `limit` bytes (passing them on to `lines` as they come); returns whether
/// there was more.
async fn read_capped(
    reader: Option<impl AsyncRead + Unpin>,
    limit: u64,
    lines: Option<StreamWriter>,
) -> (Vec<u8>, bool) {
    let Some(reader) = reader else {
        return (Vec::new(), false);
    };
    let mut buf = Vec::new();
    let mut limited = reader.take(limit + 1);
    read_chunks(&mut limited, lines, |chunk| buf.extend_from_slice(chunk)).await;
    if buf.len() as u64 > limit {
        buf.truncate(limit as usize);
        return (buf, true);
    }
    (buf, false)
}

/// Reads everything (passing it on to `lines` as it comes), keeping only the last `keep`
/// bytes.
async fn read_tail(reader: Option<impl AsyncRead + Unpin>, keep: usize, lines: Option<StreamWriter>) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    let mut tail: Vec<u8> = Vec::new();
    read_chunks(&mut reader, lines, |chunk| {
        tail.extend_from_slice(chunk);
        if tail.len() > keep * 2 {
            tail.drain(..tail.len() - keep);
        }
    })
    .await;
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    tail
}

/// Reads to the end, handing each chunk to `keep` and to `lines`.
async fn read_chunks(
    reader: &mut (impl AsyncRead + Unpin),
    mut lines: Option<StreamWriter>,
    mut keep: impl FnMut(&[u8]),
) {
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                keep(&chunk[..n]);
                if let Some(l) = lines.as_mut() {
                    l.write(&chunk[..n]);
                }
            }
        }
    }
    if let Some(l) = lines {
        l.finish();
    }
}

/// A task's process tree on Unix: the supervisor (or the command itself) leads a process
/// group; the lifeline's write end, when supervised, is held here and nowhere else.
#[cfg(unix)]
mod tree {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use tokio::process::Child;

    use super::{Job, KILL_GRACE, command};
    use crate::worker::supervisor::{LIFELINE_FD, SUPERVISE_ARG};

    pub struct Tree {
        pid: Option<i32>,
        /// Our end of the lifeline; closing it makes the supervisor kill the tree.
        lifeline: Option<OwnedFd>,
    }

    pub fn spawn(program: &Path, job: &Job, supervisor: Option<&PathBuf>) -> std::io::Result<(Child, Tree)> {
        let Some(supervisor) = supervisor else {
            let mut cmd = command(program, &job.argv[1..], job);
            cmd.process_group(0).kill_on_drop(true);
            let child = cmd.spawn()?;
            let pid = child.id().and_then(|p| i32::try_from(p).ok());
            return Ok((child, Tree { pid, lifeline: None }));
        };
        let (read, write) = lifeline()?;
        let mut args = vec![SUPERVISE_ARG.to_string(), "--".to_string(), program.to_string_lossy().into_owned()];
        args.extend(job.argv[1..].iter().cloned());
        let mut cmd = command(supervisor, &args, job);
        // Not kill_on_drop: dropping the lifeline below makes the supervisor clean up; a
        // SIGKILL at the same moment could stop it before it does.
        cmd.arg0("openclaw").process_group(0);
        let fd = read.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls: dup2 and fcntl on
        // descriptors this process owns.
        unsafe {
            cmd.pre_exec(move || {
                if fd == LIFELINE_FD {
                    // dup2 onto itself keeps close-on-exec: clear it by hand.
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, LIFELINE_FD) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(read);
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        Ok((child, Tree { pid, lifeline: Some(write) }))
    }

    /// A connected pair of sockets, both close-on-exec, so that no other child of the
    /// worker inherits them (atomically where the platform can, as std creates them).
    /// The supervisor reads end-of-file from its end once ours is closed.
    fn lifeline() -> std::io::Result<(OwnedFd, OwnedFd)> {
        let (theirs, ours) = std::os::unix::net::UnixStream::pair()?;
        Ok((theirs.into(), ours.into()))
    }

    fn signal_group(pid: Option<i32>, signal: i32) {
        if let Some(pid) = pid {
            // SAFETY: kill(2) on the process group the child leads.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }

    impl Tree {
        /// The command exited: a supervisor has already killed what it left; without one,
        /// its process group gets SIGKILL.
        pub fn after_exit(&mut self) {
            if self.lifeline.take().is_none() {
                signal_group(self.pid, libc::SIGKILL);
            }
        }

        /// Timeout or cancel: SIGTERM, a grace, then the whole tree is killed.
        pub async fn kill(&mut self, child: &mut Child) {
            if self.pid.is_none() {
                let _ = child.kill().await;
                return;
            }
            // The supervisor passes SIGTERM on to the command's group.
            signal_group(self.pid, libc::SIGTERM);
            let mut exited = tokio::time::timeout(KILL_GRACE, child.wait()).await.is_ok();
            if let Some(lifeline) = self.lifeline.take() {
                drop(lifeline);
                exited = exited || tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_ok();
            }
            if !exited {
                signal_group(self.pid, libc::SIGKILL);
                let _ = child.wait().await;
            }
        }
    }
}

/// A task's process tree on Windows: a job object with kill-on-close holds the command and
/// everything it starts.
#[cfg(windows)]
mod tree {
    use std::path::{Path, PathBuf};

    use tokio::process::Child;

    use super::{Job, command};

    pub struct Tree {
        job: Option<job::Job>,
    }

    pub fn spawn(program: &Path, job: &Job, _supervisor: Option<&PathBuf>) -> std::io::Result<(Child, Tree)> {
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        let mut cmd = command(program, &job.argv[1..], job);
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP).kill_on_drop(true);
        let child = cmd.spawn()?;
        // A process the command starts in the moment before it joins the job escapes it;
        // everything started later is in the job.
        let job = child.raw_handle().and_then(|process| match job::Job::for_process(process as _) {
            Ok(job) => Some(job),
            Err(e) => {
                tracing::warn!(target: "openclaw::worker", error = %e, "cannot put the task's process in a job object; processes it starts may outlive a killed worker");
                None
            }
        });
        Ok((child, Tree { job }))
    }

    impl Tree {
        /// The command exited: what it left running in the job ends too.
        pub fn after_exit(&mut self) {
            if let Some(job) = self.job.take() {
                job.terminate();
            }
        }

        /// Timeout or cancel: the whole job is terminated.
        pub async fn kill(&mut self, child: &mut Child) {
            self.after_exit();
            let _ = child.kill().await;
        }
    }

    /// The job object, in a module of its own: the only Windows API calls of the runner.
    pub mod job {
        use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
        use windows_sys::Win32::System::JobObjects::{
            AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
            JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation, SetInformationJobObject,
            TerminateJobObject,
        };

        /// An owned job handle; closing it kills every process in the job.
        pub struct Job(HANDLE);

        // SAFETY: a job handle may be used and closed from any thread.
        unsafe impl Send for Job {}
        unsafe impl Sync for Job {}

        impl Job {
            /// A new anonymous job with kill-on-close, holding `process`.
            pub fn for_process(process: HANDLE) -> std::io::Result<Job> {
                // SAFETY: no security attributes, no name: an anonymous job we own.
                let handle = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
                if handle.is_null() {
                    return Err(std::io::Error::last_os_error());
                }
                let job = Job(handle);
                let mut limits = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
                limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                // SAFETY: `limits` is the structure this information class expects, and
                // outlives the call.
                let set = unsafe {
                    SetInformationJobObject(
                        job.0,
                        JobObjectExtendedLimitInformation,
                        &limits as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION as *const core::ffi::c_void,
                        std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                    )
                };
                if set == 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: both handles are valid; the process handle stays owned by the caller.
                if unsafe { AssignProcessToJobObject(job.0, process) } == 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(job)
            }

            /// Kills every process in the job now.
            pub fn terminate(&self) {
                // SAFETY: a valid job handle we own.
                unsafe {
                    TerminateJobObject(self.0, 1);
                }
            }
        }

        impl Drop for Job {
            fn drop(&mut self) {
                // SAFETY: closing the handle we own, once.
                unsafe {
                    CloseHandle(self.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(script: &str) -> Job {
        Job {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            dir: std::env::temp_dir(),
            stdin: br#"{"task_id":"t1","parameters":{"n":2}}"#.to_vec(),
            env: vec![("OPENCLAW_TASK_ID".into(), "t1".into())],
            pass_env: vec![],
            timeout: Duration::from_secs(10),
            max_output: 1024,
            output: None,
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn printed_lines_reach_the_sink_from_both_streams() {
        let (sink, mut rx) = OutputSink::new();
        let mut j = job("echo '{\"ok\":'; echo err1 >&2; echo err2 >&2; printf ' true}'");
        j.output = Some(sink);
        assert_eq!(run_job(j, CancellationToken::new()).await, Ending::Completed(json!({"ok": true})));
        let mut got = Vec::new();
        while let Some(l) = rx.recv().await {
            got.push((l.stream, l.text));
        }
        let of = |s| got.iter().filter(|(st, _)| *st == s).map(|(_, t)| t.as_str()).collect::<Vec<_>>();
        assert_eq!(of(OutputStream::Stdout), ["{\"ok\":", " true}"], "a last line without a newline too");
        assert_eq!(of(OutputStream::Stderr), ["err1", "err2"], "a completed task keeps its stderr");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn stdin_in_json_out() {
        let ending = run_job(
            job(r#"read line; echo "{\"got\": $line, \"id\": \"$OPENCLAW_TASK_ID\"}""#),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(ending, Ending::Completed(json!({"got": {"task_id": "t1", "parameters": {"n": 2}}, "id": "t1"})));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn text_output_is_wrapped_and_failures_carry_stderr() {
        assert_eq!(
            run_job(job("echo hello"), CancellationToken::new()).await,
            Ending::Completed(json!({"stdout": "hello\n"}))
        );
        match run_job(job("echo oops >&2; exit 3"), CancellationToken::new()).await {
            Ending::Failed { error, detail } => {
                assert!(error.contains("exited with code 3") && error.contains("oops"), "{error}");
                assert_eq!(detail["exit_code"], 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn too_much_output_fails() {
        match run_job(job("head -c 5000 /dev/zero"), CancellationToken::new()).await {
            Ending::Failed { error, .. } => assert!(error.contains("output too large"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn timeout_stops_the_tree() {
        let mut j = job("sleep 30 & echo $! > grandchild.pid; wait");
        let dir = tempfile::tempdir().unwrap();
        j.dir = dir.path().into();
        j.timeout = Duration::from_millis(500);
        assert!(matches!(run_job(j, CancellationToken::new()).await, Ending::TimedOut { .. }));
        let pid: i32 = std::fs::read_to_string(dir.path().join("grandchild.pid")).unwrap().trim().parse().unwrap();
        assert!(gone_soon(pid).await, "grandchild {pid} survived the timeout");
    }

    /// Whether a process is gone (or a zombie nobody reaped yet) within two seconds.
    #[cfg(unix)]
    async fn gone_soon(pid: i32) -> bool {
        for _ in 0..40 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
            let gone = match stat {
                Ok(s) => s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
                // SAFETY: signal 0 only checks whether the process exists.
                Err(_) => (unsafe { libc::kill(pid, 0) }) != 0,
            };
            if gone {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_missing_program_fails_cleanly() {
        let mut j = job("");
        j.argv = vec!["zzz-no-such-program".into()];
        assert!(matches!(run_job(j, CancellationToken::new()).await, Ending::Failed { .. }));
    }

    #[test]
    fn the_environment_is_an_allowlist_without_tokens() {
        let worker: Vec<(std::ffi::OsString, std::ffi::OsString)> = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/w"),
            ("LC_ALL", "C.UTF-8"),
            ("OPENCLAW_TOKEN", "join"),
            ("OPENCLAW_GATEWAY_TOKEN", "gw"),
            ("OPENCLAW_WORKER__TOKEN", "join"),
            ("OPENCLAW_AUTH__ADMIN_TOKEN", "admin"),
            ("AWS_SECRET_ACCESS_KEY", "not declared"),
            ("API_KEY", "declared"),
        ]
        .iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let pass = vec!["API_KEY".to_string(), "OPENCLAW_GATEWAY_TOKEN".to_string(), "UNSET_ONE".to_string()];
        let own = vec![("OPENCLAW_TASK_ID".to_string(), "t1".to_string())];
        let env = environment(worker, &pass, &own);
        let mut names: Vec<String> = env.iter().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["API_KEY", "HOME", "LC_ALL", "OPENCLAW_TASK_ID", "PATH"]);
    }
}
