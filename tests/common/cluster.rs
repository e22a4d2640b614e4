//! Throwaway PostgreSQL 15 clusters for the integration tests.
//!
//! * [`Cluster::shared`] gives the test process's default cluster (started on first use,
//!   stopped when the last test holding it drops it); [`Cluster::start`] makes a private one
//!   with [`ClusterOptions`] (TLS, a password-authenticated role).
//! * [`Cluster::database`] makes a fresh database with pg_partman at the chosen
//!   [`Partman`] version, dropped again when the [`TestDb`] is dropped.
//! * [`Cluster::cron_database`] hands out the one database where pg_cron lives, one test
//!   at a time ([`CronDb`]), reset on every hand-out.
//!
//! Everything here panics with the failing command's full output when the server cannot be
//! set up: a test that needs PostgreSQL fails, it never skips. `scripts/install-deps.sh`
//! installs what is needed (PostgreSQL 15, pg_cron 1.4, pg_partman 4.7.2 and 5.2.4).
//!
//! Sessions run as root, and `initdb` refuses root: as root, the server programs run as the
//! `postgres` user (`runuser -u postgres --`), in a temporary folder owned by it. As any
//! other user they run as that user.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::ops::Deref;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// Where Debian puts PostgreSQL 15's programs. `RETENTIONC_PG_BIN` overrides it.
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// The database named by `cron.database_name`: the only one where `CREATE EXTENSION
/// pg_cron` works and where pg_cron's scheduler runs jobs. See [`Cluster::cron_database`].
pub const CRON_DATABASE: &str = "retentionc_cron";

/// The superuser of every test cluster (`initdb -U postgres`, trust authentication).
pub const SUPERUSER: &str = "postgres";

/// The retentionc binary built by Cargo for this test run.
pub fn retentionc_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_retentionc"))
}

/// Path of a PostgreSQL 15 program (`initdb`, `pg_ctl`, `psql`, ...); `psql` falls back to
/// the one on `PATH` when the PostgreSQL 15 folder lacks it.
pub fn pg_bin(program: &str) -> PathBuf {
    let dir = std::env::var_os("RETENTIONC_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PG_BIN_DIR));
    let path = dir.join(program);
    if !path.exists() && program == "psql" {
        return PathBuf::from("psql");
    }
    path
}

/// The two pg_partman majors the project supports, both installable side by side on the
/// test clusters (see `scripts/install-deps.sh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Partman {
    /// pg_partman 4.7.2 (Debian 12's package): `create_parent(p_type := 'native', ...)`.
    V4,
    /// pg_partman 5.2.4 (Debian 13's scripts): `create_parent(p_type := 'range', ...)`.
    V5,
}

impl Partman {
    /// Both versions, for tests that loop over them.
    pub const BOTH: [Partman; 2] = [Partman::V4, Partman::V5];

    /// The extension version string: `"4.7.2"` or `"5.2.4"`.
    pub fn version(&self) -> &'static str {
        match self {
            Partman::V4 => "4.7.2",
            Partman::V5 => "5.2.4",
        }
    }

    /// The major version: 4 or 5.
    pub fn major(&self) -> u8 {
        match self {
            Partman::V4 => 4,
            Partman::V5 => 5,
        }
    }
}

impl fmt::Display for Partman {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pg_partman {}", self.version())
    }
}

/// A server certificate and its private key (PEM files anywhere readable by the test; the
/// cluster copies them into its own folder with the permissions PostgreSQL demands).
#[derive(Clone, Debug)]
pub struct SslFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test certificate authority and a server certificate it signed (SANs `localhost` and
/// `127.0.0.1`), as PEM files, made by [`make_test_certs`].
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// The CA certificate: what a client passes as `sslrootcert` for `verify-ca` /
    /// `verify-full`.
    pub ca_cert: PathBuf,
    /// The server's certificate and key, for [`ClusterOptions::ssl`].
    pub server: SslFiles,
}

/// Write a fresh CA and a server certificate signed by it (`rcgen`) into `dir`, valid for
/// `localhost` and `127.0.0.1`.
pub fn make_test_certs(dir: &Path) -> TestCerts {
    make_test_certs_for(dir, &["localhost", "127.0.0.1"])
}

/// Like [`make_test_certs`], for the given host names (the first is the common name).
pub fn make_test_certs_for(dir: &Path, names: &[&str]) -> TestCerts {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "retentionc test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    server_params
        .distinguished_name
        .push(DnType::CommonName, names[0]);
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
    let certs = TestCerts {
        ca_cert: dir.join("ca.crt"),
        server: SslFiles {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        },
    };
    fs::write(&certs.ca_cert, ca.pem()).unwrap();
    fs::write(&certs.server.cert, server_cert.pem()).unwrap();
    fs::write(&certs.server.key, server_key.serialize_pem()).unwrap();
    certs
}

/// Options for a private cluster made with [`Cluster::start`]. `Default` is what
/// [`Cluster::shared`] uses: no TLS, trust authentication for everyone on 127.0.0.1.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// Turn TLS on (`ssl = on`, `ssl_cert_file`, `ssl_key_file`).
    pub ssl: Option<SslFiles>,
    /// With `ssl`: reject TCP connections without TLS (`hostnossl ... reject`) instead of
    /// trusting both kinds. Note that [`TestDb::client`] connects without TLS, so on such a
    /// cluster use `psql` with `sslmode=require` (or the product's own connector).
    pub require_ssl: bool,
    /// `(role, password)`: create a `LOGIN SUPERUSER` role with that password, and an
    /// `scram-sha-256` line for it on 127.0.0.1 placed before the trust lines, so that it can
    /// only log in with its password (for tests that check passwords never leak).
    pub password_user: Option<(String, String)>,
    /// Server settings written after the defaults (so they win), e.g.
    /// `("max_locks_per_transaction", "16")` for tests of small lock tables.
    pub settings: Vec<(String, String)>,
}

/// A throwaway PostgreSQL 15 cluster: `initdb` in a fresh temporary folder, listening on a
/// free port of 127.0.0.1 and on a Unix socket inside that folder.
///
/// Settings: `shared_preload_libraries = 'pg_cron'`, `cron.database_name =
/// 'retentionc_cron'`, `cron.use_background_workers = on` (jobs run in background workers,
/// so pg_cron needs no password and no localhost connection; `max_worker_processes` is
/// raised to 32 to leave room for them), `timezone = 'UTC'` (pg_partman wants UTC),
/// `max_connections = 200`. `fsync = off`, `synchronous_commit = off`, `full_page_writes =
/// off` and `wal_init_zero = off` make it faster: the data is thrown away with the cluster,
/// so crash safety buys nothing here, and commit-heavy tests (batched deletes that commit
/// per batch) would otherwise wait on the disk. The folder is in `/dev/shm` when possible
/// (see `cluster_tempdir`). Start-up takes about 0.2 s, a database about 50 ms.
///
/// Dropping it stops the server (`pg_ctl stop -m immediate`) and deletes the folder; a
/// watchdog process does the same if the test process dies without dropping it.
pub struct Cluster {
    port: u16,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    options: ClusterOptions,
}

/// One default cluster per test process, shared by concurrent tests (see [`Cluster::shared`]).
static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Cluster {
    /// The test process's default cluster. Concurrent tests get the same one; it is started
    /// on first use and stopped when the last `Arc` is dropped (a later call starts a new
    /// one), so nothing is left running once `cargo test` ends.
    pub fn shared() -> Arc<Cluster> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = slot.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Cluster::start(ClusterOptions::default()));
        *slot = Arc::downgrade(&cluster);
        cluster
    }

    /// Start a private cluster. Wrap it in an `Arc` to make databases in it
    /// ([`Cluster::database`] takes `self: &Arc<Self>`). Panics with the full output of
    /// whatever failed.
    pub fn start(options: ClusterOptions) -> Cluster {
        assert!(
            !options.require_ssl || options.ssl.is_some(),
            "ClusterOptions::require_ssl needs ClusterOptions::ssl"
        );
        let started = Instant::now();
        let dir = cluster_tempdir();
        let root = dir.path().to_path_buf();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        give_to_server_user(&root);

        make_data_dir(&root);

        let mut cluster = Cluster {
            port: 0,
            dir: Some(dir),
            root,
            options,
        };
        cluster.write_config();

        // A free port: bind port 0, note it, release it, start the server on it. Another
        // process may take it in between: then pick another.
        const ATTEMPTS: usize = 8;
        for attempt in 1..=ATTEMPTS {
            cluster.port = free_port();
            cluster.write_port();
            let mut pg_ctl = server_command(&pg_bin("pg_ctl"), &cluster.root);
            pg_ctl
                .arg("-D")
                .arg(cluster.data_dir())
                .arg("-l")
                .arg(cluster.log_path())
                .args(["-w", "-t", "60", "start"]);
            let output = pg_ctl
                .output()
                .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", pg_bin("pg_ctl")));
            if output.status.success() {
                break;
            }
            let log = cluster.log();
            let collision =
                log.contains("could not bind") || log.contains("Address already in use");
            if collision && attempt < ATTEMPTS {
                continue;
            }
            panic!(
                "pg_ctl start failed (port {}, attempt {attempt}): {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server log {} ---\n{}",
                cluster.port,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                cluster.log_path().display(),
                log
            );
        }

        cluster.spawn_watchdog();

        // pg_cron's scheduler connects to cron.database_name and retries every second until
        // it exists: make it now. It is never dropped (see `cron_database`).
        let mut setup = vec![format!("CREATE DATABASE {}", quote_ident(CRON_DATABASE))];
        if let Some((user, password)) = &cluster.options.password_user {
            setup.push(format!(
                "CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}",
                quote_ident(user),
                quote_literal(password)
            ));
        }
        cluster.admin_psql("postgres", &setup);
        eprintln!(
            "test cluster: PostgreSQL on 127.0.0.1:{} ({}) started in {} ms",
            cluster.port,
            cluster.root.display(),
            started.elapsed().as_millis()
        );
        cluster
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Host for TCP connections: always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The cluster's temporary folder; also its `unix_socket_directories`.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// The server's log so far (empty if unreadable).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The options it was started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// `postgres://postgres@127.0.0.1:PORT/DBNAME`: the superuser, over TCP, no password.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{dbname}", self.port)
    }

    /// A URL for another role, with the password if given (user, password and database
    /// name are percent-encoded).
    pub fn url_as(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        let userinfo = match password {
            Some(p) => format!("{}:{}", percent_encode(user), percent_encode(p)),
            None => percent_encode(user),
        };
        format!(
            "postgres://{userinfo}@127.0.0.1:{}/{}",
            self.port,
            percent_encode(dbname)
        )
    }

    /// Key/value connection string (`host=127.0.0.1 port=P user=postgres dbname=D`).
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname={dbname}",
            self.port
        )
    }

    /// Run statements as the superuser through the Unix socket (which works whatever the
    /// TCP rules), each as its own `-c` (so `CREATE DATABASE` works), with `-X -q -A -t
    /// -v ON_ERROR_STOP=1`. Returns stdout; panics with stderr on failure.
    pub fn admin_psql<S: AsRef<str>>(&self, dbname: &str, statements: &[S]) -> String {
        self.try_admin_psql(dbname, statements)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Cluster::admin_psql`] without the panic.
    pub fn try_admin_psql<S: AsRef<str>>(
        &self,
        dbname: &str,
        statements: &[S],
    ) -> Result<String, String> {
        let mut cmd = psql_command();
        cmd.args(["-q", "-A", "-t", "-h"]).arg(&self.root).args([
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            dbname,
        ]);
        for statement in statements {
            cmd.arg("-c").arg(statement.as_ref());
        }
        let output = cmd.output().map_err(|e| format!("cannot run psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "psql -d {dbname} failed ({}) running {:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
                output.status,
                statements.iter().map(AsRef::as_ref).collect::<Vec<&str>>(),
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            ))
        }
    }

    /// A fresh, uniquely named database with `CREATE SCHEMA partman; CREATE EXTENSION
    /// pg_partman SCHEMA partman VERSION '<version>'`. Dropped when the `TestDb` is.
    pub fn database(self: &Arc<Self>, partman: Partman) -> TestDb {
        let name = unique_db_name();
        self.admin_psql(
            "postgres",
            &[&format!("CREATE DATABASE {}", quote_ident(&name))],
        );
        let db = TestDb {
            cluster: Arc::clone(self),
            url: self.url(&name),
            name,
            partman,
            drop_on_drop: true,
        };
        self.admin_psql(&db.name, &install_partman(partman));
        db
    }

    /// A copy of `template` (`CREATE DATABASE ... TEMPLATE`, a file copy: identical sets in
    /// two databases without setting them up twice). `template` must have no session open.
    pub fn database_from(self: &Arc<Self>, template: &TestDb) -> TestDb {
        let name = unique_db_name();
        self.admin_psql(
            "postgres",
            &[&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&name),
                quote_ident(&template.name)
            )],
        );
        TestDb {
            cluster: Arc::clone(self),
            url: self.url(&name),
            name,
            partman: template.partman,
            drop_on_drop: true,
        }
    }

    /// The cluster's `retentionc_cron` database (the only one where pg_cron can be created
    /// and where its scheduler runs jobs), for one test at a time: the guard holds a
    /// process-wide lock until dropped. On each hand-out the database is reset: other
    /// sessions and running jobs are ended, pg_cron and pg_partman dropped, every user
    /// schema dropped (and `public` recreated), then `partman` + `pg_partman` at the asked
    /// version and `pg_cron` created anew (so `cron.job` and `cron.job_run_details` are
    /// empty). Dropping the guard drops `pg_cron` again, so no job keeps running.
    ///
    /// The database itself is kept: pg_cron 1.4's scheduler exits for good (code 0, not
    /// restarted) when its database is dropped `WITH (FORCE)`, while it copes with the
    /// extension being dropped and created again.
    ///
    /// pg_cron 1.4 takes only cron syntax (`* * * * *`: whole minutes, in UTC);
    /// `'N seconds'` arrived in 1.5 and is rejected here (`invalid schedule`).
    pub fn cron_database(self: &Arc<Self>, partman: Partman) -> CronDb {
        let lock = CronLock::acquire();
        let mut reset = vec![
            // End other sessions and running jobs, but not the scheduler itself.
            "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type <> 'pg_cron launcher'"
                .to_string(),
            "DROP EXTENSION IF EXISTS pg_cron CASCADE".to_string(),
            "DROP EXTENSION IF EXISTS pg_partman CASCADE".to_string(),
            "DO $$DECLARE s name; BEGIN \
               FOR s IN SELECT nspname FROM pg_namespace \
                 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                   AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
               LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; END$$"
                .to_string(),
            "CREATE SCHEMA public AUTHORIZATION pg_database_owner".to_string(),
            "GRANT USAGE ON SCHEMA public TO PUBLIC".to_string(),
            format!("ALTER DATABASE {} RESET ALL", quote_ident(CRON_DATABASE)),
        ];
        reset.extend(install_partman(partman));
        reset.push("CREATE EXTENSION pg_cron".to_string());
        self.admin_psql(CRON_DATABASE, &reset);
        CronDb {
            db: TestDb {
                cluster: Arc::clone(self),
                name: CRON_DATABASE.to_string(),
                url: self.url(CRON_DATABASE),
                partman,
                drop_on_drop: false,
            },
            _lock: lock,
        }
    }

    fn conf_path(&self, name: &str) -> PathBuf {
        self.data_dir().join(name)
    }

    fn write_config(&self) {
        let socket_dir = self
            .root
            .to_str()
            .expect("temporary folder path is not UTF-8");
        assert!(
            !socket_dir.contains('\''),
            "temporary folder path contains a quote"
        );
        let mut conf = format!(
            "\n# --- retentionc test cluster ---\n\
             include_if_exists = 'retentionc_port.conf'\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             shared_preload_libraries = 'pg_cron'\n\
             cron.database_name = '{CRON_DATABASE}'\n\
             cron.use_background_workers = on\n\
             max_worker_processes = 32\n\
             timezone = 'UTC'\n\
             log_timezone = 'UTC'\n\
             max_connections = 200\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             wal_init_zero = off\n"
        );
        for (name, value) in &self.options.settings {
            conf.push_str(&format!("{name} = {}\n", quote_literal(value)));
        }
        let mut hba = String::from("# retentionc test cluster\nlocal all all trust\n");
        if let Some(ssl) = &self.options.ssl {
            let ssl_dir = self.root.join("ssl");
            fs::create_dir(&ssl_dir).unwrap();
            let cert = ssl_dir.join("server.crt");
            let key = ssl_dir.join("server.key");
            fs::copy(&ssl.cert, &cert)
                .unwrap_or_else(|e| panic!("cannot copy {}: {e}", ssl.cert.display()));
            fs::copy(&ssl.key, &key)
                .unwrap_or_else(|e| panic!("cannot copy {}: {e}", ssl.key.display()));
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
            for p in [&ssl_dir, &cert, &key] {
                give_to_server_user(p);
            }
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert.display(),
                key.display()
            ));
        }
        if self.options.require_ssl {
            hba.push_str("hostnossl all all 127.0.0.1/32 reject\n");
        }
        if let Some((user, _)) = &self.options.password_user {
            hba.push_str(&format!(
                "host all {} 127.0.0.1/32 scram-sha-256\n",
                hba_quote(user)
            ));
        }
        if self.options.require_ssl {
            hba.push_str("hostssl all all 127.0.0.1/32 trust\n");
        } else {
            hba.push_str("host all all 127.0.0.1/32 trust\n");
        }
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.conf_path("postgresql.conf"))
            .expect("postgresql.conf");
        f.write_all(conf.as_bytes()).unwrap();
        fs::write(self.conf_path("pg_hba.conf"), hba).unwrap();
    }

    /// A detached shell that stops the server and deletes its folder if this test process
    /// dies without running `Drop` (killed by a timeout, aborted, `process::exit`). It exits
    /// by itself, within a second, once the cluster has been dropped normally.
    fn spawn_watchdog(&self) {
        const SCRIPT: &str = r#"
pid=$1; data=$2; root=$3; shift 3
while kill -0 "$pid" 2>/dev/null; do
    [ -d "$data" ] || exit 0
    sleep 1
done
[ -f "$data/postmaster.pid" ] && "$@" -D "$data" -m immediate -w stop >/dev/null 2>&1
rm -rf "$root"
"#;
        let stop = server_command(&pg_bin("pg_ctl"), &self.root);
        let mut cmd = Command::new("setsid");
        cmd.args(["-f", "sh", "-c", SCRIPT, "retentionc-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(self.data_dir())
            .arg(&self.root)
            .arg(stop.get_program())
            .args(stop.get_args())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Best effort: a missing setsid only loses the crash clean-up.
        let _ = cmd.status();
    }

    fn write_port(&self) {
        let path = self.conf_path("retentionc_port.conf");
        fs::write(&path, format!("port = {}\n", self.port)).unwrap();
        give_to_server_user(&path);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut pg_ctl = server_command(&pg_bin("pg_ctl"), &self.root);
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let stopped = pg_ctl.status().map(|s| s.success()).unwrap_or(false);
        if !stopped {
            // Last resort, by the pid the server wrote itself (never by name).
            if let Ok(pidfile) = fs::read_to_string(self.data_dir().join("postmaster.pid"))
                && let Some(pid) = pidfile
                    .lines()
                    .next()
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
            {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// A database of a test cluster with pg_partman installed in schema `partman`, made by
/// [`Cluster::database`]; dropped (`WITH (FORCE)`) when this is dropped.
pub struct TestDb {
    /// The cluster it lives in (kept alive while this is).
    pub cluster: Arc<Cluster>,
    /// The database name.
    pub name: String,
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
    /// The pg_partman version installed in it.
    pub partman: Partman,
    drop_on_drop: bool,
}

impl TestDb {
    /// A `tokio_postgres` client (no TLS) as the superuser; its connection task is spawned
    /// on the current tokio runtime. Panics if it cannot connect.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Connection arguments for the library's `db::connect`, as the superuser.
    pub fn args(&self) -> retentionc::cli::DbArgs {
        retentionc::cli::DbArgs::url(self.url.clone())
    }

    /// Run `psql -X -v ON_ERROR_STOP=1 -d <url> ARGS...` and return its stdout; panics with
    /// its stderr if it fails. E.g. `db.psql(&["-Atc", "select 1"])`.
    pub fn psql(&self, args: &[&str]) -> String {
        let output = self.psql_output(args);
        if !output.status.success() {
            panic!(
                "psql {args:?} on {} failed ({})\n--- stderr ---\n{}\n--- stdout ---\n{}",
                self.url,
                output.status,
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Like [`TestDb::psql`] but returns the whole `Output`, whether it failed or not.
    pub fn psql_output(&self, args: &[&str]) -> Output {
        let mut cmd = psql_command();
        cmd.arg("-d").arg(&self.url).args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"))
    }

    /// Run an SQL file with psql (`-f PATH`); returns stdout, panics with stderr on failure.
    pub fn psql_file(&self, path: impl AsRef<Path>) -> String {
        let path = path.as_ref().to_str().expect("non-UTF-8 path").to_string();
        self.psql(&["-f", &path])
    }

    /// The single value of a query (`psql -At -c SQL`), trimmed.
    pub fn scalar(&self, sql: &str) -> String {
        self.psql(&["-At", "-c", sql]).trim().to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.drop_on_drop {
            let _ = self.cluster.try_admin_psql(
                "postgres",
                &[&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&self.name)
                )],
            );
        }
    }
}

/// The `retentionc_cron` database, held by one test at a time (see
/// [`Cluster::cron_database`]). Derefs to [`TestDb`] (which here is never dropped).
pub struct CronDb {
    db: TestDb,
    _lock: CronLock,
}

impl Deref for CronDb {
    type Target = TestDb;
    fn deref(&self) -> &TestDb {
        &self.db
    }
}

impl Drop for CronDb {
    fn drop(&mut self) {
        // Stop the jobs this test left behind; the next hand-out resets the rest. Runs
        // before `_lock` is released (fields drop after this).
        let _ = self
            .db
            .cluster
            .try_admin_psql(CRON_DATABASE, &["DROP EXTENSION IF EXISTS pg_cron CASCADE"]);
    }
}

/// Process-wide lock on the cron database (a plain flag + condvar, so the guard owns
/// nothing borrowed and is `Send`). Not poisoned by a panicking test.
static CRON_BUSY: Mutex<bool> = Mutex::new(false);
static CRON_FREED: Condvar = Condvar::new();

struct CronLock;

impl CronLock {
    fn acquire() -> CronLock {
        let mut busy = CRON_BUSY.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = CRON_FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        CronLock
    }
}

impl Drop for CronLock {
    fn drop(&mut self) {
        *CRON_BUSY.lock().unwrap_or_else(|e| e.into_inner()) = false;
        CRON_FREED.notify_one();
    }
}

fn install_partman(partman: Partman) -> Vec<String> {
    vec![
        "CREATE SCHEMA partman".to_string(),
        format!(
            "CREATE EXTENSION pg_partman SCHEMA partman VERSION '{}'",
            partman.version()
        ),
    ]
}

fn unique_db_name() -> String {
    let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
    // The test's thread name (its path) helps when reading a server log.
    let thread = std::thread::current();
    let hint: String = thread
        .name()
        .unwrap_or("")
        .rsplit("::")
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("t{n}_{hint}")
}

/// The cluster's folder: under `RETENTIONC_TEST_TMPDIR` if set, else in `/dev/shm` (a
/// tmpfs: on this kind of machine creating a file on the root file system costs about 1 ms,
/// so `initdb` and every `CREATE DATABASE`, which create ~300 files each, run several times
/// faster in memory), else in the system's temporary folder.
fn cluster_tempdir() -> tempfile::TempDir {
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix("retentionc-pg-");
        b
    };
    if let Some(base) = std::env::var_os("RETENTIONC_TEST_TMPDIR") {
        return builder().tempdir_in(&base).unwrap_or_else(|e| {
            panic!("cannot make a folder in RETENTIONC_TEST_TMPDIR={base:?}: {e}")
        });
    }
    if let Ok(dir) = builder().tempdir_in("/dev/shm") {
        return dir;
    }
    builder()
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temporary folder for PostgreSQL: {e}"))
}

const INITDB_ARGS: [&str; 8] = [
    "-U",
    SUPERUSER,
    "--auth=trust",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
];

/// Fill `root/data` with a fresh cluster. `initdb` takes most of a cluster's start-up
/// (0.35 s on tmpfs, 0.7 to 1 s on disk), so its untouched result is kept in Cargo's
/// `target/tmp` (one copy per PostgreSQL version), and later clusters copy it (`cp -a`,
/// about 40 ms into tmpfs).
fn make_data_dir(root: &Path) {
    let data = root.join("data");
    let cache = initdb_cache_path();
    if let Some(cache) = &cache
        && cache.join("PG_VERSION").is_file()
    {
        let copied = Command::new("cp").arg("-a").arg(cache).arg(&data).status();
        if copied.map(|s| s.success()).unwrap_or(false) {
            return;
        }
        let _ = fs::remove_dir_all(&data);
    }
    let mut initdb = server_command(&pg_bin("initdb"), root);
    initdb.arg("-D").arg(&data).args(INITDB_ARGS);
    run_or_panic(initdb, "initdb");
    // Best effort: publish a copy for later clusters (atomically, first one wins).
    if let Some(cache) = cache {
        let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut staging = cache.clone().into_os_string();
        staging.push(format!(".tmp-{}-{n}", std::process::id()));
        let staging = PathBuf::from(staging);
        let _ = fs::create_dir_all(cache.parent().unwrap());
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&data)
            .arg(&staging)
            .status();
        if !copied.map(|s| s.success()).unwrap_or(false) || fs::rename(&staging, &cache).is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
    }
}

/// `target/tmp/retentionc-initdb-<postgres version>-<settings>`, or `None` when the
/// server's version cannot be read.
fn initdb_cache_path() -> Option<PathBuf> {
    let out = Command::new(pg_bin("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let version: String = String::from_utf8_lossy(&out.stdout)
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Bump the suffix whenever INITDB_ARGS change.
    let name = format!("retentionc-initdb-{version}-v1");
    Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join(name))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e}"))
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// (uid, gid) of the `postgres` user, when running as root.
fn server_user_ids() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 3 && fields[0] == SUPERUSER)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    });
    Some(ids.unwrap_or_else(|| {
        panic!("running as root but there is no `postgres` user: run scripts/install-deps.sh")
    }))
}

fn give_to_server_user(path: &Path) {
    if let Some((uid, gid)) = server_user_ids() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("cannot chown {} to postgres: {e}", path.display()));
    }
}

/// A server program, run as `postgres` when we are root; cwd = the cluster folder.
fn server_command(program: &Path, cwd: &Path) -> Command {
    let mut cmd = if is_root() {
        let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("runuser");
        let mut c = Command::new(runuser);
        c.args(["-u", SUPERUSER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.current_dir(cwd).env("LC_ALL", "C").stdin(Stdio::null());
    clear_pg_env(&mut cmd);
    cmd
}

fn psql_command() -> Command {
    let mut cmd = Command::new(pg_bin("psql"));
    clear_pg_env(&mut cmd);
    cmd.env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .args(["-X", "-v", "ON_ERROR_STOP=1"]);
    cmd
}

/// libpq/PostgreSQL variables from the caller's environment must not steer the tests.
fn clear_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if let Some(k) = key.to_str()
            && k.starts_with("PG")
        {
            cmd.env_remove(k);
        }
    }
}

fn run_or_panic(mut cmd: Command, what: &str) -> Output {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"));
    if !output.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    output
}

/// `"name"` with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with inner quotes doubled (standard_conforming_strings is on).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn hba_quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', ""))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// How long to wait between polls in tests that wait for the server (e.g. cron jobs).
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
