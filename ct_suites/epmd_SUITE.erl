%% Common Test suite: beamq epmd driven from the Erlang side.
%%
%% The suite starts `$BEAMQ_BIN epmd -port P -address 127.0.0.1` on a port it picks, and talks
%% to it with OTP's own client code (erl_epmd, net_adm:names/1) running in `peer` nodes started
%% with `-epmd_port P -start_epmd false` (so the machine's 4369 is never touched), plus raw
%% gen_tcp for byte-level checks. The daemon is killed by its OS pid at the end.
-module(epmd_SUITE).
-import(beamq_ct_os, [free_port/0]).

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([names_empty/1, stock_node_registers/1, port_please_matches_names/1,
         nodes_find_each_other/1, duplicate_name_refused/1, stopped_node_disappears/1,
         creation_bumps_on_reregistration/1, garbage_is_closed/1]).

all() ->
    [names_empty, stock_node_registers, port_please_matches_names, nodes_find_each_other,
     duplicate_name_refused, stopped_node_disappears, creation_bumps_on_reregistration,
     garbage_is_closed].

init_per_suite(Config) ->
    Bin = case os:getenv("BEAMQ_BIN") of
              false -> ct:fail("BEAMQ_BIN is not set (scripts/test-all sets it)");
              B -> B
          end,
    Port = free_port(),
    EpmdPort = open_port({spawn_executable, Bin},
                         [{args, ["epmd", "-port", integer_to_list(Port),
                                  "-address", "127.0.0.1"]},
                          exit_status, stderr_to_stdout]),
    {os_pid, OsPid} = erlang:port_info(EpmdPort, os_pid),
    try
        ok = wait_listening(Port, 100),
        {ok, Query, _} = peer:start(#{connection => standard_io,
                                       args => ["-epmd_port", integer_to_list(Port)]}),
        [{epmd_port, Port}, {epmd_os_pid, OsPid}, {epmd_erl_port, EpmdPort}, {query, Query}
         | Config]
    catch
        Class:Reason:Stack ->
            %% end_per_suite does not run when this fails: stop the daemon here.
            os:cmd("kill " ++ integer_to_list(OsPid)),
            erlang:raise(Class, Reason, Stack)
    end.

end_per_suite(Config) ->
    catch peer:stop(cfg(query, Config)),
    os:cmd("kill " ++ integer_to_list(cfg(epmd_os_pid, Config))),
    catch port_close(cfg(epmd_erl_port, Config)),
    ok.

%% --- cases -----------------------------------------------------------------------------------

names_empty(Config) ->
    {ok, []} = qcall(Config, net_adm, names, ["127.0.0.1"]).

stock_node_registers(Config) ->
    {ok, Peer, Node} = start_node(Config, "ct_alpha"),
    {ok, Names} = qcall(Config, net_adm, names, ["127.0.0.1"]),
    {"ct_alpha", _} = lists:keyfind("ct_alpha", 1, Names),
    'ct_alpha@127.0.0.1' = Node,
    peer:stop(Peer).

port_please_matches_names(Config) ->
    {ok, Peer, _} = start_node(Config, "ct_beta"),
    {ok, Names} = qcall(Config, net_adm, names, ["127.0.0.1"]),
    {"ct_beta", DistPort} = lists:keyfind("ct_beta", 1, Names),
    {port, DistPort, 6} = qcall(Config, erl_epmd, port_please, ["ct_beta", {127,0,0,1}]),
    noport = qcall(Config, erl_epmd, port_please, ["ct_nobody", {127,0,0,1}]),
    peer:stop(Peer).

nodes_find_each_other(Config) ->
    {ok, PeerA, NodeA} = start_node(Config, "ct_gamma"),
    {ok, PeerB, _} = start_node(Config, "ct_delta"),
    pong = peer:call(PeerB, net_adm, ping, [NodeA]),
    peer:stop(PeerB),
    peer:stop(PeerA).

duplicate_name_refused(Config) ->
    {ok, Peer, _} = start_node(Config, "ct_eps"),
    %% A second registration of a live name: result 1, creation 99 (ALIVE2_X_RESP).
    {ok, S} = gen_tcp:connect({127,0,0,1}, cfg(epmd_port, Config),
                              [binary, {active, false}, {packet, 2}]),
    ok = gen_tcp:send(S, alive2_req("ct_eps", 5555)),
    ok = inet:setopts(S, [{packet, raw}]),
    {ok, <<$v, 1, 99:32>>} = gen_tcp:recv(S, 0, 5000),
    gen_tcp:close(S),
    peer:stop(Peer).

stopped_node_disappears(Config) ->
    {ok, Peer, _} = start_node(Config, "ct_zeta"),
    true = listed(Config, "ct_zeta"),
    peer:stop(Peer),
    ok = wait_until(fun() -> not listed(Config, "ct_zeta") end, 50).

creation_bumps_on_reregistration(Config) ->
    Port = cfg(epmd_port, Config),
    C1 = register_once(Port, "ct_eta"),
    C2 = register_once(Port, "ct_eta"),
    C2 = C1 + 1,
    Now = erlang:system_time(second),
    true = abs(C1 - Now) < 10.

garbage_is_closed(Config) ->
    Port = cfg(epmd_port, Config),
    {ok, S} = gen_tcp:connect({127,0,0,1}, Port, [binary, {active, false}]),
    ok = gen_tcp:send(S, <<0, 1, $Q>>),
    {error, closed} = gen_tcp:recv(S, 0, 5000),
    {ok, []} = qcall(Config, net_adm, names, ["127.0.0.1"]).

%% --- helpers ---------------------------------------------------------------------------------

%% (Debian's erlang-common-test ships no include/ct.hrl, so no ?config macro.)
cfg(Key, Config) ->
    proplists:get_value(Key, Config).

qcall(Config, M, F, A) ->
    peer:call(cfg(query, Config), M, F, A).

start_node(Config, Name) ->
    Port = integer_to_list(cfg(epmd_port, Config)),
    peer:start_link(#{name => Name, host => "127.0.0.1", longnames => true,
                      connection => standard_io,
                      args => ["-epmd_port", Port, "-start_epmd", "false",
                               "-setcookie", "beamq_ct"]}).

listed(Config, Name) ->
    {ok, Names} = qcall(Config, net_adm, names, ["127.0.0.1"]),
    lists:keymember(Name, 1, Names).

%% Register Name on a raw connection, read the creation, then close (unregisters).
register_once(Port, Name) ->
    {ok, S} = gen_tcp:connect({127,0,0,1}, Port, [binary, {active, false}, {packet, 2}]),
    ok = gen_tcp:send(S, alive2_req(Name, 5556)),
    ok = inet:setopts(S, [{packet, raw}]),
    {ok, <<$v, 0, Creation:32>>} = gen_tcp:recv(S, 0, 5000),
    gen_tcp:close(S),
    ok = wait_until(fun() -> not raw_listed(Port, Name) end, 50),
    Creation.

raw_listed(Port, Name) ->
    {ok, S} = gen_tcp:connect({127,0,0,1}, Port, [binary, {active, false}]),
    ok = gen_tcp:send(S, <<1:16, $n>>),
    Bin = recv_all(S, <<>>),
    binary:match(Bin, list_to_binary("name " ++ Name ++ " ")) =/= nomatch.

recv_all(S, Acc) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, B} -> recv_all(S, <<Acc/binary, B/binary>>);
        {error, closed} -> Acc
    end.

alive2_req(Name, DistPort) ->
    N = list_to_binary(Name),
    <<$x, DistPort:16, 77, 0, 6:16, 6:16, (byte_size(N)):16, N/binary, 0:16>>.

wait_listening(_Port, 0) -> {error, not_listening};
wait_listening(Port, N) ->
    case gen_tcp:connect({127,0,0,1}, Port, [], 1000) of
        {ok, S} -> gen_tcp:close(S), ok;
        _ -> timer:sleep(50), wait_listening(Port, N - 1)
    end.

wait_until(_Fun, 0) -> {error, timeout};
wait_until(Fun, N) ->
    case Fun() of
        true -> ok;
        false -> timer:sleep(100), wait_until(Fun, N - 1)
    end.
