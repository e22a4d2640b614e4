//! A TCP proxy on loopback (socat) between retentionc and a test cluster, that a test can
//! freeze (SIGSTOP: connections stay open, nothing moves, as on a stalled network path) and
//! thaw again.
//!
//! socat forks a process per connection; all of them share the proxy's process group, which
//! is what is stopped, continued and finally killed (by its id, never by name).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::cluster::TestDb;

pub struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    /// A proxy from a free port of 127.0.0.1 to `target_port` there. Panics when socat is
    /// missing (`scripts/install-deps.sh` installs it).
    pub fn start(target_port: u16) -> Proxy {
        for _ in 0..8 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap();
            let mut command = Command::new("socat");
            command
                .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
                .arg(format!("TCP:127.0.0.1:{target_port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let child = command.spawn().unwrap_or_else(|e| {
                panic!("cannot run socat (scripts/install-deps.sh installs it): {e}")
            });
            let mut proxy = Proxy { child, port };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = proxy.child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return proxy;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            proxy.kill();
        }
        panic!("socat did not start listening");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `db`'s URL through the proxy.
    pub fn url(&self, db: &TestDb) -> String {
        let direct = format!("127.0.0.1:{}/", db.cluster.port());
        assert!(db.url.contains(&direct), "{}", db.url);
        db.url
            .replace(&direct, &format!("127.0.0.1:{}/", self.port))
    }

    /// Stops every proxy process: open connections stay open and carry nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Cuts every connection it carries (kills the processes serving them, with what they
    /// had not passed on yet) and thaws it: it goes on accepting new connections.
    pub fn cut_connections(&self) {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for child in children.split_whitespace() {
            Command::new("kill")
                .args(["-KILL", child])
                .status()
                .unwrap();
        }
        self.thaw();
    }

    fn signal(&self, signal: &str) {
        let group = format!("-{}", self.child.id());
        let status = Command::new("kill")
            .args([signal, "--", &group])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {group} failed");
    }

    fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-CONT", "--", &group]).status();
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
    }
}
