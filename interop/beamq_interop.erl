%% @doc The API of the `beamq_interop' application (docs/route-protocol.md, "BEAM side"):
%% subscribe and publish as a beamq routing peer, inspect routes, and the cluster commands of
%% `beamq ctl cluster' / `emqx_ctl cluster'.
%%
%% ```
%% ok = beamq_interop:start(),
%% ok = beamq_interop:join('beamq@127.0.0.1'),
%% ok = beamq_interop:subscribe(<<"t/#">>),
%% ok = beamq_interop:publish(<<"t/a">>, <<"hello">>),
%% receive {deliver, <<"t/a">>, <<"hello">>} -> ok end.
%% '''
-module(beamq_interop).

-export([start/0, subscribe/1, subscribe/2, unsubscribe/1, publish/2, publish/3, routes/0,
         join/1, leave/0, status/0]).

%% @doc Starts the application (and the pg scope `beamq_route' if it is not running).
-spec start() -> ok | {error, term()}.
start() ->
    case application:ensure_all_started(beamq_interop) of
        {ok, _} -> ok;
        {error, _} = E -> E
    end.

%% @doc The calling process receives `{deliver, Topic, Payload}' for every message published
%% to a topic `Filter' matches, from any node of the cluster. `Filter' may be `$share/G/F' or
%% `$queue/F': one subscriber of the group on this node gets each message.
-spec subscribe(binary()) -> ok | {error, term()}.
subscribe(Filter) ->
    subscribe(Filter, payload).

%% @doc `full': receive `{deliver, Topic, {message, Id, QoS, From, Flags, Headers, Topic,
%% Payload, Timestamp}}' (EMQX 4's `#message{}') instead of the payload.
-spec subscribe(binary(), payload | full) -> ok | {error, term()}.
subscribe(Filter, Mode) ->
    beamq_broker:subscribe(self(), Filter, Mode).

-spec unsubscribe(binary()) -> ok | {error, not_subscribed | not_started}.
unsubscribe(Filter) ->
    beamq_broker:unsubscribe(self(), Filter).

%% @doc Publishes at QoS 0 from the calling process.
-spec publish(binary(), iodata()) -> ok | {error, term()}.
publish(Topic, Payload) ->
    publish(Topic, Payload, 0).

%% @doc Publishes with QoS 0, 1 or 2 (carried in the message; each receiving node downgrades
%% per subscription). Local subscribers get it, and each other node with a matching route gets
%% one dispatch.
-spec publish(binary(), iodata(), 0..2) -> ok | {error, term()}.
publish(Topic, Payload, QoS) ->
    beamq_broker:publish(Topic, Payload, QoS).

%% @doc `[{Filter, [Node]}]', as `beamq_routes:list()' on every node.
-spec routes() -> [{binary(), [node()]}].
routes() ->
    beamq_routes:list().

-spec join(node()) -> ok | {error, term()}.
join(Node) ->
    beamq_cluster:join(Node).

-spec leave() -> ok | {error, node_not_in_cluster}.
leave() ->
    beamq_cluster:leave().

-spec status() -> [{running_nodes | stopped_nodes, [node()]}].
status() ->
    beamq_cluster:status().
