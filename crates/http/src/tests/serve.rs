//! `serve` end to end: a hand-written HTTP/1.1 request over a real socket,
//! then a graceful shutdown.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Harness, valid_request};
use crate::serve;

/// Sends one request on a new connection and reads the whole answer.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    String::from_utf8(answer).expect("utf-8 answer")
}

#[tokio::test]
async fn serves_over_tcp_and_shuts_down_gracefully() {
    let h = Harness::new().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, h.router.clone(), async {
        let _ = stopped.await;
    }));

    let body = valid_request().to_string();
    let request = format!(
        "POST /api/v1/messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        h.key,
        body.len()
    );
    let answer = exchange(addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 202 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    let (_, json) = answer.split_once("\r\n\r\n").expect("headers end");
    let json: serde_json::Value = serde_json::from_str(json).expect("JSON body");
    let id = json["id"].as_str().expect("id");
    assert_eq!(h.submitter.submissions()[0].id.to_string(), id);

    let answer = exchange(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.ends_with("{\"status\":\"ok\"}"), "{answer}");

    stop.send(()).expect("server still running");
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .expect("the server task does not panic");
    assert!(result.is_ok(), "{result:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}
