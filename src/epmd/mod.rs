//! The Erlang Port Mapper Daemon: server, client and wire codec.
