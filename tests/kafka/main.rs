//! Integration tests of the Kafka source against a real Apache Kafka broker (started once for
//! this test binary by `vigil-testkit`, or the one named by `VIGIL_TEST_KAFKA`).

mod arrival_speed;
mod broker_outage;
mod common;
mod compression;
mod crash;
mod dead_letter;
mod delivery;
mod generate_run;
mod hooks_e2e;
mod rebalance;
mod restart;
mod run_cli;
mod scale_out;
mod sinks;
mod vigil_proc;
