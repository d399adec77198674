//! Reading Server-Sent Events as a client, the way a browser's `EventSource` does: a
//! parser for the wire format, and a source that keeps a stream open across dropped
//! connections, resuming with `Last-Event-ID` set to the last `id:` it saw.
//!
//! The source reconnects on its own when the connection drops, when the server ends the
//! stream, or when nothing — not even a keep-alive — arrived for [`IDLE_LIMIT`]. A stream
//! the server ends on purpose (`event: error` with `lagged` or `stream_lifetime`) is resumed
//! at once and quietly: no backoff, no [`Status::Reconnecting`]. An answer that is an error the client caused (4xx) ends it with that
//! error; everything else is retried with backoff.

use std::collections::VecDeque;
use std::time::Duration;

use crate::api::Route;
use crate::client::{Client, ClientError};
use crate::model::StreamError;

/// How long a stream may stay silent (the server sends a keep-alive every 15 s) before
/// the source takes the connection for dead and reconnects.
pub const IDLE_LIMIT: Duration = Duration::from_secs(45);

/// One dispatched message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The last `id:` seen so far in the stream (it carries over, as in the spec).
    pub id: Option<String>,
    /// `message` when the server named none.
    pub event: String,
    pub data: String,
}

/// The SSE line format, fed in chunks of any size.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` starting this one belongs to it.
    after_cr: bool,
    last_id: Option<String>,
    event: String,
    data: String,
    has_data: bool,
}

impl Parser {
    /// The messages completed by `chunk`.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        for &b in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    if let Some(m) = self.line_done(&String::from_utf8_lossy(&line)) {
                        out.push(m);
                    }
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn line_done(&mut self, line: &str) -> Option<Message> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if !std::mem::take(&mut self.has_data) {
                return None;
            }
            let event = if event.is_empty() { "message".to_string() } else { event };
            return Some(Message { id: self.last_id.clone(), event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            _ => {}
        }
        None
    }

    /// The last `id:` seen.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }
}

/// What a source reports besides messages, for a client that tells its user.
#[derive(Debug)]
pub enum Status {
    /// The connection dropped; the source is reconnecting (the cause).
    Reconnecting(String),
    /// Connected (again).
    Connected,
}

/// A stream kept open across dropped connections.
pub struct EventSource {
    client: Client,
    route: Route,
    parser: Parser,
    response: Option<reqwest::Response>,
    ready: VecDeque<Message>,
    failures: u32,
    /// The server said the stream ends on purpose; its end is no failure.
    planned_end: bool,
}

impl EventSource {
    /// A source for `route` (not connected until the first [`EventSource::next`]);
    /// `last_id` resumes after that id.
    pub fn new(client: Client, route: Route, last_id: Option<String>) -> EventSource {
        let parser = Parser { last_id, ..Parser::default() };
        EventSource { client, route, parser, response: None, ready: VecDeque::new(), failures: 0, planned_end: false }
    }

    /// The last `id:` received (what a reconnect resumes after).
    pub fn last_id(&self) -> Option<&str> {
        self.parser.last_id()
    }

    /// The next message, or a change of the connection's state. An error is final: the
    /// server refused the request itself (bad filter, bad token, unknown task).
    pub async fn next(&mut self) -> Result<Result<Message, Status>, ClientError> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                if m.event == "error" {
                    self.planned_end = serde_json::from_str::<StreamError>(&m.data).is_ok_and(|e| e.resume_at_once());
                }
                return Ok(Ok(m));
            }
            let Some(response) = self.response.as_mut() else {
                if self.failures > 0 {
                    let delay =
                        crate::util::backoff(Duration::from_millis(500), Duration::from_secs(10), self.failures);
                    tokio::time::sleep(delay).await;
                }
                match self.client.open_stream(&self.route, self.parser.last_id()).await {
                    Ok(r) => {
                        self.response = Some(r);
                        self.failures = 0;
                        self.planned_end = false;
                        // A new connection starts a new parse (a half message is dropped).
                        self.parser = Parser { last_id: self.parser.last_id.take(), ..Parser::default() };
                        return Ok(Err(Status::Connected));
                    }
                    Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => return Err(e),
                    Err(e) => {
                        self.failures += 1;
                        return Ok(Err(Status::Reconnecting(e.to_string())));
                    }
                }
            };
            let why = match tokio::time::timeout(IDLE_LIMIT, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    self.ready.extend(self.parser.feed(&chunk));
                    continue;
                }
                Ok(Ok(None)) if std::mem::take(&mut self.planned_end) => {
                    self.response = None;
                    continue;
                }
                Ok(Ok(None)) => "the coordinator ended the stream".to_string(),
                Ok(Err(e)) => format!("the connection broke: {}", crate::client::root_cause(&e)),
                Err(_) => format!("nothing came for {}s", IDLE_LIMIT.as_secs()),
            };
            self.response = None;
            self.failures += 1;
            return Ok(Err(Status::Reconnecting(why)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&str]) -> Vec<Message> {
        let mut p = Parser::default();
        chunks.iter().flat_map(|c| p.feed(c.as_bytes())).collect()
    }

    fn msg(id: Option<&str>, event: &str, data: &str) -> Message {
        Message { id: id.map(String::from), event: event.into(), data: data.into() }
    }

    #[test]
    fn messages_split_anywhere_parse_the_same() {
        let text = "id: 7\nevent: task\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: gap\ndata: {}\n\n";
        let whole = parse(&[text]);
        assert_eq!(whole, vec![msg(Some("7"), "task", "{\"a\":1}"), msg(Some("7"), "gap", "{}")]);
        for cut in 1..text.len() {
            assert_eq!(parse(&[&text[..cut], &text[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn line_endings_data_lines_and_defaults() {
        assert_eq!(
            parse(&["data: a\r\ndata:b\r\rdata\n\nid: 3\n\n"]),
            vec![msg(None, "message", "a\nb"), msg(None, "message", "")]
        );
        let mut p = Parser::default();
        p.feed(b"id: 3\n\n");
        assert_eq!(p.last_id(), Some("3"), "an id without data still counts for resuming");
        assert_eq!(parse(&["data: x\r", "\n\r\n"]), vec![msg(None, "message", "x")]);
    }
}
