//! A webhook endpoint for the tests: a minimal HTTP/1.1 server on loopback
//! that records every POST and answers `500` to the first few, `200` after.

use super::Server;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// How long the webhook tests wait for events: a few retries of 1-2 s.
pub const WEBHOOK_WAIT: Duration = Duration::from_secs(60);

/// One POST the endpoint got.
#[derive(Clone, Debug)]
pub struct Post {
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the endpoint answered.
    pub status: u16,
}

impl Post {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn events(&self) -> Vec<Value> {
        match serde_json::from_slice(&self.body) {
            Ok(Value::Array(events)) => events,
            other => panic!(
                "a webhook body is a JSON array, got {other:?}: {}",
                String::from_utf8_lossy(&self.body)
            ),
        }
    }
}

/// A minimal HTTP/1.1 endpoint: records every request, answers `500` to
/// the first `failures` and `200` after that, closing each connection.
pub struct Endpoint {
    pub addr: SocketAddr,
    posts: Arc<Mutex<Vec<Post>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    pub async fn start(addr: SocketAddr, failures: usize) -> Endpoint {
        let listener = TcpListener::bind(addr).await.expect("bind the endpoint");
        let addr = listener.local_addr().expect("address");
        let posts = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicUsize::new(0));
        let recorded = Arc::clone(&posts);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = Arc::clone(&recorded);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let _ = serve_one(stream, recorded, seen, failures).await;
                });
            }
        });
        Endpoint { addr, posts, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/carteiro", self.addr)
    }

    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("posts lock").clone()
    }

    /// Every event in the POSTs answered `200`.
    pub fn delivered_events(&self) -> Vec<Value> {
        self.posts()
            .iter()
            .filter(|p| p.status == 200)
            .flat_map(Post::events)
            .collect()
    }

    /// Polls until `done` holds for the accepted events; panics with them
    /// and the server log otherwise.
    pub async fn wait(&self, server: &Server, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + WEBHOOK_WAIT;
        loop {
            let events = self.delivered_events();
            if done(&events) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the endpoint never got {what}; accepted events: {events:#?}\nposts: {}\nlog:\n{}",
                self.posts().len(),
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (headers, then `Content-Length` bytes of body) and
/// answers it.
async fn serve_one(
    mut stream: tokio::net::TcpStream,
    recorded: Arc<Mutex<Vec<Post>>>,
    seen: Arc<AtomicUsize>,
    failures: usize,
) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 || data.len() > 1 << 20 {
            return Ok(());
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    assert!(
        request_line.starts_with("POST /hooks/carteiro "),
        "{request_line}"
    );
    let n = seen.fetch_add(1, Ordering::SeqCst);
    let status = if n < failures { 500 } else { 200 };
    recorded.lock().expect("posts lock").push(Post {
        headers,
        body,
        status,
    });
    let reason = if status == 200 {
        "OK"
    } else {
        "Internal Server Error"
    };
    let answer =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}
