//! What a standby coordinator answers on its listener while another leads the shared store
//! (see [`super::leader`]): `GET /health` says `standby` and names the leader; the
//! dashboard's pages redirect (307) to the same page on the leader; every other route
//! answers `503 not_leader` with a `Location` on the leader (the same path and query) and a
//! message naming it — or, while nobody leads, without a `Location` and with `Retry-After`.
//!
//! Invariants: a standby holds no state, no writer and no token, so it reads nothing from a
//! request but its head (the body is never read) and tells anyone only what `/health`
//! tells anyone. It answers only once a claim did not win, and closes every connection after
//! its answer (`Connection: close`), so no client holds one when the same listener starts
//! serving as the leader.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::header::{HeaderValue, LOCATION};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::http::{self, Response};
use crate::api::Route;
use crate::config::Config;
use crate::model::{CoordinatorRole, ErrorCode, LeaderInfo, ServiceHealth, Timestamp};

/// At most this many connections at once; past it a connection is closed unanswered (a
/// standby serves health checks and clients on their way to the leader, nothing more).
const MAX_CONNECTIONS: usize = 256;

/// Answers as a standby on `listener` until `stop` fires, then closes its connections
/// (bounded) and returns, leaving the listener open.
pub async fn serve(
    listener: &TcpListener,
    config: &Config,
    leader: Arc<Mutex<Option<LeaderInfo>>>,
    stop: CancellationToken,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let http1 = http::http1(&config.coordinator);
    let tls = match (&config.coordinator.tls_cert, &config.coordinator.tls_key) {
        (Some(cert), Some(key)) => super::tls::acceptor(cert, key).ok(),
        _ => None,
    };
    loop {
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else { continue };
        let leader = leader.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let who = crate::util::lock(&leader).clone();
            async move { Ok::<_, std::convert::Infallible>(answer(req.method(), req.uri(), who)) }
        });
        let watcher = graceful.watcher();
        let http1 = http1.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let _ = watcher.watch(http1.serve_connection(TokioIo::new(stream), service)).await;
                }
                Some(acceptor) => {
                    if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                    {
                        let _ = watcher.watch(http1.serve_connection(TokioIo::new(stream), service)).await;
                    }
                }
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}

/// The answer to one request.
fn answer(method: &Method, uri: &hyper::Uri, leader: Option<LeaderInfo>) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut response = match Route::parse(method, uri.path(), uri.query().unwrap_or("")) {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Route::Health) => http::json(
            StatusCode::OK,
            &ServiceHealth {
                status: "healthy".into(),
                timestamp: Timestamp::now(),
                service: "openclaw coordinator".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                role: CoordinatorRole::Standby,
                leader: leader.clone(),
            },
        ),
        Ok(route) => match &leader {
            Some(l) => {
                let location = format!("{}{path_and_query}", l.url);
                let mut r = if matches!(route, Route::Dashboard | Route::Ui | Route::Asset { .. }) {
                    http::bytes(
                        StatusCode::TEMPORARY_REDIRECT,
                        "text/plain; charset=utf-8",
                        format!("this coordinator is a standby; the leader is at {}\n", l.url),
                    )
                } else {
                    ApiError::new(
                        ErrorCode::NotLeader,
                        format!(
                            "this coordinator is a standby; coordinator {} leads (lease epoch {}): send the request to {}",
                            l.id, l.epoch, l.url
                        ),
                    )
                    .into_response()
                };
                if let Ok(v) = HeaderValue::from_str(&location) {
                    r.headers_mut().insert(LOCATION, v);
                }
                r
            }
            None => ApiError::new(
                ErrorCode::NotLeader,
                "this coordinator is a standby and no coordinator leads right now (a takeover is under way): try again shortly",
            )
            .into_response(),
        },
    };
    if method == Method::HEAD {
        *response.body_mut() = http::full(bytes::Bytes::new());
    }
    response.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response.headers_mut().insert(hyper::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // A client keeps no connection to a standby: it would be cut when the standby leads.
    response.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> LeaderInfo {
        LeaderInfo { id: "c1".into(), url: "http://10.0.0.1:8888".into(), epoch: 7 }
    }

    #[test]
    fn a_standby_names_the_leader_everywhere() {
        let uri: hyper::Uri = "/api/v1/tasks?limit=5".parse().unwrap();
        let r = answer(&Method::GET, &uri, Some(leader()));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[LOCATION], "http://10.0.0.1:8888/api/v1/tasks?limit=5");
        assert_eq!(r.headers()[hyper::header::RETRY_AFTER], "1");
        let r = answer(&Method::GET, &"/".parse().unwrap(), Some(leader()));
        assert_eq!(r.status(), 307);
        assert_eq!(r.headers()[LOCATION], "http://10.0.0.1:8888/");
        let r = answer(&Method::GET, &"/health".parse().unwrap(), Some(leader()));
        assert_eq!(r.status(), 200);
        // Nobody leads: no Location, still 503 not_leader; an unknown path is still 404.
        let r = answer(&Method::POST, &"/api/v1/tasks".parse().unwrap(), None);
        assert_eq!(r.status(), 503);
        assert!(r.headers().get(LOCATION).is_none());
        assert_eq!(answer(&Method::GET, &"/nope".parse().unwrap(), None).status(), 404);
    }
}
