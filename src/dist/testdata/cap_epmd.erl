-module(cap_epmd).
-export([start_link/0, register_node/2, register_node/3, port_please/2, port_please/3,
         names/1, address_please/3, listen_port_please/2]).
start_link() -> ignore.
register_node(_, _) -> {ok, 1}.
register_node(_, _, _) -> {ok, 1}.
listen_port_please(_Name, _Host) -> {ok, list_to_integer(os:getenv("CAP_LISTEN", "0"))}.
port_please(N, H) -> port_please(N, H, infinity).
port_please(_, _, _) -> {port, list_to_integer(os:getenv("CAP_CONNECT", "1")), 6}.
names(_) -> {error, address}.
address_please(_, Host, AF) -> inet:getaddr(Host, AF).
