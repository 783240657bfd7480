//! A delaying TCP proxy on loopback: the bench's stand-in for a WAN (`scripts/bench --rtt MS`).
//!
//! Members and client share this machine, so there is no network latency to measure against;
//! `tc netem` is not available here. Instead each member gets, per RTT, a second loopback
//! address where this proxy listens and forwards to the member's sshd, holding every chunk for
//! RTT/2 in each direction. Every tool's inventory or host list then names the proxies.
//!
//! How the delay is made, and why it does not distort:
//! - Per connection and direction, one task reads and stamps each chunk with `now + RTT/2`,
//!   another writes the chunks in order once their time has come. Reading never waits for
//!   writing, so a flight of several packets arrives as it left, RTT/2 later, and data keeps
//!   flowing both ways at once (a sleep per chunk in one loop would serialise them).
//! - `TCP_NODELAY` on both sockets: Nagle must not add a wait of its own.
//! - The upstream connection (to sshd) is opened RTT/2 after the client's connect has been
//!   accepted: on a real path the server sees the connection (and sends its version line)
//!   half a round trip after the client's `connect` returns, so the server's first bytes reach
//!   the client one RTT after its connect, as here. What the proxy cannot delay is the TCP
//!   handshake itself (the kernel completes it at once), so a real WAN adds one round trip per
//!   connection, the same for every tool, to the figures measured through it.
//! - EOF travels like data: a half-close reaches the other side RTT/2 after it was read.
//!
//! It runs as its own process (the bench binary started with `--proxy CONFIG`), one
//! current-thread tokio runtime for every listener, so its CPU is measured on its own
//! (`/proc/PID/stat`) and kept out of every other figure.
//!
//! With `--trace FILE` it logs every chunk it reads: time since the connection was accepted,
//! connection number, direction, size, and, until that direction's `NEWKEYS`, the SSH messages
//! in it (version line, KEXINIT, ECDH, …); after it the packets are encrypted, and only sizes
//! and times say what happened.

use std::io::{BufRead, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One proxied member: where the proxy listens, where it forwards, the one-way delay.
#[derive(Debug, Clone)]
pub struct Route {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    pub one_way: Duration,
}

/// The running proxy process; killed and reaped when dropped.
pub struct Proxy {
    child: Child,
}

impl Proxy {
    /// Start the proxy process for `routes` (the config goes to `config`), and wait until every
    /// listener is bound. `trace`: log each chunk to that file.
    pub fn start(routes: &[Route], config: &Path, trace: Option<&Path>) -> Proxy {
        let mut text = String::new();
        for r in routes {
            text.push_str(&format!(
                "{} {} {}\n",
                r.listen,
                r.upstream,
                r.one_way.as_micros()
            ));
        }
        std::fs::write(config, text).expect("write the proxy config");
        let mut cmd = Command::new(std::env::current_exe().expect("the bench's own path"));
        cmd.arg("--proxy").arg(config);
        if let Some(t) = trace {
            cmd.arg("--trace").arg(t);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the proxy");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the proxy's ready line");
        assert_eq!(line.trim(), "ready", "the proxy did not start");
        Proxy { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--proxy CONFIG [--trace FILE]`: serve until killed.
pub fn serve(config: &Path, trace: Option<PathBuf>) -> ! {
    let text = std::fs::read_to_string(config).expect("read the proxy config");
    let routes: Vec<Route> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Route {
                listen: f[0].parse().expect("listen address"),
                upstream: f[1].parse().expect("upstream address"),
                one_way: Duration::from_micros(f[2].parse().expect("delay")),
            }
        })
        .collect();
    let tracer = trace.map(|p| Arc::new(Tracer::create(&p)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("proxy runtime");
    rt.block_on(async move {
        let mut listeners = Vec::new();
        for r in routes {
            let l = TcpListener::bind(r.listen)
                .await
                .unwrap_or_else(|e| panic!("proxy: bind {}: {e}", r.listen));
            listeners.push((l, r));
        }
        println!("ready");
        std::io::stdout().flush().unwrap();
        for (listener, route) in listeners {
            let tracer = tracer.clone();
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((client, _)) => {
                            tokio::spawn(connection(client, route.clone(), tracer.clone()));
                        }
                        // Out of file descriptors, say: wait rather than spin.
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            });
        }
        std::future::pending::<()>().await;
    });
    unreachable!()
}

async fn connection(client: TcpStream, route: Route, tracer: Option<Arc<Tracer>>) {
    let accepted = Instant::now();
    let id = tracer.as_ref().map(|t| t.accepted()).unwrap_or(0);
    let log = |dir: &'static str| {
        tracer.clone().map(|t| ChunkLog {
            tracer: t,
            id,
            dir,
            accepted,
            decoder: Decoder::default(),
        })
    };
    let _ = client.set_nodelay(true);
    let (cr, cw) = client.into_split();
    // What the client sends at once is read (and its clock starts) at once; it reaches the
    // server one-way delay later, when the server has its end of the connection.
    let (to_server, queued) = mpsc::unbounded_channel();
    let from_client = read_side(cr, to_server, route.one_way, log("c>s"));
    let rest = async move {
        // The server learns of the connection half a round trip after the client's connect.
        tokio::time::sleep(route.one_way).await;
        let Ok(server) = TcpStream::connect(route.upstream).await else {
            return;
        };
        let _ = server.set_nodelay(true);
        let (sr, sw) = server.into_split();
        let (to_client, from_server) = mpsc::unbounded_channel();
        tokio::join!(
            write_side(sw, queued),
            read_side(sr, to_client, route.one_way, log("s>c")),
            write_side(cw, from_server),
        );
    };
    tokio::join!(from_client, rest);
}

/// A chunk and the time it may be written.
type Queue = mpsc::UnboundedSender<(Instant, Vec<u8>)>;

/// Read `from` until EOF, queueing each chunk for `delay` after it was read (an empty chunk is
/// the EOF, or a read error: the same to the other side). Reading never waits for writing.
async fn read_side(
    mut from: OwnedReadHalf,
    queue: Queue,
    delay: Duration,
    mut log: Option<ChunkLog>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        let now = Instant::now();
        if let Some(l) = log.as_mut() {
            l.chunk(now, &buf[..n]);
        }
        if queue.send((now + delay, buf[..n].to_vec())).is_err() || n == 0 {
            break;
        }
    }
}

/// Write the queued chunks in order, each once its time has come; EOF as a half-close.
async fn write_side(
    mut to: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
) {
    while let Some((due, data)) = queue.recv().await {
        tokio::time::sleep_until(due).await;
        if data.is_empty() {
            let _ = to.shutdown().await;
            break;
        }
        if to.write_all(&data).await.is_err() {
            break;
        }
    }
}

/// The `--trace` file.
struct Tracer {
    file: Mutex<std::fs::File>,
    ids: AtomicUsize,
}

impl Tracer {
    fn create(path: &Path) -> Tracer {
        let mut file = std::fs::File::create(path).expect("create the trace file");
        let _ = writeln!(
            file,
            "# ms since accept (chunk read by the proxy; delivered one-way delay later), conn, direction, bytes, plaintext SSH messages"
        );
        Tracer {
            file: Mutex::new(file),
            ids: AtomicUsize::new(0),
        }
    }

    /// A new connection's number; logs its wall-clock start (to line up with other logs).
    fn accepted(&self) -> usize {
        let id = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "# c{id} accepted at {:.6} (Unix time)\n",
            epoch.as_secs_f64()
        );
        let _ = self.file.lock().unwrap().write_all(line.as_bytes());
        id
    }
}

struct ChunkLog {
    tracer: Arc<Tracer>,
    id: usize,
    dir: &'static str,
    accepted: Instant,
    decoder: Decoder,
}

impl ChunkLog {
    fn chunk(&mut self, at: Instant, data: &[u8]) {
        let what = if data.is_empty() {
            "EOF".to_string()
        } else {
            self.decoder.feed(data).join(" ")
        };
        let line = format!(
            "{:9.1} c{} {} {:6} {}\n",
            (at - self.accepted).as_secs_f64() * 1000.0,
            self.id,
            self.dir,
            data.len(),
            what
        );
        let _ = self.tracer.file.lock().unwrap().write_all(line.as_bytes());
    }
}

/// Names the plaintext SSH messages of one direction (RFC 4253 binary packets) until its
/// NEWKEYS; after that everything is encrypted.
#[derive(Default)]
struct Decoder {
    buf: Vec<u8>,
    version_seen: bool,
    encrypted: bool,
}

impl Decoder {
    fn feed(&mut self, data: &[u8]) -> Vec<String> {
        if self.encrypted {
            return vec!["(encrypted)".into()];
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        if !self.version_seen {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                return out;
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            out.push(format!(
                "version({})",
                String::from_utf8_lossy(&line).trim()
            ));
            self.version_seen = true;
        }
        while self.buf.len() >= 6 {
            let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
            if self.buf.len() < 4 + len {
                break;
            }
            let msg = self.buf[5];
            out.push(message_name(msg));
            self.buf.drain(..4 + len);
            if msg == 21 {
                self.encrypted = true;
                if !self.buf.is_empty() {
                    out.push("+(encrypted)".into());
                }
                self.buf.clear();
                break;
            }
        }
        out
    }
}

fn message_name(msg: u8) -> String {
    match msg {
        1 => "DISCONNECT".into(),
        2 => "IGNORE".into(),
        4 => "DEBUG".into(),
        20 => "KEXINIT".into(),
        21 => "NEWKEYS".into(),
        30 => "KEX_ECDH_INIT".into(),
        31 => "KEX_ECDH_REPLY".into(),
        other => format!("msg{other}"),
    }
}
