%% @doc Route inspection on a BEAM node, with the same functions and replies as beamq's
%% `beamq_routes' erpc functions (docs/route-protocol.md rules 8-9; what `beamq ctl routes'
%% and EMQX 4's `emqx_ctl routes' show). The route table is the `beamq_route' pg scope:
%% filter -> nodes of its members. Works with only the scope running (no broker): stats are
%% then zero.
-module(beamq_routes).

-export([list/0, list/1, show/1, stats/0]).

-define(SCOPE, beamq_route).

%% @doc `[{FilterBin, [Node]}]' for every route, sorted by filter, nodes sorted.
-spec list() -> [{binary(), [node()]}].
list() ->
    lists:sort([{G, Ns} || G <- groups(), (Ns = nodes_of(G)) =/= []]).

%% @doc The same restricted to that exact filter (a binary, or a string as on beamq).
-spec list(binary() | string()) -> [{binary(), [node()]}].
list(Filter) ->
    Bin = to_binary(Filter),
    [R || {F, _} = R <- list(), F =:= Bin].

%% @doc Every route whose filter matches topic name `Topic'.
-spec show(binary() | string()) -> [{binary(), [node()]}].
show(Topic0) ->
    Topic = to_binary(Topic0),
    case beamq_topic:valid_topic(Topic) of
        true -> [R || {F, _} = R <- list(), beamq_topic:match(Topic, F)];
        false -> []
    end.

%% @doc `#{forward => N, forward_received => N, forward_dropped => N}' of this node.
-spec stats() -> #{forward := non_neg_integer(), forward_received := non_neg_integer(),
                   forward_dropped := non_neg_integer()}.
stats() ->
    S = beamq_broker:stats(),
    maps:with([forward, forward_received, forward_dropped],
              maps:merge(#{forward => 0, forward_received => 0, forward_dropped => 0}, S)).

groups() ->
    case whereis(?SCOPE) of
        undefined -> [];
        _ -> [G || G <- pg:which_groups(?SCOPE), beamq_topic:valid_filter(G)]
    end.

to_binary(B) when is_binary(B) -> B;
to_binary(L) when is_list(L) ->
    case catch unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> invalid
    end;
to_binary(_) -> invalid.

nodes_of(G) ->
    lists:usort([node(P) || P <- pg:get_members(?SCOPE, G)]).
