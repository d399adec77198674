//! The exec runner: a skill's command as a child process in the skill's folder.
//!
//! The task arrives as JSON on stdin; stdout is the result (JSON when it parses, else
//! `{"stdout": text}`); the last 64 KiB of stderr are kept; a non-zero exit is a failure.
//! When the command exits, anything it left running in its process group is stopped (Unix).
//! Stdout beyond `worker.max_output_bytes` fails the attempt ("output too large"). Timeout
//! and cancel end the whole process tree: on Unix the child leads its own process group,
//! which gets SIGTERM, then SIGKILL after a grace; on Windows `taskkill /T /F`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

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
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_output: u64,
}

/// How it ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Completed(Value),
    Failed { error: String, detail: Value },
    TimedOut { error: String, detail: Value },
    Cancelled,
}

/// Runs the job to its end, its timeout, or `cancel`.
pub async fn run(job: Job, cancel: CancellationToken) -> Ending {
    let started = Instant::now();
    let program = resolve_program(&job.argv[0], &job.dir);
    let mut cmd = Command::new(&program);
    cmd.args(&job.argv[1..])
        .current_dir(&job.dir)
        .env_remove("OPENCLAW_TOKEN")
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    new_process_group(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ending::Failed {
                error: format!("cannot start `{}` in {}: {e}", job.argv[0], job.dir.display()),
                detail: json!({}),
            };
        }
    };
    let pid = child.id();
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
    let out_task = tokio::spawn(async move { read_capped(stdout, limit).await });
    let err_task = tokio::spawn(async move { read_tail(stderr, STDERR_TAIL).await });

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
            // Whatever the command left running in its group ends with the task.
            stop_leftovers(pid);
            s.as_ref().ok().copied()
        }
        _ => {
            kill_tree(pid, &mut child).await;
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
                kill_tree(pid, &mut child).await;
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

/// Reads up to `limit` bytes; returns whether there was more.
async fn read_capped(reader: Option<impl AsyncRead + Unpin>, limit: u64) -> (Vec<u8>, bool) {
    let Some(reader) = reader else {
        return (Vec::new(), false);
    };
    let mut buf = Vec::new();
    let mut limited = reader.take(limit + 1);
    let _ = limited.read_to_end(&mut buf).await;
    if buf.len() as u64 > limit {
        buf.truncate(limit as usize);
        return (buf, true);
    }
    (buf, false)
}

/// Reads everything, keeping only the last `keep` bytes.
async fn read_tail(reader: Option<impl AsyncRead + Unpin>, keep: usize) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > keep * 2 {
                    tail.drain(..tail.len() - keep);
                }
            }
        }
    }
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    tail
}

#[cfg(unix)]
fn new_process_group(cmd: &mut Command) {
    cmd.process_group(0);
}

#[cfg(windows)]
fn new_process_group(cmd: &mut Command) {
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
}

/// After the leader exited: SIGKILL to what is left of its process group.
#[cfg(unix)]
fn stop_leftovers(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) on the group the child led; harmless when the group is empty.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// On Windows the tree cannot be found once its root is gone; leftovers keep running.
#[cfg(windows)]
fn stop_leftovers(_pid: Option<u32>) {}

/// Stops the child and everything it started.
#[cfg(unix)]
async fn kill_tree(pid: Option<u32>, child: &mut tokio::process::Child) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        let _ = child.kill().await;
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group the child leads.
    unsafe {
        libc::kill(-pid, libc::SIGTERM);
    }
    let exited = tokio::time::timeout(KILL_GRACE, child.wait()).await.is_ok();
    // Grandchildren may ignore SIGTERM or outlive the leader: the group gets SIGKILL anyway.
    // SAFETY: as above.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    if !exited {
        let _ = child.wait().await;
    }
}

#[cfg(windows)]
async fn kill_tree(pid: Option<u32>, child: &mut tokio::process::Child) {
    if let Some(pid) = pid {
        let _ = Command::new("taskkill").args(["/T", "/F", "/PID", &pid.to_string()]).output().await;
    }
    let _ = child.kill().await;
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
            timeout: Duration::from_secs(10),
            max_output: 1024,
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn stdin_in_json_out() {
        let ending =
            run(job(r#"read line; echo "{\"got\": $line, \"id\": \"$OPENCLAW_TASK_ID\"}""#), CancellationToken::new())
                .await;
        assert_eq!(ending, Ending::Completed(json!({"got": {"task_id": "t1", "parameters": {"n": 2}}, "id": "t1"})));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn text_output_is_wrapped_and_failures_carry_stderr() {
        assert_eq!(
            run(job("echo hello"), CancellationToken::new()).await,
            Ending::Completed(json!({"stdout": "hello\n"}))
        );
        match run(job("echo oops >&2; exit 3"), CancellationToken::new()).await {
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
        match run(job("head -c 5000 /dev/zero"), CancellationToken::new()).await {
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
        assert!(matches!(run(j, CancellationToken::new()).await, Ending::TimedOut { .. }));
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
        assert!(matches!(run(j, CancellationToken::new()).await, Ending::Failed { .. }));
    }
}
