//! The limits a listener applies before a session starts, over real
//! loopback sockets. All of 127.0.0.0/8 is local on Linux: clients bind to
//! 127.0.0.x (one /24) or 127.0.1.x (another) to come from where a test
//! needs them.

use super::*;
use crate::session::tests::{TestHandler, config};
use carteiro_config::Config;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// A relay listener on 127.0.0.1 with `config`; the sender stops it.
async fn listen(config: Config) -> (SocketAddr, watch::Sender<bool>) {
    let ctx = ServerContext::new(Arc::new(config), None, TestHandler::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(serve(listener, Role::Relay, ctx, stop_rx));
    (addr, stop_tx)
}

/// Connects from `from` and returns the stream with the first line the
/// server sent (the greeting or the refusal).
async fn connect_from(
    from: Ipv4Addr,
    server: SocketAddr,
) -> (tokio::io::BufReader<TcpStream>, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    let read = reader.read_line(&mut line);
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the server answers a new connection")
        .unwrap();
    (reader, line)
}

#[tokio::test]
async fn the_prefix_cap_refuses_one_network_while_the_next_gets_in() {
    let mut config = config(false);
    config.smtp.max_connections_per_ip = 10;
    config.smtp.max_connections_per_prefix = 3;
    let (server, _stop) = listen(config).await;
    let mut open = Vec::new();
    for host in [1, 2, 2] {
        let (stream, greeting) = connect_from(Ipv4Addr::new(127, 0, 0, host), server).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        open.push(stream);
    }
    // The fourth from 127.0.0.0/24, from an address not seen yet.
    let (_, refused) = connect_from(Ipv4Addr::new(127, 0, 0, 3), server).await;
    assert_eq!(
        refused,
        "421 4.7.0 too many connections from your network, try again later\r\n"
    );
    // 127.0.1.0/24 is another network.
    let (_, greeting) = connect_from(Ipv4Addr::new(127, 0, 1, 1), server).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    // A closed connection gives its slot back (once the session has seen
    // the end: poll, with a deadline).
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, line) = connect_from(Ipv4Addr::new(127, 0, 0, 3), server).await;
        if line.starts_with("220 ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot never came back: {line}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn trusted_clients_get_in_when_others_have_used_their_share() {
    let mut config = config(false);
    config.smtp.trusted_networks = vec!["127.0.0.1/32".parse().unwrap()];
    config.smtp.max_connections = 5;
    config.smtp.reserved_trusted_connections = Some(2);
    let (server, _stop) = listen(config).await;
    let mut open = Vec::new();
    for host in 2..=4 {
        let (stream, greeting) = connect_from(Ipv4Addr::new(127, 0, 0, host), server).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        open.push(stream);
    }
    let (_, refused) = connect_from(Ipv4Addr::new(127, 0, 0, 5), server).await;
    assert_eq!(
        refused,
        "421 4.7.0 too many connections, try again later\r\n"
    );
    for _ in 0..2 {
        let (stream, greeting) = connect_from(Ipv4Addr::LOCALHOST, server).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        open.push(stream);
    }
    let (_, refused) = connect_from(Ipv4Addr::LOCALHOST, server).await;
    assert!(refused.starts_with("421 4.7.0"), "{refused}");
}
