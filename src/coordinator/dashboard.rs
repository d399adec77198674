//! The web dashboard: one HTML page, its script, style sheet and icon, embedded in the
//! binary with `include_str!` (no build step, no CDN, nothing read from disk at run time).
//!
//! The page is a small single-page app over the public JSON API: it logs in with a token
//! kept in the tab's `sessionStorage` (never in a URL or a cookie), sends it as a bearer
//! header like every other client, and follows `GET /api/v1/events` with `fetch()` (an
//! `EventSource` cannot send a header). So the dashboard adds no auth path, no session and
//! no CSRF surface: it can do exactly what its token can do through the API.
//!
//! Why a small embedded SPA rather than server-rendered HTML (templates plus a little JS,
//! the other usual choice for a Rust server): the page then needs no server-side session,
//! template engine or second rendering of every model; everything it shows is what the
//! API answers (the API is checked against the OpenAPI document), and it goes live from
//! the same event stream as `tasks watch`. The cost is about 35 kB of plain JavaScript, with
//! no build step.
//!
//! Invariants: every asset is served with its media type, `nosniff` and `no-cache`; the page
//! carries a Content-Security-Policy that allows only this origin's scripts, styles and
//! connections (no inline script, no framing).

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, HeaderValue, LOCATION};

use super::error::ApiError;
use super::http::{Response, bytes};
use crate::model::ErrorCode;

/// A file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const PAGE: &str = include_str!("dashboard/index.html");

/// What `/assets/{asset}` serves.
const ASSETS: &[Asset] = &[
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("dashboard/app.js") },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_str!("dashboard/app.css") },
    Asset { name: "icon.svg", content_type: "image/svg+xml", body: include_str!("dashboard/icon.svg") },
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The headers of every dashboard answer.
fn with_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// `GET /`: the page.
pub fn page() -> Response {
    let mut r = with_headers(bytes(StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(PAGE.as_bytes())));
    r.headers_mut().insert("content-security-policy", HeaderValue::from_static(CSP));
    r.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// `GET /ui`: the dashboard lives at `/`.
pub fn redirect() -> Response {
    let mut r = bytes(StatusCode::PERMANENT_REDIRECT, "text/plain; charset=utf-8", "the dashboard is at /\n");
    r.headers_mut().insert(LOCATION, HeaderValue::from_static("/"));
    r
}

/// `GET /assets/{asset}`.
pub fn asset(name: &str) -> Result<Response, ApiError> {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        let known: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no dashboard asset named `{name}`; there are {}", known.join(", ")),
        ));
    };
    Ok(with_headers(bytes(StatusCode::OK, a.content_type, Bytes::from_static(a.body.as_bytes()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every asset the page names is served, and nothing is loaded from elsewhere.
    #[test]
    fn the_page_names_only_embedded_assets() {
        for link in PAGE.split("/assets/").skip(1) {
            let name: String = link.chars().take_while(|c| *c != '"').collect();
            assert!(ASSETS.iter().any(|a| a.name == name), "index.html names /assets/{name}, which is not embedded");
        }
        for text in [PAGE].into_iter().chain(ASSETS.iter().map(|a| a.body)) {
            let elsewhere = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !elsewhere.contains("http://") && !elsewhere.contains("https://"),
                "an asset refers to another origin"
            );
        }
        assert!(asset("nope.js").is_err());
    }
}
