//! Live output of a running attempt: the lines a task prints on stdout and stderr, with
//! the secrets this worker knows replaced by `[REDACTED]`, sent to the coordinator in
//! batches (`POST /api/v1/nodes/{node}/tasks/{task}/output`) while the task runs.
//!
//! The runner hands bytes to an [`OutputSink`] (never blocking: a slow coordinator must not
//! stall the task's pipes); [`stream`] turns them into batches — one request per
//! [`FLUSH_EVERY`] or [`BATCH_BYTES`] of lines, whichever comes first, one request at a
//! time. What the coordinator does not take in time waits, up to [`PENDING_BYTES`]; beyond
//! that the oldest lines are dropped and a note says how many. Streaming stops for good
//! when the coordinator says the attempt is no longer this node's (`stale_attempt`,
//! `unknown_task`) or does not know the route (an older coordinator). Once the task has
//! ended, the last lines are sent before the result (bounded by [`FINAL_FLUSH`]), so the
//! coordinator has every line when it learns the end.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;

use super::session::Session;
use crate::client::ClientError;
use crate::model::{ErrorCode, NewOutputLine, OutputBatch, OutputStream, Timestamp};

/// How long lines may wait before they are sent.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// A batch is sent at once when its lines reach this many bytes.
pub const BATCH_BYTES: usize = 64 * 1024;
/// The most bytes of lines waiting for the coordinator; older ones are dropped beyond it.
pub const PENDING_BYTES: usize = 4 * BATCH_BYTES;
/// Lines longer than this are sent in pieces (the coordinator takes at most 16 KiB).
pub const MAX_LINE: usize = 8 * 1024;
/// How long the last lines may take to reach the coordinator once the task has ended.
pub const FINAL_FLUSH: Duration = Duration::from_secs(10);

/// Replaces known secrets in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// Secrets shorter than 8 characters are ignored (they would match ordinary words).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 8).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// A JSON value with the secrets in its strings (keys too) replaced.
    pub fn redact_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(&s).into_owned()),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.redact_json(v)).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter().map(|(k, v)| (self.redact(&k).into_owned(), self.redact_json(v))).collect(),
            ),
            other => other,
        }
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), "[REDACTED]"));
            }
        }
        out
    }
}

/// What this worker knows that must not leave it through a task's output: its join token
/// and node secret, the gateway's token, the tokens of its config and of the token files it
/// can read, and its environment's token variables (`OPENCLAW_TOKEN`, every config
/// variable `OPENCLAW_<SECTION>__<KEY>`, and any other `OPENCLAW_*` named like a secret).
pub fn known_secrets(config: &crate::config::Config, session: &Session, gateway: &super::gateway::Gateway) -> Redactor {
    let mut secrets = session.secrets();
    secrets.extend(gateway.token_to_redact());
    let a = &config.auth;
    let w = &config.worker;
    secrets.extend(
        [&a.admin_token, &a.worker_token, &a.tasks_token, &w.token, &w.gateway_token].into_iter().flatten().cloned(),
    );
    for file in [crate::tokens::ADMIN_TOKEN_FILE, crate::tokens::WORKER_TOKEN_FILE, crate::tokens::TASKS_TOKEN_FILE] {
        if let Ok(Some(t)) = crate::tokens::read_token_file(&crate::tokens::token_path(config, file)) {
            secrets.push(t);
        }
    }
    secrets.extend(crate::config::utf8_vars().filter(|(k, _)| secret_variable(k)).map(|(_, v)| v));
    Redactor::new(secrets)
}

/// Whether an environment variable of the worker's holds a secret.
fn secret_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    super::runner::exec::withheld(name)
        || (upper.starts_with("OPENCLAW_") && ["TOKEN", "SECRET", "PASSWORD", "KEY"].iter().any(|w| upper.contains(w)))
}

/// Splits one stream's bytes into lines (without `\n` or `\r\n`), pieces of at most
/// [`MAX_LINE`] bytes, cut at character boundaries; invalid UTF-8 is replaced.
#[derive(Debug)]
struct Lines {
    stream: OutputStream,
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, mut bytes: &[u8], out: &mut Vec<(OutputStream, String)>) {
        while let Some(i) = bytes.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&bytes[..i]);
            if self.partial.last() == Some(&b'\r') {
                self.partial.pop();
            }
            self.emit(out);
            bytes = &bytes[i + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() > MAX_LINE {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            let mut cut = MAX_LINE.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let rest = text.as_bytes()[cut..].to_vec();
            out.push((self.stream, text[..cut].to_string()));
            self.partial = rest;
        }
    }

    fn finish(&mut self, out: &mut Vec<(OutputStream, String)>) {
        if !self.partial.is_empty() {
            self.emit(out);
        }
    }

    fn emit(&mut self, out: &mut Vec<(OutputStream, String)>) {
        out.push((self.stream, String::from_utf8_lossy(&self.partial).into_owned()));
        self.partial.clear();
    }
}

/// Where a runner writes what its task prints. Cheap to clone; never blocks.
#[derive(Debug, Clone)]
pub struct OutputSink {
    tx: mpsc::UnboundedSender<NewOutputLine>,
}

/// One stream's side of a sink: splits bytes into lines and passes them on.
#[derive(Debug)]
pub struct StreamWriter {
    sink: OutputSink,
    lines: Lines,
}

impl OutputSink {
    /// A sink and the receiving end that [`stream`] reads.
    pub fn new() -> (OutputSink, mpsc::UnboundedReceiver<NewOutputLine>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (OutputSink { tx }, rx)
    }

    /// A writer for one of the task's streams.
    pub fn writer(&self, stream: OutputStream) -> StreamWriter {
        StreamWriter { sink: self.clone(), lines: Lines { stream, partial: Vec::new() } }
    }

    /// A whole line (an agent's answer, a note of the worker's).
    pub fn line(&self, stream: OutputStream, text: String) {
        let _ = self.tx.send(NewOutputLine { stream, text, at: Timestamp::now() });
    }
}

impl StreamWriter {
    /// Bytes as the task printed them.
    pub fn write(&mut self, bytes: &[u8]) {
        let mut done = Vec::new();
        self.lines.push(bytes, &mut done);
        self.send(done);
    }

    /// The stream ended: a last line without a newline is passed on too.
    pub fn finish(mut self) {
        let mut done = Vec::new();
        self.lines.finish(&mut done);
        self.send(done);
    }

    fn send(&self, lines: Vec<(OutputStream, String)>) {
        for (stream, text) in lines {
            self.sink.line(stream, text);
        }
    }
}

/// Lines waiting for the coordinator, bounded by [`PENDING_BYTES`]. Each line has its
/// number in the attempt (from 0): a batch says the number of its first line, so that the
/// coordinator keeps a batch sent again (its answer lost) only once.
#[derive(Debug, Default)]
struct Pending {
    lines: VecDeque<NewOutputLine>,
    bytes: usize,
    /// The number of `lines[0]`.
    front: u64,
    /// Lines dropped since the last batch went out.
    dropped: u64,
}

impl Pending {
    fn push(&mut self, line: NewOutputLine) {
        self.bytes += line.text.len();
        self.lines.push_back(line);
        while self.bytes > PENDING_BYTES {
            let Some(old) = self.lines.pop_front() else { break };
            self.bytes -= old.text.len();
            self.front += 1;
            self.dropped += 1;
        }
    }

    /// The next batch: up to [`BATCH_BYTES`] of the oldest lines, after a note of what was
    /// dropped (which takes the number of the last dropped line). They stay pending until
    /// [`Pending::sent`].
    fn batch(&self, attempt: u32) -> OutputBatch {
        OutputBatch { attempt, first: Some(self.front - u64::from(self.dropped > 0)), lines: self.lines() }
    }

    fn lines(&self) -> Vec<NewOutputLine> {
        let mut out = Vec::new();
        if self.dropped > 0 {
            out.push(NewOutputLine {
                stream: OutputStream::Stderr,
                text: format!(
                    "[openclaw worker] {} earlier lines were dropped: the coordinator did not take them in time",
                    self.dropped
                ),
                at: Timestamp::now(),
            });
        }
        let mut size = 0;
        for line in &self.lines {
            if size > 0 && size + line.text.len() > BATCH_BYTES {
                break;
            }
            size += line.text.len();
            out.push(line.clone());
        }
        out
    }

    /// The coordinator took `batch` (as [`Pending::batch`] made it).
    fn sent(&mut self, batch: &[NewOutputLine]) {
        let taken = batch.len() - usize::from(self.dropped > 0);
        self.dropped = 0;
        for _ in 0..taken {
            if let Some(l) = self.lines.pop_front() {
                self.bytes -= l.text.len();
                self.front += 1;
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0
    }
}

/// What a failed send means for the lines.
enum Refused {
    /// Try again later (the coordinator is away, busy, or this node is registering again).
    Later,
    /// These lines can never be taken (malformed, too large): drop them and go on.
    Drop,
    /// The attempt is no longer this node's, or the coordinator has no such route: stop.
    Stop,
}

fn classify(e: &ClientError) -> Refused {
    match e.code() {
        Some(ErrorCode::StaleAttempt | ErrorCode::UnknownTask | ErrorCode::NotFound | ErrorCode::MethodNotAllowed) => {
            Refused::Stop
        }
        Some(ErrorCode::BadRequest | ErrorCode::PayloadTooLarge) => Refused::Drop,
        _ => Refused::Later,
    }
}

/// Sends the lines `rx` receives for one attempt until the runner drops its sink, then the
/// rest (for at most [`FINAL_FLUSH`]). Returns when everything was sent or given up.
pub async fn stream(
    session: &Session,
    node: &str,
    task: &str,
    attempt: u32,
    mut rx: mpsc::UnboundedReceiver<NewOutputLine>,
    redactor: Redactor,
) {
    let mut pending = Pending::default();
    let mut open = true;
    // When the waiting lines go out (set by the first one, and after each send).
    let mut due: Option<tokio::time::Instant> = None;
    let mut failures = 0u32;
    let mut final_by = tokio::time::Instant::now();
    loop {
        let now = tokio::time::Instant::now();
        let flush = !pending.is_empty()
            && (!open || due.is_some_and(|d| now >= d) || (pending.bytes >= BATCH_BYTES && failures == 0));
        if !flush {
            if !open {
                return;
            }
            tokio::select! {
                line = rx.recv() => match line {
                    Some(mut line) => {
                        if let Cow::Owned(text) = redactor.redact(&line.text) {
                            line.text = text;
                        }
                        pending.push(line);
                        due.get_or_insert(now + FLUSH_EVERY);
                    }
                    None => {
                        open = false;
                        final_by = now + FINAL_FLUSH;
                    }
                },
                _ = sleep_until(due.filter(|_| !pending.is_empty())) => {}
            }
            continue;
        }
        if !open && now >= final_by {
            tracing::warn!(target: "openclaw::worker", task_id = task, lines = pending.lines.len(), "the coordinator did not take the last output lines of this task in time; they are not kept");
            return;
        }
        let body = pending.batch(attempt);
        let sent = match session.current() {
            Some(client) => client.push_output(node, task, &body).await.map_err(|e| (classify(&e), e.to_string())),
            None => Err((Refused::Later, "not registered".to_string())),
        };
        match sent {
            Ok(_) => {
                pending.sent(&body.lines);
                failures = 0;
                due = Some(tokio::time::Instant::now() + FLUSH_EVERY);
            }
            Err((Refused::Drop, why)) => {
                tracing::warn!(target: "openclaw::worker", task_id = task, error = %why, "the coordinator refused a batch of output lines; dropping it");
                pending.sent(&body.lines);
            }
            Err((Refused::Stop, why)) => {
                tracing::debug!(target: "openclaw::worker", task_id = task, error = %why, "the coordinator takes no output for this attempt; not sending more");
                // Keep taking what the runner writes, so that it never notices.
                while open && rx.recv().await.is_some() {}
                return;
            }
            Err((Refused::Later, _)) => {
                failures += 1;
                let wait = crate::util::backoff(FLUSH_EVERY, Duration::from_secs(5), failures);
                due = Some(tokio::time::Instant::now() + wait);
                if !open {
                    tokio::time::sleep(wait.min(final_by.saturating_duration_since(tokio::time::Instant::now()))).await;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut l = Lines { stream: OutputStream::Stdout, partial: Vec::new() };
        let mut out = Vec::new();
        for c in chunks {
            l.push(c, &mut out);
        }
        l.finish(&mut out);
        out.into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn bytes_become_lines_wherever_they_are_cut() {
        assert_eq!(split(&[b"a\nb", b"c\r\n\nd"]), ["a", "bc", "", "d"]);
        assert_eq!(split(&[b"caf\xc3", b"\xa9\n"]), ["café"]);
        let long = "é".repeat(MAX_LINE);
        let pieces = split(&[long.as_bytes(), b"\n"]);
        assert!(pieces.iter().all(|p| p.len() <= MAX_LINE), "{:?}", pieces.iter().map(String::len).collect::<Vec<_>>());
        assert_eq!(pieces.concat(), long);
    }

    #[test]
    fn secrets_are_redacted_longest_first() {
        let r = Redactor::new(["secret-token-1".to_string(), "secret-token-12345".into(), "short".into()]);
        assert_eq!(r.redact("a secret-token-12345 b secret-token-1 short"), "a [REDACTED] b [REDACTED] short");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        let v = serde_json::json!({"stderr": "token secret-token-1 leaked", "n": [1, "secret-token-12345"]});
        assert_eq!(r.redact_json(v), serde_json::json!({"stderr": "token [REDACTED] leaked", "n": [1, "[REDACTED]"]}));
    }

    fn line(n: usize) -> NewOutputLine {
        NewOutputLine { stream: OutputStream::Stdout, text: "x".repeat(n), at: Timestamp(0) }
    }

    #[test]
    fn pending_lines_are_bounded_and_batched() {
        let mut p = Pending::default();
        for _ in 0..5 {
            p.push(line(BATCH_BYTES));
        }
        assert_eq!((p.lines.len(), p.dropped), (4, 1));
        let batch = p.batch(1);
        // The note takes the number of the dropped line 0; line 1 follows it.
        assert_eq!((batch.first, batch.lines.len()), (Some(0), 2), "the note and one full line");
        assert!(batch.lines[0].text.contains("1 earlier lines were dropped"));
        p.sent(&batch.lines);
        assert_eq!((p.lines.len(), p.dropped, p.bytes), (3, 0, 3 * BATCH_BYTES));
        assert_eq!(p.batch(1).first, Some(2));
        let mut p = Pending::default();
        for _ in 0..10 {
            p.push(line(100));
        }
        assert_eq!((p.batch(1).first, p.batch(1).lines.len()), (Some(0), 10));
    }
}
