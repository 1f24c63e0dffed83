%% @doc A beamq node as seen by stock OTP 25 nodes, in both port modes (issue 4).
%%
%% The ct node itself is not distributed: each group starts beamq (`$BEAMQ_BIN start') and
%% stock BEAM peers (`peer', controlled over stdio) on ports it picks, runs the checks on the
%% peers, and kills every OS process it started by pid.
%%   epmd group: a private /usr/bin/epmd on a free port, WITH_EPMD=1 ERL_EPMD_PORT=Port.
%%   ekka group: no epmd; peers use `-epmd_module beamq_epmd' (interop/) and ports follow names.
-module(dist_SUITE).
-import(beamq_ct_os, [free_ekka_offset/0, free_port/0, os_start/4, os_kill/1]).
%% Debian ships common_test without its include directory: define what we use of ct.hrl.
-define(config(Key, Config), proplists:get_value(Key, Config)).

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).
-export([connect_and_nodes/1, ping/1, rpc_and_erpc/1, undef_errors/1, erpc_timeout_and_cast/1,
         monitor_unknown_name/1, monitor_rex_quiet/1, links_and_exits/1,
         big_binary/1, wrong_cookie/1, hidden_peer/1, outward_send/1, ticks_keep_idle_connection/1,
         beam_node_killed/1, beamq_killed/1]).
%% Run on the peers.
-export([p_catch_erpc/4, p_catch_erpc/5, p_big_echo/2, p_monitor_name/2, p_monitor_quiet/2, p_links/1, p_spawn_link_sleeper/1,
         p_idle/2, p_sink/1, p_sink_got/0, p_await_nodedown/2, p_monitor_node/1]).

-define(COOKIE, "beamq_dist_suite").
-define(TICK, "4").

suite() -> [{timetrap, {minutes, 3}}].

all() -> [{group, ekka}, {group, epmd}].

groups() ->
    Cases = [connect_and_nodes, ping, rpc_and_erpc, undef_errors, erpc_timeout_and_cast,
             monitor_unknown_name,
             monitor_rex_quiet, links_and_exits, big_binary, wrong_cookie, hidden_peer,
             outward_send,
             ticks_keep_idle_connection, beam_node_killed, beamq_killed],
    [{ekka, [sequence], Cases}, {epmd, [sequence], Cases}].

init_per_suite(Config) ->
    beamq_ct_os:suite_config(?MODULE, Config).

end_per_suite(_Config) -> ok.

init_per_group(Mode, Config) ->
    Priv = ?config(priv_dir, Config),
    {Env, Extra} = mode_env(Mode, Config),
    Config1 = Extra ++ [{mode, Mode}, {env, Env} | Config],
    Beamq = start_beamq(Config1, Priv),
    {ok, Peer, PeerNode} = start_peer(Config1, "a", ?COOKIE),
    [{peer, Peer}, {peer_node, PeerNode} | Beamq ++ Config1].

end_per_group(_Mode, Config) ->
    [catch peer:stop(P) || {K, P} <- Config, K =:= peer],
    [os_kill(H) || {K, H} <- Config, K =:= beamq_os orelse K =:= epmd_os],
    ok.

%%--------------------------------------------------------------------
%% Cases (run in order within a group)

connect_and_nodes(Config) ->
    B = ?config(beamq_node, Config),
    true = pcall(Config, net_kernel, connect_node, [B]),
    true = lists:member(B, pcall(Config, erlang, nodes, [])),
    %% and beamq sees the peer as a visible node
    A = ?config(peer_node, Config),
    [A] = pcall(Config, rpc, call, [B, erlang, nodes, []]).

ping(Config) ->
    pong = pcall(Config, net_adm, ping, [?config(beamq_node, Config)]).

rpc_and_erpc(Config) ->
    B = ?config(beamq_node, Config),
    B = pcall(Config, rpc, call, [B, erlang, node, []]),
    B = pcall(Config, erpc, call, [B, erlang, node, []]),
    "25" = pcall(Config, rpc, call, [B, erlang, system_info, [otp_release]]).

undef_errors(Config) ->
    B = ?config(beamq_node, Config),
    {badrpc, {'EXIT', {undef, [{nomod, nofun, [1], []}]}}} =
        pcall(Config, rpc, call, [B, nomod, nofun, [1]]),
    {error, {exception, undef, [{nomod, nofun, [1, <<"x">>], []}]}} =
        pcall(Config, ?MODULE, p_catch_erpc, [B, nomod, nofun, [1, <<"x">>]]).

%% erpc's timeout (the caller demonitors; beamq's late exit must not disturb it) and casts.
erpc_timeout_and_cast(Config) ->
    B = ?config(beamq_node, Config),
    {error, {erpc, timeout}} = pcall(Config, ?MODULE, p_catch_erpc, [B, timer, sleep, [1000], 200]),
    ok = pcall(Config, erpc, cast, [B, erlang, node, []]),
    true = pcall(Config, rpc, cast, [B, erlang, node, []]),
    timer:sleep(1200),
    B = pcall(Config, erpc, call, [B, erlang, node, []]).

monitor_unknown_name(Config) ->
    B = ?config(beamq_node, Config),
    {'DOWN', process, {nosuch, B}, noproc} = pcall(Config, ?MODULE, p_monitor_name, [nosuch, B]).

monitor_rex_quiet(Config) ->
    quiet = pcall(Config, ?MODULE, p_monitor_quiet, [rex, ?config(beamq_node, Config)]).

links_and_exits(Config) ->
    ok = pcall(Config, ?MODULE, p_links, [?config(beamq_node, Config)]).

%% 10 MB peer -> beamq (fragments in) and back (fragments out).
big_binary(Config) ->
    ok = pcall(Config, ?MODULE, p_big_echo, [?config(beamq_node, Config), 10 * 1024 * 1024],
               60000).

wrong_cookie(Config) ->
    {ok, Peer, _} = start_peer(Config, "wrongcookie", "not_the_cookie"),
    try
        false = peer:call(Peer, net_kernel, connect_node, [?config(beamq_node, Config)], 20000)
    after
        peer:stop(Peer)
    end.

%% A -hidden peer sees beamq in nodes(hidden) only, and beamq sees it as hidden.
hidden_peer(Config) ->
    B = ?config(beamq_node, Config),
    {ok, Peer, PeerNode} = start_peer(Config, "hidden", ?COOKIE, ["-hidden"]),
    try
        true = peer:call(Peer, net_kernel, connect_node, [B], 20000),
        [B] = peer:call(Peer, erlang, nodes, [hidden]),
        [] = peer:call(Peer, erlang, nodes, []),
        true = lists:member(PeerNode, pcall(Config, rpc, call, [B, erlang, nodes, [hidden]])),
        false = lists:member(PeerNode, pcall(Config, rpc, call, [B, erlang, nodes, []])),
        B = peer:call(Peer, rpc, call, [B, erlang, node, []])
    after
        peer:stop(Peer)
    end.

%% beamq opens a connection itself to deliver a send to a registered process on a BEAM node
%% it has never talked to.
outward_send(Config) ->
    B = ?config(beamq_node, Config),
    {ok, Peer, PeerNode} = start_peer(Config, "c", ?COOKIE),
    try
        ok = peer:call(Peer, ?MODULE, p_sink, [ct_sink]),
        false = lists:member(PeerNode, pcall(Config, rpc, call, [B, erlang, nodes, []])),
        Msg = {hello, from_beamq},
        Msg = pcall(Config, rpc, call, [B, erlang, send, [{ct_sink, PeerNode}, Msg]]),
        [Msg] = wait_for(fun() -> peer:call(Peer, ?MODULE, p_sink_got, []) end, 100),
        true = lists:member(B, peer:call(Peer, erlang, nodes, []))
    after
        peer:stop(Peer)
    end.

ticks_keep_idle_connection(Config) ->
    ok = pcall(Config, ?MODULE, p_idle, [?config(beamq_node, Config), 12000], 30000).

%% A BEAM node dies (kill -9): beamq notices (the link of a beamq process to it fires
%% noconnection, and the node leaves nodes()).
beam_node_killed(Config) ->
    B = ?config(beamq_node, Config),
    {ok, Peer, PeerNode} = start_peer(Config, "victim", ?COOKIE),
    Sleeper = peer:call(Peer, ?MODULE, p_spawn_link_sleeper, [B]),
    true = pcall(Config, rpc, call, [B, erlang, is_process_alive, [Sleeper]]),
    OsPid = peer:call(Peer, os, getpid, []),
    os:cmd("kill -9 " ++ OsPid),
    catch peer:stop(Peer),
    wait_for(fun() ->
                     Nodes = pcall(Config, rpc, call, [B, erlang, nodes, []]),
                     Alive = pcall(Config, rpc, call, [B, erlang, is_process_alive, [Sleeper]]),
                     case {lists:member(PeerNode, Nodes), Alive} of
                         {false, false} -> done;
                         _ -> false
                     end
             end, 100).

%% beamq dies (kill -9): monitor_node on the BEAM side gets nodedown within the ticktime.
beamq_killed(Config) ->
    B = ?config(beamq_node, Config),
    ok = pcall(Config, ?MODULE, p_monitor_node, [B]),
    os_kill(?config(beamq_os, Config)),
    {nodedown, B} = pcall(Config, ?MODULE, p_await_nodedown, [B, 6000], 10000).

%%--------------------------------------------------------------------
%% Functions run on the BEAM peers

p_catch_erpc(N, M, F, A) ->
    p_catch_erpc(N, M, F, A, infinity).

p_catch_erpc(N, M, F, A, T) ->
    try erpc:call(N, M, F, A, T) of
        V -> {ok, V}
    catch
        Class:Reason -> {Class, Reason}
    end.

p_big_echo(B, Size) ->
    Bin = crypto:strong_rand_bytes(Size),
    case rpc:call(B, erlang, iolist_to_binary, [Bin]) of
        Bin -> ok;
        Other when is_binary(Other) -> {mismatch, byte_size(Other)};
        Other -> Other
    end.

p_monitor_name(Name, Node) ->
    Ref = erlang:monitor(process, {Name, Node}),
    receive
        {'DOWN', Ref, process, Obj, Reason} -> {'DOWN', process, Obj, Reason}
    after 2000 -> timeout
    end.

p_monitor_quiet(Name, Node) ->
    Ref = erlang:monitor(process, {Name, Node}),
    R = receive
            {'DOWN', Ref, _, _, _} = D -> D
        after 1500 -> quiet
        end,
    erlang:demonitor(Ref, [flush]),
    R.

%% Links across the connection, both directions:
%%  1. a BEAM process spawn_links a beamq process and dies: the beamq process dies too;
%%  2. a trapping BEAM process kills its linked beamq process with exit/2: it gets the EXIT;
%%  3. a beamq process links to a BEAM process (LINK from beamq) and exits normally: the
%%     trapping BEAM process gets {'EXIT', Pid, normal}.
p_links(B) ->
    Self = self(),
    {P1, M1} = spawn_monitor(fun() ->
                                     S = spawn_link(B, timer, sleep, [infinity]),
                                     Self ! {sleeper, S},
                                     exit(boom)
                             end),
    S1 = receive {sleeper, S} -> S after 5000 -> exit(no_sleeper) end,
    receive {'DOWN', M1, process, P1, boom} -> ok after 5000 -> exit(no_down) end,
    ok = wait_for(fun() -> not rpc:call(B, erlang, is_process_alive, [S1]) andalso ok end, 50),
    process_flag(trap_exit, true),
    S2 = spawn_link(B, timer, sleep, [infinity]),
    true = rpc:call(B, erlang, is_process_alive, [S2]),
    exit(S2, shot),
    receive {'EXIT', S2, shot} -> ok after 5000 -> exit({no_exit, S2}) end,
    L = spawn(B, erlang, link, [Self]),
    receive {'EXIT', L, normal} -> ok after 5000 -> exit({no_link_exit, L}) end,
    process_flag(trap_exit, false),
    ok.

p_spawn_link_sleeper(B) ->
    Self = self(),
    spawn(fun() ->
                  S = spawn_link(B, timer, sleep, [infinity]),
                  Self ! {sleeper, S},
                  receive stop -> ok end
          end),
    receive {sleeper, S} -> S after 5000 -> exit(no_sleeper) end.

p_idle(B, Ms) ->
    true = net_kernel:connect_node(B),
    erlang:monitor_node(B, true),
    receive
        {nodedown, B} -> {nodedown_while_idle, B}
    after Ms ->
            erlang:monitor_node(B, false),
            true = lists:member(B, nodes()),
            B = rpc:call(B, erlang, node, []),
            ok
    end.

p_sink(Name) ->
    Parent = self(),
    Pid = spawn(fun() -> register(Name, self()), Parent ! ready, sink_loop([]) end),
    receive ready -> ok after 5000 -> exit({no_sink, Pid}) end.

sink_loop(Got) ->
    receive
        {get, From} -> From ! {got, lists:reverse(Got)}, sink_loop(Got);
        M -> sink_loop([M | Got])
    end.

p_sink_got() ->
    ct_sink ! {get, self()},
    receive
        {got, []} -> false;
        {got, L} -> L
    after 2000 -> false
    end.

p_monitor_node(B) ->
    %% A holder process owns the node monitor so it outlives this call.
    Parent = self(),
    Pid = spawn(fun() ->
                        erlang:monitor_node(B, true),
                        Parent ! monitoring,
                        receive {nodedown, B} = D ->
                                receive {await, From} -> From ! D end
                        end
                end),
    register(ct_node_watch, Pid),
    receive monitoring -> ok after 5000 -> exit(no_monitor) end.

p_await_nodedown(_B, Ms) ->
    ct_node_watch ! {await, self()},
    receive D -> D after Ms -> timeout end.

%%--------------------------------------------------------------------
%% Helpers on the ct node

pcall(Config, M, F, A) -> pcall(Config, M, F, A, 15000).
pcall(Config, M, F, A, Timeout) -> peer:call(?config(peer, Config), M, F, A, Timeout).

wait_for(_F, 0) -> exit(wait_for_timeout);
wait_for(F, N) ->
    case F() of
        false -> timer:sleep(100), wait_for(F, N - 1);
        Done -> Done
    end.

%% Mode-specific environment for every OS process of the group, and extra config.
mode_env(ekka, _Config) ->
    {[], []};
mode_env(epmd, Config) ->
    Port = free_port(),
    EpmdLog = filename:join(?config(priv_dir, Config), "epmd.log"),
    H = os_start("/usr/bin/epmd", ["-port", integer_to_list(Port)], [], EpmdLog),
    ok = wait_for(fun() ->
                          case gen_tcp:connect("127.0.0.1", Port, []) of
                              {ok, S} -> gen_tcp:close(S), ok;
                              _ -> false
                          end
                  end, 50),
    {[{"ERL_EPMD_PORT", integer_to_list(Port)}], [{epmd_os, H}]}.

start_beamq(Config, Priv) ->
    Mode = ?config(mode, Config),
    Log = filename:join(Priv, "beamq.log"),
    {Name, ModeArgs, ModeEnv} =
        case Mode of
            ekka ->
                {"bq" ++ integer_to_list(free_ekka_offset()) ++ "@127.0.0.1", [], []};
            epmd ->
                P = integer_to_list(free_port()),
                {"beamq@127.0.0.1", ["--dist-listen-min", P, "--dist-listen-max", P],
                 [{"WITH_EPMD", "1"}]}
        end,
    Args = ["start", "--name", Name, "--cookie", ?COOKIE, "--net-ticktime", ?TICK,
            "--data-dir", filename:join(Priv, "data"), "--mqtt-port", "0", "--ws-port", "off"]
        ++ ModeArgs,
    H = os_start(?config(beamq_bin, Config), Args, ModeEnv ++ ?config(env, Config), Log),
    ok = wait_for(fun() ->
                          case file:read_file(Log) of
                              {ok, Bin} -> binary:match(Bin, <<"started">>) =/= nomatch andalso ok;
                              _ -> false
                          end
                  end, 100),
    [{beamq_os, H}, {beamq_node, list_to_atom(Name)}].

start_peer(Config, Base, Cookie) ->
    start_peer(Config, Base, Cookie, []).

start_peer(Config, Base, Cookie, Extra) ->
    Name = case ?config(mode, Config) of
               ekka -> "ct" ++ integer_to_list(free_ekka_offset());
               epmd -> "ct" ++ Base ++ integer_to_list(erlang:unique_integer([positive]))
           end,
    ModeArgs = case ?config(mode, Config) of
                   ekka -> ["-start_epmd", "false", "-epmd_module", "beamq_epmd"];
                   epmd -> []
               end,
    Paths = lists:append([["-pa", P] || P <- ?config(code_paths, Config)]),
    peer:start(#{name => Name, host => "127.0.0.1", longnames => true,
                 connection => standard_io,
                 args => ["-setcookie", Cookie, "-kernel", "net_ticktime", ?TICK,
                          "-kernel", "dist_auto_connect", "always"] ++ ModeArgs ++ Paths ++ Extra,
                 env => ?config(env, Config)}).
