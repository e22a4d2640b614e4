//! retentionc: data-retention policies for PostgreSQL, compiled to reviewed SQL.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! policy text ──policy::──▶ model ──render──▶ generated SQL            (compile: no database)
//!                             │
//! live database ──catalog──▶ state ──plan (diff)──▶ changes ──apply / run──▶ database
//! ```

pub mod cli;
pub mod compile;
pub mod config;
pub mod model;
pub mod policy;
pub mod render;
pub mod commands;
pub mod db;
pub mod plan;
