//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

pub mod beamq;
pub mod cluster;
pub mod fdlimit;
pub mod mosquitto;
pub mod ports;
