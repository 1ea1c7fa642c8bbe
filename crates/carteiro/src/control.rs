//! The control socket: how `carteiro queue …` acts on a running server. A
//! Unix socket in the data directory (owner-only), one JSON request line
//! and one JSON response line per connection.

use anyhow::Context;
use carteiro_delivery::engine::EngineHandle;
use carteiro_mail::MessageId;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

const MAX_REQUEST: u64 = 64 * 1024;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    #[serde(rename = "queue_list")]
    List,
    #[serde(rename = "queue_show")]
    Show { id: MessageId },
    #[serde(rename = "queue_retry")]
    Retry { id: Option<MessageId> },
    #[serde(rename = "queue_delete")]
    Delete { id: MessageId },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn data(value: impl Serialize) -> Response {
        Response {
            ok: true,
            error: None,
            data: serde_json::to_value(value).unwrap_or_default(),
        }
    }

    pub fn error(text: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(text.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// Binds the socket owner-only whatever the umask and the data directory's
/// mode: it is made in a fresh 0700 directory, chmod 0600, then renamed to
/// `path`, so nobody else can connect to it even for a moment (it drives
/// the queue).
fn bind_private(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let staging = path.with_extension("sock.new");
    // Left by a server that died between the two steps.
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let inside = staging.join("control.sock");
    let bound = UnixListener::bind(&inside)
        .with_context(|| format!("cannot bind {}", inside.display()))
        .and_then(|listener| {
            std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&inside, path)
                .with_context(|| format!("cannot move the socket to {}", path.display()))?;
            Ok(listener)
        });
    let _ = std::fs::remove_dir_all(&staging);
    bound
}

/// Starts answering requests on `path` until `stop` turns true.
pub async fn serve(
    path: &Path,
    engine: EngineHandle,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    // The spool lock is already ours, so a socket file left here belongs to
    // a server that is gone.
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale {}", path.display()))?;
    }
    let listener = bind_private(path)?;
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(error = %err, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stopped(&mut stop) => return,
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                if let Err(err) = answer(stream, &engine).await {
                    tracing::debug!(error = %err, "control request failed");
                }
            });
        }
    }))
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Carries out one request on the queue: the one way the CLI changes it,
/// whether a server answers on the socket or the CLI runs an offline
/// engine on the spool itself.
pub async fn handle(request: &Request, engine: &EngineHandle) -> Response {
    let missing = |id: &MessageId| Response::error(format!("message {id} is not in the queue"));
    match *request {
        Request::List => Response::data(engine.list().await),
        Request::Show { id } => match engine.show(id).await {
            Some(entry) => Response::data(entry),
            None => missing(&id),
        },
        Request::Retry { id } => {
            let count = engine.retry(id).await;
            match id {
                Some(id) if count == 0 => missing(&id),
                _ => Response::data(count),
            }
        }
        Request::Delete { id } => match engine.delete(id).await {
            Some(entry) => Response::data(entry),
            None => missing(&id),
        },
    }
}

async fn answer(stream: UnixStream, engine: &EngineHandle) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Err(err) => Response::error(format!("bad request: {err}")),
        Ok(request) => handle(&request, engine).await,
    };
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await?;
    Ok(())
}

/// Sends a request to a running server. `Ok(None)` when no server listens.
pub async fn request(path: &Path, request: &Request) -> anyhow::Result<Option<Response>> {
    let mut stream = match UnixStream::connect(path).await {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot connect to {}", path.display()));
        }
    };
    let exchange = async {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        stream.write_all(&line).await?;
        let mut reply = String::new();
        BufReader::new(&mut stream).read_line(&mut reply).await?;
        anyhow::Ok(serde_json::from_str::<Response>(&reply).context("bad answer from server")?)
    };
    let response = tokio::time::timeout(CLIENT_TIMEOUT, exchange)
        .await
        .context("the server did not answer on its control socket")??;
    Ok(Some(response))
}
