//! Watching a session's socket: whether a request is waiting for its answer, when the server
//! last sent a byte, and a way to declare the connection dead so that every call waiting on
//! it fails at once.
//!
//! The protocol is followed just enough to count requests: each `Query` or `Sync` message the
//! client sends (and the start-up message) is answered by one `ReadyForQuery` from the server,
//! which also carries the transaction status. The stream beneath TLS only records that bytes
//! arrived; the protocol is read where it is plain text (above TLS when TLS is on).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// CancelRequest, SSLRequest and GSSENCRequest codes of untyped start-up messages.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// What is known about one connection, shared by its streams and its watchdog.
#[derive(Debug)]
pub struct WireState {
    /// Requests sent and not yet answered by ReadyForQuery.
    pub outstanding: u32,
    /// When the server last sent a byte, or when the oldest unanswered request was sent on a
    /// quiet connection, whichever is later: the silence is measured from here.
    pub last_heard: Instant,
    /// The transaction status of the last ReadyForQuery: `I` idle, `T` in a transaction,
    /// `E` in a failed transaction.
    pub transaction_status: u8,
    /// Whether the request waiting for an answer is a `COMMIT`.
    pub commit_in_flight: bool,
    /// The server process serving this connection (BackendKeyData).
    pub backend_pid: Option<i32>,
    /// Why the connection was declared dead; reads and writes fail with it from then on.
    pub dead: Option<String>,
    read_waker: Option<Waker>,
    client: Parser,
    server: Parser,
    /// The plain-text protocol flows through the TLS stream, not the socket beneath it.
    encrypted: bool,
}

/// The shared state of a watched connection.
#[derive(Debug, Clone)]
pub struct Wire(Arc<Mutex<WireState>>);

impl Default for Wire {
    fn default() -> Self {
        Wire(Arc::new(Mutex::new(WireState {
            outstanding: 0,
            last_heard: Instant::now(),
            transaction_status: b'I',
            commit_in_flight: false,
            backend_pid: None,
            dead: None,
            read_waker: None,
            client: Parser::new(true),
            server: Parser::new(false),
            encrypted: false,
        })))
    }
}

impl Wire {
    pub fn lock(&self) -> MutexGuard<'_, WireState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Declares the connection dead: the reader waiting on it wakes up and fails with
    /// `reason`, and so does every later read or write.
    pub fn kill(&self, reason: String) {
        let waker = {
            let mut state = self.lock();
            if state.dead.is_none() {
                state.dead = Some(reason);
            }
            state.read_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wraps the socket itself.
    pub fn socket<S>(&self, inner: S) -> Watched<S> {
        Watched {
            inner,
            wire: self.clone(),
            layer: Layer::Socket,
        }
    }

    /// From now on the socket carries TLS records: the protocol is read above TLS. Called
    /// before the handshake, whose bytes are not protocol messages.
    pub fn start_tls(&self) {
        self.lock().encrypted = true;
    }

    /// Wraps the TLS stream, where the protocol is read from now on.
    pub fn tls<S>(&self, inner: S) -> Watched<S> {
        self.start_tls();
        Watched {
            inner,
            wire: self.clone(),
            layer: Layer::Tls,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Socket,
    Tls,
}

/// A stream whose traffic updates a [`Wire`].
pub struct Watched<S> {
    inner: S,
    wire: Wire,
    layer: Layer,
}

impl<S> Watched<S> {
    fn reads_protocol(&self, state: &WireState) -> bool {
        match self.layer {
            Layer::Socket => !state.encrypted,
            Layer::Tls => true,
        }
    }

    fn dead_error(reason: &str) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, reason.to_string())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(reason) = &self.wire.lock().dead {
            return Poll::Ready(Err(Self::dead_error(reason)));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let mut state = self.wire.lock();
        match &result {
            Poll::Ready(Ok(())) => {
                let received = &buf.filled()[before..];
                if !received.is_empty() {
                    state.last_heard = Instant::now();
                    if self.reads_protocol(&state) {
                        state.receive(received);
                    }
                }
            }
            Poll::Pending if self.layer == Layer::Socket => {
                state.read_waker = Some(cx.waker().clone());
            }
            _ => {}
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(reason) = &self.wire.lock().dead {
            return Poll::Ready(Err(Self::dead_error(reason)));
        }
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(written)) = &result {
            let mut state = self.wire.lock();
            if self.reads_protocol(&state) {
                state.send(&data[..*written]);
            }
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> tokio_postgres::tls::TlsStream for Watched<S>
where
    S: tokio_postgres::tls::TlsStream + Unpin,
{
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        self.inner.channel_binding()
    }
}

impl WireState {
    fn send(&mut self, bytes: &[u8]) {
        for message in self.client.feed(bytes) {
            let answered_by_ready = match message.kind {
                Kind::Untyped(SSL_REQUEST) | Kind::Untyped(GSSENC_REQUEST) => {
                    // Answered by one byte, after which a start-up message follows.
                    self.server.single_byte = true;
                    self.client.untyped = true;
                    true
                }
                Kind::Untyped(_) => true, // the start-up message
                Kind::Typed(b'Q') => {
                    self.commit_in_flight = is_commit(&message.head);
                    true
                }
                Kind::Typed(b'S') | Kind::Typed(b'F') => true,
                Kind::Typed(_) | Kind::SingleByte => false,
            };
            if answered_by_ready {
                if self.outstanding == 0 {
                    self.last_heard = Instant::now();
                }
                self.outstanding += 1;
            }
        }
    }

    fn receive(&mut self, bytes: &[u8]) {
        for message in self.server.feed(bytes) {
            match message.kind {
                Kind::SingleByte => self.outstanding = self.outstanding.saturating_sub(1),
                Kind::Typed(b'Z') => {
                    self.outstanding = self.outstanding.saturating_sub(1);
                    self.transaction_status = message.head.first().copied().unwrap_or(b'I');
                    self.commit_in_flight = false;
                }
                Kind::Typed(b'K') if message.head.len() >= 4 => {
                    let pid = [
                        message.head[0],
                        message.head[1],
                        message.head[2],
                        message.head[3],
                    ];
                    self.backend_pid = Some(i32::from_be_bytes(pid));
                }
                _ => {}
            }
        }
    }
}

/// Whether a simple query's text is `COMMIT` (or `END`, `COMMIT;` ...).
fn is_commit(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let word: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    word == "COMMIT" || word == "END"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A start-up phase message, by its code.
    Untyped(u32),
    Typed(u8),
    /// The server's one-byte answer to SSLRequest.
    SingleByte,
}

struct Message {
    kind: Kind,
    /// The first bytes of the body (enough for a query's first word).
    head: Vec<u8>,
}

const HEAD_BYTES: usize = 16;

/// Splits one direction of the protocol into messages, whatever the chunks it arrives in.
#[derive(Debug)]
struct Parser {
    /// The next message has no type byte (the client's start-up phase).
    untyped: bool,
    /// The next message is the server's one-byte answer to SSLRequest.
    single_byte: bool,
    header: Vec<u8>,
    kind: Option<u8>,
    remaining: usize,
    head: Vec<u8>,
    code: Option<u32>,
}

impl Parser {
    fn new(client: bool) -> Parser {
        Parser {
            untyped: client,
            single_byte: false,
            header: Vec::with_capacity(5),
            kind: None,
            remaining: 0,
            head: Vec::new(),
            code: None,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Vec<Message> {
        let mut done = Vec::new();
        while !bytes.is_empty() {
            if self.single_byte && self.header.is_empty() && self.remaining == 0 {
                self.single_byte = false;
                bytes = &bytes[1..];
                done.push(Message {
                    kind: Kind::SingleByte,
                    head: Vec::new(),
                });
                continue;
            }
            if self.remaining == 0 && self.kind.is_none() && self.code.is_none() {
                // Reading a header: [type byte] + 4-byte length.
                let header_len = if self.untyped { 4 } else { 5 };
                let take = (header_len - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() < header_len {
                    break;
                }
                let (kind, len_bytes) = if self.untyped {
                    (None, &self.header[..4])
                } else {
                    (Some(self.header[0]), &self.header[1..5])
                };
                let length =
                    u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
                self.remaining = (length as usize).saturating_sub(4);
                self.header.clear();
                self.head.clear();
                match kind {
                    Some(k) => self.kind = Some(k),
                    None => self.code = Some(u32::MAX), // known once the body's first 4 bytes are in
                }
                if self.remaining == 0 {
                    done.push(self.finish());
                }
                continue;
            }
            let take = self.remaining.min(bytes.len());
            let wanted = HEAD_BYTES.saturating_sub(self.head.len()).min(take);
            self.head.extend_from_slice(&bytes[..wanted]);
            self.remaining -= take;
            bytes = &bytes[take..];
            if self.remaining == 0 {
                done.push(self.finish());
            }
        }
        done
    }

    fn finish(&mut self) -> Message {
        let head = std::mem::take(&mut self.head);
        let kind = match (self.kind.take(), self.code.take()) {
            (Some(k), _) => Kind::Typed(k),
            (None, _) => {
                let code = if head.len() >= 4 {
                    u32::from_be_bytes([head[0], head[1], head[2], head[3]])
                } else {
                    0
                };
                if code != SSL_REQUEST && code != GSSENC_REQUEST {
                    self.untyped = false; // the start-up message: typed messages follow
                }
                Kind::Untyped(code)
            }
        };
        Message { kind, head }
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn untyped(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut out = ((rest.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(rest);
        out
    }

    fn state() -> WireState {
        let wire = Wire::default();
        Arc::try_unwrap(wire.0).unwrap().into_inner().unwrap()
    }

    #[test]
    fn requests_are_counted_until_ready_for_query_answers_them() {
        let mut s = state();
        // SSLRequest, answered by 'N'; then the start-up message, in two chunks.
        s.send(&untyped(SSL_REQUEST, &[]));
        assert_eq!(s.outstanding, 1);
        s.receive(b"N");
        assert_eq!(s.outstanding, 0);
        let startup = untyped(196_608, b"user\0alice\0\0");
        s.send(&startup[..3]);
        s.send(&startup[3..]);
        assert_eq!(s.outstanding, 1);
        // Authentication ok, BackendKeyData, ReadyForQuery, one byte at a time.
        let mut answer = typed(b'R', &0u32.to_be_bytes());
        let mut key = 4242i32.to_be_bytes().to_vec();
        key.extend_from_slice(&7i32.to_be_bytes());
        answer.extend(typed(b'K', &key));
        answer.extend(typed(b'Z', b"I"));
        for byte in &answer {
            s.receive(std::slice::from_ref(byte));
        }
        assert_eq!(s.outstanding, 0);
        assert_eq!(s.backend_pid, Some(4242));

        // Two pipelined requests: a simple query and an extended one ending in Sync.
        let mut requests = typed(b'Q', b"BEGIN\0");
        requests.extend(typed(b'P', b"\0SELECT 1\0\0\0"));
        requests.extend(typed(b'B', b"\0\0\0\0\0\0\0\0"));
        requests.extend(typed(b'E', b"\0\0\0\0\0"));
        requests.extend(typed(b'S', b""));
        s.send(&requests);
        assert_eq!(s.outstanding, 2);
        s.receive(&typed(b'Z', b"T"));
        assert_eq!((s.outstanding, s.transaction_status), (1, b'T'));
        // A notice is not an answer.
        s.receive(&typed(b'N', b"SNOTICE\0\0"));
        assert_eq!(s.outstanding, 1);
        s.receive(&typed(b'Z', b"T"));
        assert_eq!(s.outstanding, 0);

        s.send(&typed(b'Q', b"COMMIT\0"));
        assert!(s.commit_in_flight);
        s.receive(&typed(b'Z', b"I"));
        assert!(!s.commit_in_flight);
        assert_eq!(s.transaction_status, b'I');
        // Terminate expects no answer.
        s.send(&typed(b'X', b""));
        assert_eq!(s.outstanding, 0);
    }

    #[test]
    fn after_tls_starts_the_socket_only_counts_bytes() {
        let wire = Wire::default();
        wire.lock().send(&untyped(SSL_REQUEST, &[]));
        wire.lock().receive(b"S");
        let _tls = wire.tls(());
        let mut state = wire.lock();
        assert!(state.encrypted);
        assert_eq!(state.outstanding, 0);
        // The TLS layer's own parser starts with the start-up message.
        assert!(state.client.untyped);
        state.send(&untyped(196_608, b"user\0a\0\0"));
        assert_eq!(state.outstanding, 1);
    }

    #[test]
    fn commit_is_recognised_by_its_first_word() {
        assert!(is_commit(b"COMMIT\0"));
        assert!(is_commit(b"  commit;\0"));
        assert!(is_commit(b"END\0"));
        assert!(!is_commit(b"COMMITTED_THING\0"));
        assert!(!is_commit(b"SELECT 1\0"));
    }
}
