//! retentionc: data-retention policies for PostgreSQL, compiled to reviewed SQL.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! policy text ──policy::──▶ model ──render──▶ generated SQL            (compile: no database)
//!                             │
//! live database ──catalog──▶ state ──plan (diff)──▶ changes ──apply / run──▶ database
//! ```

pub mod apply;
pub mod catalog;
pub mod cli;
pub mod compile;
pub mod config;
pub mod convert;
pub mod db;
pub mod fleet;
pub mod import;
pub mod init;
pub mod man;
pub mod model;
pub mod output;
pub mod parallel;
pub mod plan;
pub mod policy;
pub mod render;
pub mod run;
pub mod schema;
pub mod state;
pub mod status;
