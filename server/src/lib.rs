//! The `headroom` binary's library: config, HTTP, startup and commands, so that
//! integration tests can start the real application in-process.

pub mod api;
pub mod auth;
pub mod backtest;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod notifications;
pub mod startup;
pub mod telemetry;
