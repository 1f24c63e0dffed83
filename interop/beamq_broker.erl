%% @doc The node's broker process, registered `beamq_broker' as on beamq nodes: the one member
%% of every `beamq_route' group (topic filter) this node has local subscribers for, the
%% receiver of `{dispatch, Topic, {delivery, Sender, Message}}' forwards, and the fan-out to
%% local Erlang subscribers (docs/route-protocol.md; EMQX 4's `emqx_broker' + `emqx_router').
%%
%% Subscriptions live in a protected ETS table so a publish runs in the publisher's own process:
%% sends from one publisher to one node keep their order (one dist connection), and the broker
%% is never a bottleneck for publishers. Route matching is a plain scan over
%% `pg:which_groups(beamq_route)' (no trie): O(groups) per publish, fine for the route counts an
%% Erlang peer sees in tests and tools; beamq's Rust side keeps a trie.
-module(beamq_broker).
-behaviour(gen_server).

-export([start_link/0, subscribe/3, unsubscribe/2, publish/3, message/3, stats/0,
         subscriptions/0, forward/2, deliver_local/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-define(SCOPE, beamq_route).
-define(SUBS, beamq_interop_subs).
-define(STATS, beamq_interop_stats).

-type mode() :: payload | full.
-type message() :: {message, term(), 0..2, term(), map(), map(), binary(), binary(), integer()}.
-export_type([message/0]).

-record(state, {counts = #{} :: #{binary() => pos_integer()},
                monitors = #{} :: #{pid() => reference()}}).

%%--------------------------------------------------------------------
%% API

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc `Pid' receives messages published to `Filter' (a filter, `$share/G/F' or `$queue/F').
-spec subscribe(pid(), term(), mode()) -> ok | {error, term()}.
subscribe(Pid, Filter, Mode) when Mode =:= payload; Mode =:= full ->
    call({subscribe, Pid, Filter, Mode});
subscribe(_Pid, _Filter, Mode) ->
    {error, {bad_mode, Mode}}.

-spec unsubscribe(pid(), term()) -> ok | {error, not_subscribed | not_started}.
unsubscribe(Pid, Filter) ->
    call({unsubscribe, Pid, Filter}).

%% @doc Publishes from the calling process: local subscribers get it, and every other node with
%% a matching route gets exactly one dispatch per member pid.
-spec publish(term(), iodata(), term()) -> ok | {error, term()}.
publish(Topic, Payload, QoS) ->
    case {whereis(?MODULE), beamq_topic:valid_topic(Topic), lists:member(QoS, [0, 1, 2])} of
        {undefined, _, _} -> {error, not_started};
        {_, false, _} -> {error, invalid_topic};
        {_, _, false} -> {error, {bad_qos, QoS}};
        _ ->
            try iolist_to_binary(Payload) of
                Bin ->
                    Msg = message(Topic, Bin, QoS),
                    forward(Topic, Msg),
                    deliver_local(Topic, Msg),
                    ok
            catch
                error:badarg -> {error, bad_payload}
            end
    end.

%% @doc EMQX 4's `#message{}' as a tuple (route-protocol.md, "Message"), from this node.
-spec message(binary(), binary(), 0..2) -> message().
message(Topic, Payload, QoS) ->
    {message, message_id(), QoS, beamq_interop, #{retain => false, dup => false, sys => false},
     #{}, Topic, Payload, erlang:system_time(millisecond)}.

%% @doc `#{forward => N, forward_received => N, forward_dropped => N}' as beamq_routes:stats/0.
-spec stats() -> #{atom() => non_neg_integer()}.
stats() ->
    try maps:from_list([{K, V} || {K, V} <- ets:tab2list(?STATS), is_atom(K)])
    catch error:badarg -> #{forward => 0, forward_received => 0, forward_dropped => 0}
    end.

%% @doc Local subscriptions: `[{Pid, Filter, Mode}]' (Filter as subscribed).
-spec subscriptions() -> [{pid(), binary(), mode()}].
subscriptions() ->
    try [{P, F, M} || {{P, F}, _G, _R, M} <- ets:tab2list(?SUBS)]
    catch error:badarg -> []
    end.

%% @doc Sends one `{dispatch, Topic, {delivery, self(), Msg}}' to each distinct member pid on
%% another node among the groups matching `Topic' (route-protocol.md rule 5). `noconnect': a
%% member whose node is gone is counted as dropped, and no connection is opened to it.
-spec forward(binary(), message()) -> non_neg_integer().
forward(Topic, Msg) ->
    Me = node(),
    Pids = lists:usort([P || G <- route_groups(), beamq_topic:match(Topic, G),
                             P <- pg:get_members(?SCOPE, G), node(P) =/= Me]),
    Dispatch = {dispatch, Topic, {delivery, self(), Msg}},
    lists:foreach(fun(P) ->
                          case erlang:send(P, Dispatch, [noconnect]) of
                              ok -> count(forward);
                              _ -> count(forward_dropped),
                                   ?LOG_INFO("beamq_broker: forward to ~p dropped (no connection)", [P])
                          end
                  end, Pids),
    length(Pids).

%% @doc Delivers to this node's subscribers whose filter matches `Topic'; one member of each
%% share group (at random, EMQX 4's default strategy) for shared subscriptions.
-spec deliver_local(binary(), message()) -> ok.
deliver_local(Topic, Msg) ->
    Matched = try ets:foldl(fun({{P, _F}, G, R, M}, Acc) ->
                                    case beamq_topic:match(Topic, R) of
                                        true -> [{G, R, P, M} | Acc];
                                        false -> Acc
                                    end
                            end, [], ?SUBS)
              catch error:badarg -> []
              end,
    {Plain, Shared} = lists:partition(fun({G, _, _, _}) -> G =:= undefined end, Matched),
    Groups = lists:foldl(fun({G, R, P, M}, Acc) ->
                                 maps:update_with({G, R}, fun(L) -> [{P, M} | L] end, [{P, M}], Acc)
                         end, #{}, Shared),
    Picked = [lists:nth(rand:uniform(length(L)), L) || L <- maps:values(Groups)],
    lists:foreach(fun({P, M}) -> P ! delivery(M, Topic, Msg) end,
                  [{P, M} || {_, _, P, M} <- Plain] ++ Picked).

delivery(payload, Topic, Msg) -> {deliver, Topic, element(8, Msg)};
delivery(full, Topic, Msg) -> {deliver, Topic, Msg}.

%%--------------------------------------------------------------------
%% gen_server

init([]) ->
    ets:new(?SUBS, [set, protected, named_table, {read_concurrency, true}]),
    ets:new(?STATS, [set, public, named_table, {write_concurrency, true}]),
    ets:insert(?STATS, [{forward, 0}, {forward_received, 0}, {forward_dropped, 0}]),
    {ok, #state{}}.

handle_call({subscribe, Pid, Filter, Mode}, _From, S) when is_pid(Pid), node(Pid) =:= node() ->
    case beamq_topic:parse_subscription(Filter) of
        {ok, Group, Route} ->
            Key = {Pid, Filter},
            New = not ets:member(?SUBS, Key),
            ets:insert(?SUBS, {Key, Group, Route, Mode}),
            S1 = case New of
                     true -> route_added(Route, monitor_sub(Pid, S));
                     false -> S
                 end,
            {reply, ok, S1};
        {error, _} = E ->
            {reply, E, S}
    end;
handle_call({subscribe, _Pid, _Filter, _Mode}, _From, S) ->
    {reply, {error, not_a_local_pid}, S};
handle_call({unsubscribe, Pid, Filter}, _From, S) ->
    case ets:lookup(?SUBS, {Pid, Filter}) of
        [{Key, _G, Route, _M}] ->
            ets:delete(?SUBS, Key),
            S1 = route_removed(Route, S),
            {reply, ok, maybe_demonitor(Pid, S1)};
        [] ->
            {reply, {error, not_subscribed}, S}
    end;
handle_call(Req, _From, S) ->
    ?LOG_WARNING("beamq_broker: unexpected call ~0p ignored", [Req]),
    {reply, {error, unknown_call}, S}.

handle_cast(Req, S) ->
    ?LOG_WARNING("beamq_broker: unexpected cast ~0p ignored", [Req]),
    {noreply, S}.

%% A forward from another node (rule 7): local subscribers only, never re-forwarded.
handle_info({dispatch, Topic, {delivery, _Sender, Msg}} = D, S) ->
    case beamq_topic:valid_topic(Topic) andalso well_formed(Msg) of
        true ->
            count(forward_received),
            deliver_local(Topic, Msg);
        false ->
            ?LOG_WARNING("beamq_broker: malformed dispatch dropped: ~0P", [D, 20])
    end,
    {noreply, S};
handle_info({'DOWN', Ref, process, Pid, _Reason}, #state{monitors = Ms} = S) ->
    case maps:find(Pid, Ms) of
        {ok, Ref} ->
            Subs = ets:match_object(?SUBS, {{Pid, '_'}, '_', '_', '_'}),
            S1 = lists:foldl(fun({Key, _G, Route, _M}, Acc) ->
                                     ets:delete(?SUBS, Key),
                                     route_removed(Route, Acc)
                             end, S, Subs),
            {noreply, S1#state{monitors = maps:remove(Pid, Ms)}};
        _ ->
            {noreply, S}
    end;
handle_info(Info, S) ->
    ?LOG_WARNING("beamq_broker: unexpected message dropped: ~0P", [Info, 20]),
    {noreply, S}.

%%--------------------------------------------------------------------
%% Internals

call(Req) ->
    try gen_server:call(?MODULE, Req, 10000)
    catch exit:{noproc, _} -> {error, not_started}
    end.

%% Joins the group on the first local subscriber to `Route' (rule 3).
route_added(Route, #state{counts = C} = S) ->
    case maps:get(Route, C, 0) of
        0 -> ok = pg:join(?SCOPE, Route, self());
        _ -> ok
    end,
    S#state{counts = maps:update_with(Route, fun(N) -> N + 1 end, 1, C)}.

%% Leaves it when the last one goes.
route_removed(Route, #state{counts = C} = S) ->
    case maps:get(Route, C, 0) of
        1 ->
            _ = pg:leave(?SCOPE, Route, self()),
            S#state{counts = maps:remove(Route, C)};
        0 ->
            S;
        N ->
            S#state{counts = C#{Route := N - 1}}
    end.

monitor_sub(Pid, #state{monitors = Ms} = S) ->
    case maps:is_key(Pid, Ms) of
        true -> S;
        false -> S#state{monitors = Ms#{Pid => erlang:monitor(process, Pid)}}
    end.

maybe_demonitor(Pid, #state{monitors = Ms} = S) ->
    case ets:match_object(?SUBS, {{Pid, '_'}, '_', '_', '_'}) of
        [] ->
            case maps:take(Pid, Ms) of
                {Ref, Ms1} -> erlang:demonitor(Ref, [flush]), S#state{monitors = Ms1};
                error -> S
            end;
        _ ->
            S
    end.

%% The groups of the scope that are valid filters (rule 2: others are ignored, logged once).
route_groups() ->
    lists:filter(fun(G) ->
                         case beamq_topic:valid_filter(G) of
                             true -> true;
                             false ->
                                 catch ets:insert_new(?STATS, {{bad_group, G}}) andalso
                                     ?LOG_DEBUG("beamq_broker: group ~0P is not a topic filter; ignored", [G, 10]),
                                 false
                         end
                 end, pg:which_groups(?SCOPE)).

well_formed({message, _Id, QoS, _From, Flags, Headers, Topic, Payload, Ts}) ->
    lists:member(QoS, [0, 1, 2]) andalso is_map(Flags) andalso is_map(Headers) andalso
        is_binary(Topic) andalso is_binary(Payload) andalso is_integer(Ts);
well_formed(_) ->
    false.

count(Key) ->
    catch ets:update_counter(?STATS, Key, 1),
    ok.

%% `<<TimestampMicros:64, NodeHash:48, Seq:16>>' as EMQX 4's `emqx_guid' lays it out.
message_id() ->
    Ts = erlang:system_time(microsecond),
    NodeHash = (erlang:phash2(node(), 1 bsl 32) bsl 16) bor erlang:phash2({node(), id}, 1 bsl 16),
    Seq = erlang:unique_integer([positive, monotonic]) band 16#FFFF,
    <<Ts:64, NodeHash:48, Seq:16>>.
