//! The operators' HTTP endpoint, on axum: `GET /metrics` (the relay's counters, drops by reason, forward-latency
//! histogram, UDP send errors, build and process figures in the Prometheus text format: [`metrics`]) and
//! `GET /healthz` (also `GET /health`: `200 ok` while the relay runs, `503` once it stopped). Other paths get
//! `404`, other methods `405` (axum's answers).
//!
//! Everything here is reachable without logging in, so it is bounded: at most [`MAX_HTTP_CONNECTIONS`] connections
//! are served at once (more wait in the kernel's listen queue), a request head larger than
//! [`MAX_REQUEST_HEAD_BYTES`] is refused, each connection serves one request and is closed after
//! [`HTTP_CONNECTION_TIMEOUT`] whatever it does. Each request costs the relay's core task one small copy (a
//! [`MetricsHandle`] snapshot); rendering happens on this task.
//!
//! [`router`] is the plain axum [`Router`]: an application that serves more (an admin API) can nest it in its own.

pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use voice_relay::driver::MetricsHandle;

/// Connections served at once.
pub const MAX_HTTP_CONNECTIONS: usize = 8;

/// Largest request head read (hyper's smallest buffer limit); a larger one is answered `431`.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8192;

/// Longest a connection lives (reading the request, answering it).
pub const HTTP_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (e.g. out of file descriptors), instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// The Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`, `GET /healthz` and `GET /health` (the same) for the relay behind `metrics`.
pub fn router(metrics: MetricsHandle) -> Router {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/healthz", get(health))
        .route("/health", get(health))
        .with_state(metrics)
}

async fn prometheus(State(metrics): State<MetricsHandle>) -> Response {
    match metrics.snapshot().await {
        Some(s) => {
            let text = metrics::render(&s, &metrics::ProcessStats::read());
            ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "relay stopped\n").into_response(),
    }
}

async fn health(State(metrics): State<MetricsHandle>) -> (StatusCode, &'static str) {
    match metrics.snapshot().await {
        Some(_) => (StatusCode::OK, "ok\n"),
        None => (StatusCode::SERVICE_UNAVAILABLE, "relay stopped\n"),
    }
}

/// Serves `router` on `listener` within the bounds of the module docs, until the task is dropped (which ends its
/// connections too).
pub(crate) async fn serve(listener: TcpListener, router: Router) {
    let permits = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        while connections.try_join_next().is_some() {}
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HTTP_CONNECTION_TIMEOUT)
                .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                .keep_alive(false);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(HTTP_CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics connection failed"),
                Err(_) => tracing::debug!(%peer, "metrics connection timed out"),
            }
        });
    }
}
