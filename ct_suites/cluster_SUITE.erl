%% @doc A cluster of 3 beamq nodes and 1 stock BEAM node running `beamq_interop' (interop/),
%% in both port modes (issue 6; docs/cluster.md, docs/route-protocol.md).
%%
%% Each group starts b1..b3 (`$BEAMQ_BIN start', MQTT on a port each node picks and prints),
%% the BEAM member x (`peer', stdio control, interop/ebin in its path, data dir under priv) and
%% a hidden control node (`peer', `-hidden') through which the suite calls the beamq nodes with
%% erpc: hidden, so it never counts as a connected member, never meshes with anyone through
%% global and never takes part in pg. The ct node itself talks to nobody over distribution.
%%   epmd group: a private /usr/bin/epmd on a free port, WITH_EPMD=1 ERL_EPMD_PORT=Port.
%%   ekka group: no epmd; peers use `-epmd_module beamq_epmd' and ports follow names.
%% Every OS process is killed by pid at the end of its group. Waits poll with deadlines.
%%
%% Membership cases (in order; each leaves the state the next expects): beamq joins BEAM,
%% leave, BEAM joins beamq, restarts of members (they return), force-leave and restart of the
%% force-left node (it stays out), rejoin, join while in another cluster. Status must be
%% identical on every member after each step.
%%
%% Route cases, on the 4-node cluster the membership cases leave behind: MQTT subscribers
%% (mosquitto_sub) and Erlang subscribers (beamq_interop on x, a plain pg member on a stock
%% node) get publishes made anywhere (mosquitto_pub, beamq_interop:publish); the route tables
%% (`beamq_routes:list()') are identical on all nodes after each step; one dispatch per
%% destination node per publish, counted with `beamq_routes:stats()'; unsubscribe and kill -9
%% remove routes everywhere, and a restarted node's new subscriber brings them back.
-module(cluster_SUITE).
-import(beamq_ct_os, [free_ekka_offset/0, free_port/0, os_start/4, os_kill/1]).
-define(config(Key, Config), proplists:get_value(Key, Config)).

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).
-export([beamq_joins_beam/1, leave/1, beam_joins_beamq/1, restart_member/1,
         force_leave_beam/1, force_leave_beamq/1, join_while_in_other_cluster/1]).
-export([route_mqtt_across_nodes/1, route_publish_from_beam/1, route_stock_node_member/1,
         route_one_dispatch_per_node/1, route_unsubscribe/1, route_node_killed/1,
         interop_local_rules/1]).
%% Run on the peers.
-export([p_erpc/4, p_collector/3, p_stock_collector/2, p_collected/1, p_unsubscribe/2]).

-define(COOKIE, "beamq_cluster_suite").
-define(TICK, "4").
-define(WAIT_MS, 20000).
-define(STATE, cluster_suite_state).

suite() -> [{timetrap, {minutes, 4}}].

all() -> [{group, ekka}, {group, epmd}].

groups() ->
    Cases = [beamq_joins_beam, leave, beam_joins_beamq, restart_member, force_leave_beam,
             force_leave_beamq, join_while_in_other_cluster,
             route_mqtt_across_nodes, route_publish_from_beam, route_stock_node_member,
             route_one_dispatch_per_node, route_unsubscribe, route_node_killed,
             interop_local_rules],
    [{ekka, [sequence], Cases}, {epmd, [sequence], Cases}].

init_per_suite(Config) ->
    case beamq_ct_os:suite_config(?MODULE, Config) of
        {skip, _} = Skip -> Skip;
        Config1 ->
            [Ebin | _] = ?config(code_paths, Config1),
            true = filelib:is_regular(filename:join(Ebin, "beamq_interop.app")),
            Config1
    end.

end_per_suite(_Config) -> ok.

init_per_group(Mode, Config) ->
    Priv = filename:join(?config(priv_dir, Config), atom_to_list(Mode)),
    ok = filelib:ensure_dir(filename:join(Priv, "x")),
    start_state(),
    try
        Env = mode_env(Mode, Priv),
        Config1 = [{mode, Mode}, {env, Env}, {dir, Priv} | Config],
        Bs = [start_beamq(Config1, new_beamq(Config1, B)) || B <- [b1, b2, b3]],
        {ok, _, _} = start_peer(Config1, ctl, peer_name(Mode, "cqctl"), ["-hidden"]),
        X = peer_name(Mode, "cqx"),
        _ = start_x(Config1, X),
        [{beamqs, [node_of(B) || B <- Bs]}, {x, list_to_atom(X ++ "@127.0.0.1")} | Config1]
    catch
        C:R:St ->
            cleanup(),
            erlang:raise(C, R, St)
    end.

end_per_group(_Mode, _Config) ->
    cleanup(),
    ok.

%%--------------------------------------------------------------------
%% Membership cases

beamq_joins_beam(Config) ->
    [B1, B2, _B3] = ?config(beamqs, Config),
    X = ?config(x, Config),
    ok = on(Config, B1, beamq_cluster, join, [X]),
    wait_status(Config, [B1, X], [B1, X], []),
    {error, already_in_cluster} = on(Config, B1, beamq_cluster, join, [X]),
    {error, already_in_cluster} = on(Config, X, beamq_cluster, join, [B1]),
    {error, cannot_join_self} = on(Config, X, beamq_cluster, join, [X]),
    {error, cannot_force_leave_self} = on(Config, X, beamq_cluster, force_leave, [X]),
    %% A second beamq node joins the BEAM node: x admits it and tells b1 (member_joined).
    ok = on(Config, B2, beamq_cluster, join, [X]),
    wait_status(Config, [B1, B2, X], [B1, B2, X], []),
    true = on(Config, X, beamq_cluster, is_member, [B2]),
    true = on(Config, B1, beamq_cluster, is_member, [B2]).

leave(Config) ->
    [B1, B2, _B3] = ?config(beamqs, Config),
    X = ?config(x, Config),
    ok = on(Config, X, beamq_interop, leave, []),
    wait_status(Config, [X], [X], []),
    wait_status(Config, [B1, B2], [B1, B2], []),
    {error, node_not_in_cluster} = on(Config, X, beamq_interop, leave, []),
    false = on(Config, B1, beamq_cluster, is_member, [X]),
    %% x is no longer connected to by anyone's keeper.
    stays(Config, fun() -> not connected(Config, X, [B1, B2]) end, 1500).

beam_joins_beamq(Config) ->
    [B1, B2, B3] = All3 = ?config(beamqs, Config),
    X = ?config(x, Config),
    ok = on(Config, B3, beamq_cluster, join, [B1]),
    wait_status(Config, All3, All3, []),
    ok = on(Config, X, beamq_interop, join, [B2]),
    wait_status(Config, [X | All3], [X | All3], []),
    [{running_nodes, _}] = on(Config, X, beamq_interop, status, []),
    true = on(Config, B3, beamq_cluster, is_member, [X]).

%% x stops and starts again: it reconnects by itself (its file lists the cluster). Then b3 is
%% killed (-9) and started again: the others list it as stopped meanwhile, then running.
restart_member(Config) ->
    [_, _, B3] = All3 = ?config(beamqs, Config),
    X = ?config(x, Config),
    All = [X | All3],
    stop_x(),
    wait_status(Config, All3, All3, [X]),
    _ = start_x(Config, x_name(X)),
    wait_status(Config, All, All, []),
    Old = kill_beamq(b3),
    wait_status(Config, [X | All3 -- [B3]], All -- [B3], [B3]),
    _ = start_beamq(Config, Old),
    wait_status(Config, All, All, []).

%% A beamq node force-leaves x; x stays out, also after a restart (and then rejoins).
force_leave_beam(Config) ->
    [B1, _, _] = All3 = ?config(beamqs, Config),
    X = ?config(x, Config),
    ok = on(Config, B1, beamq_cluster, force_leave, [X]),
    wait_status(Config, [X], [X], []),
    wait_status(Config, All3, All3, []),
    {error, node_not_in_cluster} = on(Config, B1, beamq_cluster, force_leave, [X]),
    stop_x(),
    _ = start_x(Config, x_name(X)),
    stays(Config, fun() ->
                          status_of(Config, X) =:= {ok, [{running_nodes, [X]}]}
                              andalso not connected(Config, X, All3)
                              andalso lists:all(fun(B) -> not on(Config, B, beamq_cluster, is_member, [X]) end, All3)
                  end, 2500),
    %% A force-left node may join again.
    ok = on(Config, X, beamq_interop, join, [B1]),
    wait_status(Config, [X | All3], [X | All3], []).

%% x force-leaves a beamq node (b3, told while connected); b3 stays out after a kill and a
%% restart, then rejoins through x.
force_leave_beamq(Config) ->
    [B1, B2, B3] = ?config(beamqs, Config),
    X = ?config(x, Config),
    ok = on(Config, X, beamq_cluster, force_leave, [B3]),
    wait_status(Config, [B3], [B3], []),
    wait_status(Config, [X, B1, B2], [X, B1, B2], []),
    Old = kill_beamq(b3),
    _ = start_beamq(Config, Old),
    stays(Config, fun() ->
                          status_of(Config, B3) =:= {ok, [{running_nodes, [B3]}]}
                              andalso status_of(Config, X) =:=
                                  {ok, [{running_nodes, lists:sort([X, B1, B2])}]}
                  end, 2500),
    ok = on(Config, B3, beamq_cluster, join, [X]),
    wait_status(Config, [X, B1, B2, B3], [X, B1, B2, B3], []).

%% A node in one cluster joins another: it leaves its own first (EMQX semantics), for x and
%% for a beamq node whose cluster x belongs to.
join_while_in_other_cluster(Config) ->
    [B1, B2, B3] = All3 = ?config(beamqs, Config),
    X = ?config(x, Config),
    ok = on(Config, B3, beamq_cluster, leave, []),
    wait_status(Config, [B3], [B3], []),
    wait_status(Config, [X, B1, B2], [X, B1, B2], []),
    %% x, in {b1, b2, x}, joins b3.
    ok = on(Config, X, beamq_interop, join, [B3]),
    wait_status(Config, [X, B3], [X, B3], []),
    wait_status(Config, [B1, B2], [B1, B2], []),
    %% b2, in {b1, b2}, joins x.
    ok = on(Config, B2, beamq_cluster, join, [X]),
    wait_status(Config, [X, B2, B3], [X, B2, B3], []),
    wait_status(Config, [B1], [B1], []),
    ok = on(Config, B1, beamq_cluster, join, [X]),
    wait_status(Config, [X | All3], [X | All3], []).

%%--------------------------------------------------------------------
%% Route cases

%% mosquitto_sub on b3 to t/# and an Erlang subscriber on x get a publish to t/a made on b1.
route_mqtt_across_nodes(Config) ->
    [B1, _B2, B3] = ?config(beamqs, Config),
    X = ?config(x, Config),
    wait_routes(Config, all_nodes(Config), []),
    Sub3 = mqtt_sub(Config, b3, sub3, ["t/#"]),
    wait_routes(Config, all_nodes(Config), [{<<"t/#">>, [B3]}]),
    ok = on(Config, X, ?MODULE, p_collector, [xsub, [<<"t/#">>], payload]),
    wait_routes(Config, all_nodes(Config), [{<<"t/#">>, lists:sort([B3, X])}]),
    [{<<"t/#">>, _}] = on(Config, B1, beamq_routes, show, [<<"t/a">>]),
    [] = on(Config, B1, beamq_routes, show, [<<"u/a">>]),
    mqtt_pub(Config, b1, "t/a", "m1"),
    wait_lines(Sub3, ["t/a m1"]),
    wait_collected(Config, X, xsub, [{deliver, <<"t/a">>, <<"m1">>}]).

%% A publish from the BEAM node reaches MQTT subscribers on two beamq nodes (and x's own).
route_publish_from_beam(Config) ->
    [_B1, B2, B3] = ?config(beamqs, Config),
    X = ?config(x, Config),
    Sub2 = mqtt_sub(Config, b2, sub2, ["t/+"]),
    wait_routes(Config, all_nodes(Config),
                [{<<"t/#">>, lists:sort([B3, X])}, {<<"t/+">>, [B2]}]),
    ok = on(Config, X, beamq_interop, publish, [<<"t/b">>, <<"m2">>, 1]),
    wait_lines(Sub2, ["t/b m2"]),
    wait_lines(get_state({sub, sub3}), ["t/a m1", "t/b m2"]),
    wait_collected(Config, X, xsub, [{deliver, <<"t/a">>, <<"m1">>},
                                     {deliver, <<"t/b">>, <<"m2">>}]),
    os_kill(get_state({os, {sub, sub2}})),
    wait_routes(Config, all_nodes(Config), [{<<"t/#">>, lists:sort([B3, X])}]).

%% A plain process on a stock node (pg scope only, no interop app, not a cluster member)
%% joins a beamq_route group, and gets `{dispatch, Topic, {delivery, Sender, Message}}'.
route_stock_node_member(Config) ->
    [B1, _B2, B3] = ?config(beamqs, Config),
    X = ?config(x, Config),
    {ok, S, SNode} = start_peer(Config, stock, peer_name(?config(mode, Config), "cqs"), []),
    try
        true = peer:call(S, net_kernel, connect_node, [B1], 20000),
        ok = peer:call(S, ?MODULE, p_stock_collector, [ssub, <<"t/#">>], 20000),
        wait_routes(Config, all_nodes(Config), [{<<"t/#">>, lists:sort([B3, X, SNode])}]),
        mqtt_pub(Config, b1, "t/c", "m3"),
        ok = wait_until(fun() ->
                                case peer:call(S, ?MODULE, p_collected, [ssub], 20000) of
                                    [{dispatch, <<"t/c">>,
                                      {delivery, Sender,
                                       {message, Id, 1, _From, Flags, Headers, <<"t/c">>,
                                        <<"m3">>, Ts}}}] ->
                                        is_pid(Sender) andalso node(Sender) =:= B1 andalso
                                            is_binary(Id) andalso byte_size(Id) =:= 16 andalso
                                            is_map(Flags) andalso is_map(Headers) andalso
                                            is_integer(Ts);
                                    _ -> false
                                end
                        end, ?WAIT_MS),
        wait_lines(get_state({sub, sub3}), ["t/a m1", "t/b m2", "t/c m3"])
    after
        catch peer:stop(S),
        del_state({peer, stock})
    end,
    wait_routes(Config, all_nodes(Config), [{<<"t/#">>, lists:sort([B3, X])}]).

%% One dispatch per destination node per publish, however many filters and subscribers match
%% there: x has three matching filters (two processes), b2 one MQTT client with two.
route_one_dispatch_per_node(Config) ->
    [B1, B2, B3] = ?config(beamqs, Config),
    X = ?config(x, Config),
    ok = on(Config, X, ?MODULE, p_collector, [csub1, [<<"c/#">>, <<"c/+">>], payload]),
    ok = on(Config, X, ?MODULE, p_collector, [csub2, [<<"c/a">>], full]),
    Sub = mqtt_sub(Config, b2, csub, ["c/#", "c/+"]),
    T = [{<<"t/#">>, lists:sort([B3, X])}],
    wait_routes(Config, all_nodes(Config),
                lists:sort([{<<"c/#">>, lists:sort([B2, X])}, {<<"c/+">>, lists:sort([B2, X])},
                            {<<"c/a">>, [X]} | T])),
    Before = [{N, on(Config, N, beamq_routes, stats, [])} || N <- [B1, B2, X]],
    N = 5,
    [mqtt_pub(Config, b1, "c/a", "n" ++ integer_to_list(I)) || I <- lists:seq(1, N)],
    Delta = fun() ->
                    [{Node, maps:map(fun(K, V) -> V - maps:get(K, S0) end,
                                     on(Config, Node, beamq_routes, stats, []))}
                     || {Node, S0} <- Before]
            end,
    Want = [{B1, #{forward => 2 * N, forward_received => 0, forward_dropped => 0}},
            {B2, #{forward => 0, forward_received => N, forward_dropped => 0}},
            {X, #{forward => 0, forward_received => N, forward_dropped => 0}}],
    case wait_until(fun() -> Delta() =:= Want end, ?WAIT_MS) of
        ok -> ok;
        timeout -> ct:fail({forward_counts, Delta(), Want})
    end,
    %% x's subscribers got every message once per matching subscription.
    Payloads = [list_to_binary("n" ++ integer_to_list(I)) || I <- lists:seq(1, N)],
    wait_collected(Config, X, csub1, lists:append([[{deliver, <<"c/a">>, P}, {deliver, <<"c/a">>, P}]
                                                   || P <- Payloads])),
    ok = wait_until(fun() ->
                            L = on(Config, X, ?MODULE, p_collected, [csub2]),
                            [P || {deliver, <<"c/a">>, {message, _, 1, _, _, _, <<"c/a">>, P, _}} <- L]
                                =:= Payloads
                    end, ?WAIT_MS),
    wait_lines_min(Sub, ["c/a " ++ binary_to_list(P) || P <- Payloads]),
    %% Nothing more arrives later.
    timer:sleep(500),
    Want = Delta(),
    %% The BEAM side forwards once per node too: b2's one member is in two matching groups.
    Before2 = [{Node, on(Config, Node, beamq_routes, stats, [])} || Node <- [B1, B2, X]],
    [ok = on(Config, X, beamq_interop, publish, [<<"c/a">>, list_to_binary("x" ++ integer_to_list(I))])
     || I <- lists:seq(1, N)],
    Delta2 = fun() ->
                     [{Node, maps:map(fun(K, V) -> V - maps:get(K, S0) end,
                                      on(Config, Node, beamq_routes, stats, []))}
                      || {Node, S0} <- Before2]
             end,
    Want2 = [{B1, #{forward => 0, forward_received => 0, forward_dropped => 0}},
             {B2, #{forward => 0, forward_received => N, forward_dropped => 0}},
             {X, #{forward => N, forward_received => 0, forward_dropped => 0}}],
    case wait_until(fun() -> Delta2() =:= Want2 end, ?WAIT_MS) of
        ok -> ok;
        timeout -> ct:fail({forward_counts_from_beam, Delta2(), Want2})
    end,
    wait_lines_min(Sub, ["c/a x" ++ integer_to_list(I) || I <- lists:seq(1, N)]),
    timer:sleep(500),
    Want2 = Delta2().

%% Unsubscribing (Erlang side) and disconnecting (MQTT clean session) remove the routes on
%% every node.
route_unsubscribe(Config) ->
    [_B1, _B2, B3] = ?config(beamqs, Config),
    X = ?config(x, Config),
    ok = on(Config, X, ?MODULE, p_unsubscribe, [csub1, <<"c/#">>]),
    ok = on(Config, X, ?MODULE, p_unsubscribe, [csub1, <<"c/+">>]),
    ok = on(Config, X, ?MODULE, p_unsubscribe, [csub2, <<"c/a">>]),
    {error, not_subscribed} = on(Config, X, ?MODULE, p_unsubscribe, [csub2, <<"c/a">>]),
    os_kill(get_state({os, {sub, csub}})),
    wait_routes(Config, all_nodes(Config), [{<<"t/#">>, lists:sort([B3, X])}]),
    ok = on(Config, X, ?MODULE, p_unsubscribe, [xsub, <<"t/#">>]),
    wait_routes(Config, all_nodes(Config), [{<<"t/#">>, [B3]}]).

%% kill -9 of b3 removes its routes everywhere; after its restart a subscriber there brings
%% them back, and messages flow again.
route_node_killed(Config) ->
    [_B1, _B2, B3] = ?config(beamqs, Config),
    X = ?config(x, Config),
    ok = on(Config, X, ?MODULE, p_collector, [ksub, [<<"k/#">>], payload]),
    wait_routes(Config, all_nodes(Config), [{<<"k/#">>, [X]}, {<<"t/#">>, [B3]}]),
    Old = kill_beamq(b3),
    os_kill(get_state({os, {sub, sub3}})),
    wait_routes(Config, all_nodes(Config) -- [B3], [{<<"k/#">>, [X]}]),
    _ = start_beamq(Config, Old),
    wait_status(Config, all_nodes(Config), all_nodes(Config), []),
    Sub = mqtt_sub(Config, b3, sub3b, ["t/#"]),
    wait_routes(Config, all_nodes(Config), [{<<"k/#">>, [X]}, {<<"t/#">>, [B3]}]),
    mqtt_pub(Config, b2, "t/k", "m4"),
    wait_lines(Sub, ["t/k m4"]),
    mqtt_pub(Config, b3, "k/1", "m5"),
    wait_collected(Config, X, ksub, [{deliver, <<"k/1">>, <<"m5">>}]).

%% The BEAM broker's own rules: MQTT matching (`#' matches the parent and everything but
%% `$'-topics, `+' one level), one member of a share group per message, a dead subscriber's
%% route removed everywhere, and bad input (invalid filters and topics, malformed dispatches
%% and stray messages, also sent from a beamq node) refused or logged, never a crash.
interop_local_rules(Config) ->
    [B1 | _] = ?config(beamqs, Config),
    X = ?config(x, Config),
    Nodes = all_nodes(Config),
    Before = on(Config, X, beamq_routes, list, []),
    Broker = on(Config, X, erlang, whereis, [beamq_broker]),
    true = is_pid(Broker),
    Subs = [{lr_hash, <<"#">>}, {lr_parent, <<"l/#">>}, {lr_plus, <<"+/b">>},
            {lr_sys, <<"$SYS/#">>}, {lr_sh1, <<"$share/g/l/s">>}, {lr_sh2, <<"$share/g/l/s">>}],
    [ok = on(Config, X, ?MODULE, p_collector, [Name, [F], payload]) || {Name, F} <- Subs],
    ok = wait_until(fun() ->
                            lists:all(fun(N) ->
                                              call(Config, N, beamq_routes, list, [<<"l/s">>])
                                                  =:= {ok, [{<<"l/s">>, [X]}]}
                                      end, Nodes)
                    end, ?WAIT_MS),
    {error, invalid_filter} = on(Config, X, beamq_interop, subscribe, [<<"a/#/b">>]),
    {error, invalid_filter} = on(Config, X, beamq_interop, subscribe, [<<"a+">>]),
    {error, bad_share_group} = on(Config, X, beamq_interop, subscribe, [<<"$share//a">>]),
    {error, invalid_topic} = on(Config, X, beamq_interop, publish, [<<"l/+">>, <<"p">>]),
    {error, invalid_topic} = on(Config, X, beamq_interop, publish, [<<>>, <<"p">>]),
    {error, {bad_qos, 3}} = on(Config, X, beamq_interop, publish, [<<"l">>, <<"p">>, 3]),
    [ok = on(Config, X, beamq_interop, publish, [T, <<"p">>])
     || T <- [<<"l">>, <<"l/b">>, <<"$SYS/b">>, <<"l/s">>]],
    %% Garbage, locally and from a beamq node; then a well-formed dispatch from that node.
    Msg = {message, <<0:128>>, 0, <<"c">>, #{}, #{}, <<"l/w">>, <<"v">>, 1},
    [on(Config, X, erlang, send, [beamq_broker, Junk])
     || Junk <- [garbage, {dispatch, <<"l/w">>, {delivery, Broker, {message, bad}}},
                 {dispatch, <<"l/+">>, {delivery, Broker, Msg}}, {'$gen_cast', junk}]],
    {error, unknown_call} = on(Config, X, gen_server, call, [beamq_broker, junk]),
    _ = on(Config, B1, erlang, send, [{beamq_broker, X}, {dispatch, 1, 2}]),
    _ = on(Config, B1, erlang, send, [{beamq_broker, X}, {dispatch, <<"l/w">>, {delivery, Broker, Msg}}]),
    wait_collected(Config, X, lr_hash, [{deliver, T, <<"p">>} || T <- [<<"l">>, <<"l/b">>, <<"l/s">>]]
                   ++ [{deliver, <<"l/w">>, <<"v">>}]),
    wait_collected(Config, X, lr_parent, [{deliver, T, <<"p">>} || T <- [<<"l">>, <<"l/b">>, <<"l/s">>]]
                   ++ [{deliver, <<"l/w">>, <<"v">>}]),
    wait_collected(Config, X, lr_plus, [{deliver, <<"l/b">>, <<"p">>}]),
    wait_collected(Config, X, lr_sys, [{deliver, <<"$SYS/b">>, <<"p">>}]),
    [{deliver, <<"l/s">>, <<"p">>}] = on(Config, X, ?MODULE, p_collected, [lr_sh1])
        ++ on(Config, X, ?MODULE, p_collected, [lr_sh2]),
    Broker = on(Config, X, erlang, whereis, [beamq_broker]),
    %% A subscriber that dies takes its route with it, on every node.
    true = on(Config, X, erlang, exit, [on(Config, X, erlang, whereis, [lr_plus]), kill]),
    ok = wait_until(fun() ->
                            lists:all(fun(N) ->
                                              call(Config, N, beamq_routes, list, [<<"+/b">>]) =:= {ok, []}
                                      end, Nodes)
                    end, ?WAIT_MS),
    [true = on(Config, X, erlang, exit, [on(Config, X, erlang, whereis, [Name]), kill])
     || {Name, _} <- Subs, Name =/= lr_plus],
    wait_routes(Config, Nodes, Before),
    Broker = on(Config, X, erlang, whereis, [beamq_broker]).

%%--------------------------------------------------------------------
%% Run on the peers

p_erpc(N, M, F, A) ->
    try erpc:call(N, M, F, A, 10000) of
        V -> {ok, V}
    catch
        C:R -> {C, R}
    end.

%% A process registered `Name' on x, subscribed through beamq_interop, keeping what it gets.
p_collector(Name, Filters, Mode) ->
    start_collector(Name, fun() -> [ok = beamq_interop:subscribe(F, Mode) || F <- Filters] end).

%% A plain process on a stock node: starts the scope and joins the group itself.
p_stock_collector(Name, Group) ->
    case pg:start(beamq_route) of
        {ok, _} -> ok;
        {error, {already_started, _}} -> ok
    end,
    start_collector(Name, fun() -> ok = pg:join(beamq_route, Group, self()) end).

start_collector(Name, Setup) ->
    Parent = self(),
    Pid = spawn(fun() ->
                        register(Name, self()),
                        Setup(),
                        Parent ! {ready, self()},
                        collect_loop([])
                end),
    receive {ready, Pid} -> ok after 5000 -> exit({collector_not_ready, Name}) end.

collect_loop(Got) ->
    receive
        {'$collected', From} -> From ! {'$collected', lists:reverse(Got)}, collect_loop(Got);
        {'$unsubscribe', F, From} -> From ! {'$unsubscribed', beamq_interop:unsubscribe(F)},
                                     collect_loop(Got);
        M -> collect_loop([M | Got])
    end.

p_collected(Name) ->
    Name ! {'$collected', self()},
    receive {'$collected', L} -> L after 5000 -> timeout end.

p_unsubscribe(Name, Filter) ->
    Name ! {'$unsubscribe', Filter, self()},
    receive {'$unsubscribed', R} -> R after 5000 -> timeout end.

%%--------------------------------------------------------------------
%% Calls and waits

%% `M:F(A)' on node `N' (x through its stdio control, beamq through the hidden control node);
%% fails the case on an exception.
on(Config, N, M, F, A) ->
    case call(Config, N, M, F, A) of
        {ok, V} -> V;
        Other -> ct:fail({call_failed, N, M, F, A, Other})
    end.

call(Config, N, M, F, A) ->
    case N =:= ?config(x, Config) of
        true ->
            try peer:call(get_state({peer, x}), M, F, A, 20000) of
                V -> {ok, V}
            catch
                C:R -> {C, R}
            end;
        false ->
            peer:call(get_state({peer, ctl}), ?MODULE, p_erpc, [N, M, F, A], 20000)
    end.

status_of(Config, N) ->
    call(Config, N, beamq_cluster, status, []).

%% Waits until `beamq_cluster:status()' on every node of `Nodes' is the expected reply.
wait_status(Config, Nodes, Running, Stopped) ->
    Want = {ok, [{running_nodes, lists:sort(Running)}] ++
                [{stopped_nodes, lists:sort(Stopped)} || Stopped =/= []]},
    Check = fun() -> lists:all(fun(N) -> status_of(Config, N) =:= Want end, Nodes) end,
    case wait_until(Check, ?WAIT_MS) of
        ok -> ok;
        timeout -> ct:fail({status_mismatch, Want, [{N, status_of(Config, N)} || N <- Nodes]})
    end.

%% Waits until `beamq_routes:list()' on every node of `Nodes' is `Want'.
wait_routes(Config, Nodes, Want) ->
    Check = fun() -> lists:all(fun(N) -> call(Config, N, beamq_routes, list, []) =:= {ok, Want} end,
                               Nodes) end,
    case wait_until(Check, ?WAIT_MS) of
        ok -> ok;
        timeout -> ct:fail({routes_mismatch, Want,
                            [{N, call(Config, N, beamq_routes, list, [])} || N <- Nodes]})
    end.

all_nodes(Config) ->
    lists:sort([?config(x, Config) | ?config(beamqs, Config)]).

wait_collected(Config, N, Name, Want) ->
    case wait_until(fun() -> on(Config, N, ?MODULE, p_collected, [Name]) =:= Want end, ?WAIT_MS) of
        ok -> ok;
        timeout -> ct:fail({collected, Name, Want, on(Config, N, ?MODULE, p_collected, [Name])})
    end.

%% mosquitto_sub on beamq node `Id' (QoS 1, one line "Topic Payload" per message), killed by
%% pid at the end of the case that kills it or of the group.
mqtt_sub(Config, Id, Name, Filters) ->
    #{mqtt_port := Port} = get_state({beamq, Id}),
    Log = filename:join(?config(dir, Config), atom_to_list(Name) ++ ".sub.log"),
    Args = ["-h", "127.0.0.1", "-p", integer_to_list(Port), "-q", "1", "-v",
            "-i", "cs_" ++ atom_to_list(Name)] ++ lists:append([["-t", F] || F <- Filters]),
    H = os_start(os:find_executable("mosquitto_sub"), Args, [], Log),
    put_state({os, {sub, Name}}, H),
    put_state({sub, Name}, Log),
    Log.

mqtt_pub(_Config, Id, Topic, Payload) ->
    #{mqtt_port := Port} = get_state({beamq, Id}),
    Out = os:cmd("timeout 10 mosquitto_pub -h 127.0.0.1 -p " ++ integer_to_list(Port) ++
                     " -q 1 -t '" ++ Topic ++ "' -m '" ++ Payload ++ "'; echo rc=$?"),
    case lists:suffix("rc=0\n", Out) of
        true -> ok;
        false -> ct:fail({mosquitto_pub, Id, Topic, Out})
    end.

sub_lines(Log) ->
    case file:read_file(Log) of
        {ok, B} -> [binary_to_list(L) || L <- binary:split(B, <<"\n">>, [global, trim_all])];
        _ -> []
    end.

%% The subscriber printed exactly these lines.
wait_lines(Log, Want) ->
    case wait_until(fun() -> sub_lines(Log) =:= Want end, ?WAIT_MS) of
        ok -> ok;
        timeout -> ct:fail({sub_lines, Log, Want, sub_lines(Log)})
    end.

%% Every wanted line arrived (a client with overlapping subscriptions may get copies).
wait_lines_min(Log, Want) ->
    case wait_until(fun() -> Want -- sub_lines(Log) =:= [] end, ?WAIT_MS) of
        ok -> ok;
        timeout -> ct:fail({sub_lines, Log, Want, sub_lines(Log)})
    end.

%% Whether node `N' is connected (visibly) to any of `Others'.
connected(Config, N, Others) ->
    {ok, Ns} = call(Config, N, erlang, nodes, []),
    lists:any(fun(O) -> lists:member(O, Ns) end, Others).

%% `Cond' holds now and keeps holding for `Ms' (a node that must stay out).
stays(_Config, Cond, Ms) ->
    case wait_until(Cond, ?WAIT_MS) of
        ok -> ok;
        timeout -> ct:fail(condition_never_held)
    end,
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    stays_loop(Cond, Deadline).

stays_loop(Cond, Deadline) ->
    case erlang:monotonic_time(millisecond) > Deadline of
        true -> ok;
        false ->
            case Cond() of
                true -> timer:sleep(200), stays_loop(Cond, Deadline);
                false -> ct:fail(condition_broke)
            end
    end.

wait_until(F, Ms) ->
    wait_loop(F, erlang:monotonic_time(millisecond) + Ms).

wait_loop(F, Deadline) ->
    case F() of
        true -> ok;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> timeout;
                false -> timer:sleep(200), wait_loop(F, Deadline)
            end
    end.

%%--------------------------------------------------------------------
%% Nodes

%% A fresh node name for this mode: in ekka mode the numeric suffix is the free dist offset
%% (so `Base' must not end with a digit).
peer_name(ekka, Base) -> Base ++ integer_to_list(free_ekka_offset());
peer_name(epmd, Base) -> Base ++ "_" ++ integer_to_list(erlang:unique_integer([positive])).

x_name(X) -> hd(string:split(atom_to_list(X), "@")).

%% A beamq node's fixed description: name, args, env; started by start_beamq/2.
new_beamq(Config, Id) ->
    Mode = ?config(mode, Config),
    Name = peer_name(Mode, "cq" ++ atom_to_list(Id) ++ "n") ++ "@127.0.0.1",
    {ModeArgs, ModeEnv} =
        case Mode of
            ekka -> {[], []};
            epmd ->
                P = integer_to_list(free_port()),
                {["--dist-listen-min", P, "--dist-listen-max", P], [{"WITH_EPMD", "1"}]}
        end,
    Args = ["start", "--name", Name, "--cookie", ?COOKIE, "--net-ticktime", ?TICK,
            "--mqtt-port", "0", "--ws-port", "off", "--tls-port", "off",
            "--data-dir", filename:join(?config(dir, Config), atom_to_list(Id) ++ "_data")]
        ++ ModeArgs,
    #{id => Id, name => list_to_atom(Name), args => Args,
      env => ModeEnv ++ ?config(env, Config) ++ [{"RUST_LOG", "info"}],
      bin => ?config(beamq_bin, Config), dir => ?config(dir, Config), starts => 0}.

node_of(#{name := N}) -> N.

%% Starts (or restarts) a beamq node; waits for "started" and its MQTT port in its own log.
start_beamq(_Config, #{id := Id, args := Args, env := Env, bin := Bin, dir := Dir,
                       starts := K} = B) ->
    Log = filename:join(Dir, atom_to_list(Id) ++ "." ++ integer_to_list(K) ++ ".log"),
    H = os_start(Bin, Args, Env, Log),
    put_state({os, Id}, H),
    Port = case wait_value(fun() -> mqtt_port(Log) end, ?WAIT_MS) of
               {ok, P} -> P;
               timeout -> ct:fail({beamq_not_started, Id, Log})
           end,
    B1 = B#{starts := K + 1, mqtt_port => Port, log => Log},
    put_state({beamq, Id}, B1),
    B1.

mqtt_port(Log) ->
    case file:read_file(Log) of
        {ok, Bin} ->
            case {binary:match(Bin, <<"started">>),
                  re:run(Bin, "mqtt listening on port ([0-9]+)", [{capture, [1], list}])} of
                {{_, _}, {match, [P]}} -> {ok, list_to_integer(P)};
                _ -> false
            end;
        _ -> false
    end.

%% Kills a beamq node (-9); returns its description for a restart.
kill_beamq(Id) ->
    os_kill(get_state({os, Id})),
    get_state({beamq, Id}).

start_x(Config, Name) ->
    {ok, Peer, Node} = start_peer(Config, x, Name, []),
    Data = filename:join(?config(dir, Config), "x_data"),
    case peer:call(Peer, application, load, [beamq_interop]) of
        ok -> ok;
        {error, {already_loaded, _}} -> ok
    end,
    ok = peer:call(Peer, application, set_env, [beamq_interop, data_dir, Data]),
    ok = peer:call(Peer, beamq_interop, start, []),
    Node.

%% Stops x and waits until its OS process is gone (its name and port are free again).
stop_x() ->
    Peer = get_state({peer, x}),
    OsPid = peer:call(Peer, os, getpid, []),
    catch peer:stop(Peer),
    del_state({peer, x}),
    ok = wait_until(fun() -> os:cmd("kill -0 " ++ OsPid ++ " 2>&1") =/= "" end, ?WAIT_MS).

start_peer(Config, Role, Name, Extra) ->
    ModeArgs = case ?config(mode, Config) of
                   ekka -> ["-start_epmd", "false", "-epmd_module", "beamq_epmd"];
                   epmd -> []
               end,
    Paths = lists:append([["-pa", P] || P <- ?config(code_paths, Config)]),
    R = {ok, Peer, _} =
        peer:start(#{name => Name, host => "127.0.0.1", longnames => true,
                     connection => standard_io,
                     args => ["-setcookie", ?COOKIE, "-kernel", "net_ticktime", ?TICK]
                         ++ ModeArgs ++ Paths ++ Extra,
                     env => ?config(env, Config)}),
    put_state({peer, Role}, Peer),
    R.

%% Mode-specific environment for every OS process of the group.
mode_env(ekka, _Dir) ->
    [];
mode_env(epmd, Dir) ->
    Port = free_port(),
    H = os_start("/usr/bin/epmd", ["-port", integer_to_list(Port)], [],
                 filename:join(Dir, "epmd.log")),
    put_state({os, epmd}, H),
    ok = wait_until(fun() ->
                            case gen_tcp:connect("127.0.0.1", Port, []) of
                                {ok, S} -> gen_tcp:close(S), true;
                                _ -> false
                            end
                    end, 5000),
    [{"ERL_EPMD_PORT", integer_to_list(Port)}].

wait_value(F, Ms) ->
    wait_value_loop(F, erlang:monotonic_time(millisecond) + Ms).

wait_value_loop(F, Deadline) ->
    case F() of
        {ok, V} -> {ok, V};
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> timeout;
                false -> timer:sleep(100), wait_value_loop(F, Deadline)
            end
    end.

%%--------------------------------------------------------------------
%% Group state: a registered process holding what the group started (peers, OS processes),
%% so cases can restart nodes and end_per_group (or a failed init) can stop everything.

start_state() ->
    catch (whereis(?STATE) ! stop),
    Pid = spawn(fun() -> state_loop(#{}) end),
    register(?STATE, Pid),
    ok.

state_loop(M) ->
    receive
        {put, K, V} -> state_loop(M#{K => V});
        {del, K} -> state_loop(maps:remove(K, M));
        {get, From} -> From ! {?STATE, M}, state_loop(M);
        stop -> ok
    end.

put_state(K, V) -> ?STATE ! {put, K, V}, ok.
del_state(K) -> ?STATE ! {del, K}, ok.
all_state() ->
    ?STATE ! {get, self()},
    receive {?STATE, M} -> M after 5000 -> exit(no_state) end.
get_state(K) -> maps:get(K, all_state()).

cleanup() ->
    case whereis(?STATE) of
        undefined -> ok;
        _ ->
            M = all_state(),
            [catch peer:stop(P) || {{peer, _}, P} <- maps:to_list(M)],
            [os_kill(H) || {{os, Id}, H} <- maps:to_list(M), Id =/= epmd],
            [os_kill(H) || {{os, epmd}, H} <- maps:to_list(M)],
            ?STATE ! stop,
            ok
    end.
