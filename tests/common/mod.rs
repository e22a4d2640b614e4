//! Helpers shared by the integration tests. Every test file says `mod common;` and uses
//! the parts it needs, so unused items are expected in any one test binary.
#![allow(dead_code)]

pub mod cluster;
pub mod data;
pub mod planner;
pub mod project;
pub mod proxy;
