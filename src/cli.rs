//! The command line: clap definitions only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `retentionc --version`: the release and the commit it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("RETENTIONC_BUILD_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "retentionc",
    version = VERSION,
    about = "Data-retention policies for PostgreSQL, compiled to reviewed SQL"
)]
pub struct Cli {
    /// Project settings file; its folder is the project root. Must exist when given;
    /// without it, ./retentionc.yaml, or the defaults when that is absent.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile policies/ into the SQL files under generated/.
    Compile {
        /// Write nothing; fail with a diff when generated/ is not what compile would write.
        #[arg(long)]
        check: bool,
        /// Also write generated/_removed/<TABLE>.sql, the statements that release a table
        /// no policy names any more (for a table whose generated file is already gone).
        #[arg(long = "remove", value_name = "TABLE", conflicts_with = "check")]
        remove: Vec<String>,
        /// Also write generated/<TABLE>.convert.sql, the statements that convert the plain
        /// table into a partitioned one (`retentionc convert`); compiled again until deleted.
        #[arg(long = "convert", value_name = "TABLE", conflicts_with = "check")]
        convert: Vec<String>,
    },
    /// Show what apply would change in the live database, and what data it would expire.
    Plan(PlanArgs),
    /// Change the live database to match the policies, in one transaction.
    Apply(ApplyArgs),
    /// Run retention now: pg_partman maintenance, then the delete rules.
    Run(RunArgs),
    /// Show, per table, whether retention holds.
    Status(StatusArgs),
    /// Write policies describing tables already registered with pg_partman.
    Import(ImportArgs),
    /// Convert a plain table into the pg_partman partitioned table its policy describes,
    /// online: copy in batches, then swap names (docs/convert.md).
    Convert(ConvertArgs),
    /// Write a starter retentionc.yaml and an example policy.
    Init {
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Print the JSON Schema of the policy format (for editors' YAML language servers).
    Schema,
    /// Print the manual page (roff), or write one per command into a folder.
    Man {
        /// Write retentionc.1 and retentionc-<command>.1 into this folder.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// How to reach the database: URL, else DATABASE_URL, else the libpq PG* variables
/// (docs/connections.md).
#[derive(Debug, Clone, Default, Args)]
pub struct DbArgs {
    /// postgres://user@host:port/db?sslmode=verify-full&sslrootcert=ca.pem, or a libpq key=value string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// No answer from the server for this long while it is not working on retentionc's
    /// request: the connection is declared dead [default: 30s].
    #[arg(long, env = "RETENTIONC_STALL_TIMEOUT", value_name = "DURATION", value_parser = crate::db::params::parse_stall_timeout)]
    pub stall_timeout: Option<std::time::Duration>,
    /// The environment variable the connection string was read from, for messages (an
    /// environment's `url_env`); None: `--database-url` or `DATABASE_URL`.
    #[arg(skip)]
    pub url_origin: Option<&'static str>,
    /// The database to open instead of the one the settings name (a discovered database:
    /// the server's settings, its own name).
    #[arg(skip)]
    pub dbname: Option<String>,
}

impl DbArgs {
    /// The arguments of `--database-url URL` alone.
    pub fn url(url: impl Into<String>) -> DbArgs {
        DbArgs {
            database_url: Some(url.into()),
            ..DbArgs::default()
        }
    }
}

/// Which environments of retentionc.yaml a command reaches, and how many databases at
/// once (docs/fleet.md). With neither `--env` nor `--all`, the command reaches the one
/// database of `--database-url`.
#[derive(Debug, Clone, Default, Args)]
pub struct FleetArgs {
    /// Every database of this environment of retentionc.yaml; may be repeated. The
    /// connection comes from the environment's url_env, not --database-url.
    #[arg(long = "env", value_name = "NAME")]
    pub environments: Vec<String>,
    /// Every database of every environment, in the order of retentionc.yaml.
    #[arg(long, conflicts_with = "environments")]
    pub all: bool,
    /// Databases worked on at once with --env or --all [default: 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
}

impl FleetArgs {
    /// Whether the command reaches environments rather than one database.
    pub fn selected(&self) -> bool {
        self.all || !self.environments.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Output format; text on a terminal, else text too unless chosen.
    #[arg(long, value_enum)]
    pub format: Option<PlanFormat>,
    /// Also save the plan, for `apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan from the policies even when generated/ is not what compile writes (for local
    /// use: apply still refuses until generated/ is compiled and reviewed).
    #[arg(long)]
    pub compile: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Apply without asking (required when not on a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Apply exactly this saved plan; refused if the database changed since.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Allow changes that expire existing data (shorter retention, new delete rules).
    #[arg(long)]
    pub allow_data_loss: bool,
    /// Also convert plain tables into partitioned ones when the plan says so (this can
    /// take hours; see `retentionc convert`). Without it, apply leaves conversions alone.
    #[arg(long)]
    pub convert: bool,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// With --env or --all: go on with the next database after one fails (by default
    /// apply stops at the first failure, so a canary listed first protects the rest).
    #[arg(long)]
    pub keep_going: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
    /// Prometheus text format, for node_exporter's textfile collector.
    Prometheus,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only these tables (schema.table); may be repeated.
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,
    /// Show what would be dropped, detached, moved or deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: count the rows instead of asking the planner for an estimate.
    #[arg(long, requires = "dry_run")]
    pub exact: bool,
    /// Output: text lines, or one JSON object per event (step, table, run) on stdout.
    #[arg(long, value_enum, default_value = "text", conflicts_with = "dry_run")]
    pub log_format: LogFormat,
    /// Sessions that run delete rules at once, on each database (maintenance is one
    /// session: pg_partman runs one maintenance at a time); a table is pruned by one
    /// session only, after its maintenance.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64), conflicts_with = "dry_run")]
    pub delete_jobs: u16,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: StatusFormat,
    /// Exit 3 when any promise of any policy is broken (see docs/run-status.md).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only these tables (schema.table); may be repeated.
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,
    /// For tables that already have a policy: rewrite, in place, the keys import manages
    /// (delete rules, schedule, other keys and comments stay).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The table (schema.table); its policy must have `partitioning`.
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// Undo the conversion: before the swap, drop the partitioned copy; after it, give the
    /// original (with every write made since) its name back.
    #[arg(long, conflicts_with_all = ["finish", "no_swap"])]
    pub revert: bool,
    /// After the swap: stop recording writes for --revert. The original stays, renamed.
    #[arg(long, conflicts_with_all = ["revert", "no_swap"])]
    pub finish: bool,
    /// Copy and catch up, but stop before the swap (run again without it to swap).
    #[arg(long)]
    pub no_swap: bool,
    /// Rows to copy per committed batch (approximately: a batch ends with every row of its
    /// newest time, or at a heap page).
    #[arg(long, default_value_t = crate::convert::DEFAULT_BATCH_ROWS, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub batch_rows: u32,
    /// Swap attempts when the table stays locked past lock_timeout.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub swap_attempts: u32,
}
