//! The distribution wire: ETF codec, distribution header and atom cache, fragments, control
//! messages (`erts/doc/src/erl_dist_protocol.xml`, `erts/doc/src/erl_ext_dist.xml`).
pub mod etf;
